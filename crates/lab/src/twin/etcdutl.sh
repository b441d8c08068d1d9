#!/bin/sh
# hakube twin: etcdutl where this machine has etcd 3.4 (Debian 12), which has no etcdutl: its
# `etcdctl snapshot restore|status` is what etcd 3.5 moved to `etcdutl snapshot` (the same
# flags and checks). The kubelet stand-in runs it for an etcd image's `etcdutl`.
case "${1:-}" in
  snapshot) ETCDCTL_API=3 exec etcdctl "$@" ;;
  version) exec etcdctl version ;;
  *) echo "etcdutl (hakube twin): only 'snapshot' and 'version' are provided" >&2; exit 1 ;;
esac
