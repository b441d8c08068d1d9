# hakube-lab `apt-get` for fresh hosts (LabBuilder::fresh_hosts). The lab prepends HOST_DIR,
# BASE_PACKAGES and the functions `known PKG`, `missing PKG` (prints the programs this machine
# lacks) and `postinst PKG` (what the Debian maintainer scripts do that matters here: system
# users and groups, runtime directories, enabled units; plus links to programs that live
# elsewhere on this machine).
#
# `install` takes every named package or none (like apt): unknown packages and packages whose
# programs this machine lacks fail with exit 100, naming them. Installs are recorded per host,
# so installing again is a no-op. `update`, `upgrade` and friends succeed and do nothing.
PKG_DB="$HOST_DIR/packages/installed"
# "<package> <version>" for packages installed as `pkg=version` (dpkg-query reports it).
VER_DB="$HOST_DIR/packages/versions"
mkdir -p "$HOST_DIR/packages"
touch "$PKG_DB" "$VER_DB"

# The version a `pkg=version` argument asks for (empty without one).
wanted() { case "$1" in *=*) printf '%s\n' "${1#*=}" ;; esac; }
recorded() { sed -n "s/^$1 //p" "$VER_DB" | tail -n 1; }
record_version() {
  grep -v "^$1 " "$VER_DB" > "$VER_DB.new"; mv "$VER_DB.new" "$VER_DB"
  [ -n "$2" ] && echo "$1 $2" >> "$VER_DB"
  return 0
}

installed() {
  case " $BASE_PACKAGES " in *" $1 "*) return 0 ;; esac
  grep -qxF "$1" "$PKG_DB"
}

cmd= pkgs=
while [ $# -gt 0 ]; do
  case "$1" in
    -o | -c | -t) shift ;;
    -*) ;;
    *) if [ -z "$cmd" ]; then cmd=$1; else pkgs="$pkgs $1"; fi ;;
  esac
  shift
done

case "$cmd" in
  install | reinstall) ;;
  remove | purge)
    for p in $pkgs; do
      p=${p%%=*} p=${p%%:*}
      if grep -qxF "$p" "$PKG_DB"; then
        grep -vxF "$p" "$PKG_DB" > "$PKG_DB.new"; mv "$PKG_DB.new" "$PKG_DB"
        echo "Removing $p ..."
      fi
    done
    exit 0 ;;
  *) exit 0 ;;
esac

echo "Reading package lists... Done"
bad=0
for a in $pkgs; do
  p=${a%%=*} p=${p%%:*}
  if installed "$p"; then continue; fi
  if ! known "$p"; then
    echo "E: Unable to locate package $p" >&2
    bad=1
    continue
  fi
  m=$(missing "$p")
  if [ -n "$m" ]; then
    echo "E: Package $p cannot be installed in this lab: this machine lacks $(echo $m)" >&2
    bad=1
  fi
done
[ $bad -eq 0 ] || exit 100

n=0
for a in $pkgs; do
  p=${a%%=*} p=${p%%:*}
  v=$(wanted "$a")
  if installed "$p"; then
    if [ -n "$v" ] && [ "$(recorded "$p")" != "$v" ]; then
      echo "Unpacking $p ($v) over ($(recorded "$p")) ..."
      record_version "$p" "$v"
      n=$((n + 1))
    else
      echo "$p is already the newest version."
    fi
    continue
  fi
  echo "Setting up $p ..."
  if ! postinst "$p"; then
    echo "E: Sub-process /usr/bin/dpkg returned an error code (1): $p's postinst failed" >&2
    exit 100
  fi
  echo "$p" >> "$PKG_DB"
  record_version "$p" "$v"
  n=$((n + 1))
done
echo "$n newly installed."
exit 0
