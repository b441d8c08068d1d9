# A stand-in apiserver for the failover lab: HTTPS on ADDR:PORT answering /readyz with
# "ok NAME". Usage: cp_server.py NAME ADDR PORT PEM
import http.server
import ssl
import sys

name, addr, port, pem = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in ("/readyz", "/healthz", "/livez"):
            body = ("ok " + name + "\n").encode()
            self.send_response(200)
        else:
            body = b"not found\n"
            self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server((addr, port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(pem)
# The handshake happens in the handler thread, so a slow client cannot block accept().
srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
print("listening", name, addr, port, flush=True)
srv.serve_forever()
