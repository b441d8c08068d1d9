# hakube-lab `apt-mark` for fresh hosts: holds are kept per host (never on this machine's dpkg
# database). Supports hold, unhold, showhold.
HELD="$HOST_DIR/packages/held"
mkdir -p "$HOST_DIR/packages"
touch "$HELD"
verb=${1:-}
[ $# -gt 0 ] && shift
case "$verb" in
  hold)
    for p in "$@"; do
      if grep -qxF "$p" "$HELD"; then echo "$p was already set on hold."
      else echo "$p" >> "$HELD"; echo "$p set on hold."; fi
    done ;;
  unhold)
    for p in "$@"; do
      if grep -qxF "$p" "$HELD"; then
        grep -vxF "$p" "$HELD" > "$HELD.new"; mv "$HELD.new" "$HELD"; echo "Canceled hold on $p."
      else echo "$p was already not on hold."; fi
    done ;;
  showhold) sort "$HELD" ;;
  *) echo "hakube-lab apt-mark: $verb is not supported here" >&2; exit 100 ;;
esac
