#!/bin/sh
# hakube twin: `gpg --dearmor [--yes] -o FILE` of the curl stand-in's armored block.
out= dearmor=
while [ $# -gt 0 ]; do
  case "$1" in
    --dearmor) dearmor=1 ;;
    -o | --output) shift; out=$1 ;;
  esac
  shift
done
[ -n "$dearmor" ] && [ -n "$out" ] || { echo "gpg (hakube twin): only --dearmor -o FILE" >&2; exit 2; }
body=$(sed -n '/^$/,/^-----END/p' | sed -e '/^$/d' -e '/^-----/d')
[ -n "$body" ] || { echo "gpg: no valid OpenPGP data found." >&2; exit 2; }
printf '%s' "$body" | base64 -d > "$out"
