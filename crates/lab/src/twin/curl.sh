#!/bin/sh
# hakube twin: the VMs have no internet. Answers the pkgs.k8s.io Release.key download node
# preparation makes (an armored block the gpg stand-in accepts); anything else fails as an
# unreachable host would.
for a in "$@"; do url=$a; done
case "$url" in
  https://pkgs.k8s.io/*/Release.key)
    printf '%s\n' '-----BEGIN PGP PUBLIC KEY BLOCK-----' '' 'aGFrdWJlIHR3aW4gc3RhbmQtaW4ga2V5' '-----END PGP PUBLIC KEY BLOCK-----' ;;
  *) echo "curl: (6) Could not resolve host: ${url#*://}" >&2; exit 6 ;;
esac
