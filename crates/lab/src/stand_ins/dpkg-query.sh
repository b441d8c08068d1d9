# hakube-lab `dpkg-query` (and `dpkg -s/-l`) for fresh hosts: answers from the host's install
# record (the apt-get stand-in's) plus BASE_PACKAGES, never from this machine's dpkg database.
# Supports -W/--show [-f/--showformat=FORMAT] and -s/--status, -l/--list.
PKG_DB="$HOST_DIR/packages/installed"

installed() {
  case " $BASE_PACKAGES " in *" $1 "*) return 0 ;; esac
  grep -qxF "$1" "$PKG_DB" 2>/dev/null
}
version() {
  v=$(sed -n "s/^$1 //p" "$HOST_DIR/packages/versions" 2>/dev/null | tail -n 1)
  [ -n "$v" ] && { echo "$v"; return; }
  v=$(/usr/bin/dpkg-query -W -f='${Version}' "$1" 2>/dev/null)
  echo "${v:-1.0-hakube-lab}"
}

mode= fmt='${binary:Package}\t${Version}\n' pkgs=
while [ $# -gt 0 ]; do
  case "$1" in
    -W | --show) mode=show ;;
    -s | --status) mode=status ;;
    -l | --list) mode=list ;;
    -f) shift; fmt=$1 ;;
    -f* ) fmt=${1#-f}; fmt=${fmt#=} ;;
    --showformat=*) fmt=${1#--showformat=} ;;
    -*) ;;
    *) pkgs="$pkgs $1" ;;
  esac
  shift
done

rc=0
for p in $pkgs; do
  p=${p%%:*}
  if ! installed "$p"; then
    if [ "$mode" = status ]; then
      echo "dpkg-query: package '$p' is not installed and no information is available" >&2
    else
      echo "dpkg-query: no packages found matching $p" >&2
    fi
    rc=1
    continue
  fi
  v=$(version "$p")
  case "$mode" in
    show)
      out=$(printf '%s' "$fmt" | sed -e "s/\${binary:Package}/$p/g" -e "s/\${Package}/$p/g" \
        -e "s/\${Version}/$v/g" -e "s/\${Status}/install ok installed/g" \
        -e "s/\${db:Status-Abbrev}/ii /g" -e "s/\${db:Status-Status}/installed/g" \
        -e 's/\${[^}]*}//g'; echo x)
      printf '%b' "${out%x}" ;;
    status)
      printf 'Package: %s\nStatus: install ok installed\nVersion: %s\n\n' "$p" "$v" ;;
    list)
      printf 'ii  %-30s %-20s all          %s\n' "$p" "$v" "$p" ;;
  esac
done
exit $rc
