#!/bin/sh
# hakube twin: containerd is not run. `containerd config default` prints the part of
# containerd 1.7's default config that node preparation edits (SystemdCgroup, sandbox_image).
case "$1 $2" in
  "config default")
    cat <<'CFG'
version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.8"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"
          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = false
CFG
    ;;
  "--version "*) echo "containerd github.com/containerd/containerd 1.7.24 (hakube twin stand-in)" ;;
  *) exec sleep infinity ;;
esac
