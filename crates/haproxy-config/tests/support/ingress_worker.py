# A stand-in Traefik for the ingress lab: plain HTTP on ADDR:HTTP_PORT, TLS on ADDR:HTTPS_PORT,
# each optionally preceded by a PROXY protocol v2 header. Answers every request with what it
# saw: the PROXY source address, whether TLS was used, and the X-Forwarded-* headers.
# Usage: ingress_worker.py ADDR HTTP_PORT HTTPS_PORT PEM
import socket
import ssl
import sys
import threading

addr, http_port, https_port, pem = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(pem)


def read_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def handle(conn, tls):
    try:
        conn.settimeout(5)
        head = read_exact(conn, 16)
        if head is None:  # a TCP health check: connect, close
            return
        proxy_src = "-"
        prefix = b""
        if head[:12] == SIG:
            length = int.from_bytes(head[14:16], "big")
            rest = read_exact(conn, length)
            if head[13] == 0x11 and rest is not None and length >= 12:
                proxy_src = socket.inet_ntoa(rest[0:4])
        else:
            prefix = head
        if tls:
            if prefix:
                return
            conn = ctx.wrap_socket(conn, server_side=True)
        data = prefix
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        headers = {}
        for line in data.split(b"\r\n")[1:]:
            if b":" in line:
                k, v = line.split(b":", 1)
                headers.setdefault(k.strip().lower().decode(), []).append(v.strip().decode())
        get = lambda name: ",".join(headers.get(name, ["-"]))
        body = "proxy-src=%s tls=%d xff=%s proto=%s port=%s\n" % (
            proxy_src,
            1 if tls else 0,
            get("x-forwarded-for"),
            get("x-forwarded-proto"),
            get("x-forwarded-port"),
        )
        conn.sendall(
            (
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                "Connection: close\r\n\r\n%s" % (len(body), body)
            ).encode()
        )
    except Exception:
        pass
    finally:
        conn.close()


def serve(port, tls):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(64)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=handle, args=(conn, tls), daemon=True).start()


threading.Thread(target=serve, args=(https_port, True), daemon=True).start()
print("listening", addr, http_port, https_port, flush=True)
serve(http_port, False)
