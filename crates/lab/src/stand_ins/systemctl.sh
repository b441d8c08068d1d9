# hakube-lab `systemctl` for fresh hosts (LabBuilder::fresh_hosts). The lab prepends the
# settings: HOST_DIR, SELF, BASE_PACKAGES, BASE_UNITS, UNIT_PACKAGES.
#
# haproxy, keepalived, vault, openbao and kubelet really run in the host (modelled on their Debian
# units; a unit file in /etc/systemd/system with ExecStart= replaces the built-in command, so
# services the executor writes run too). ExecStartPost=/ExecStopPost= lines of the unit file
# and its drop-ins (/etc/systemd/system/UNIT.d/*.conf) run after the start and after the main
# process ended (also when it crashed), as systemd does. Restart= is not emulated. Other known
# units only keep their state (active/inactive, enabled/disabled). Unknown units are "not
# found" (exit 5). Pid files live in the host's private /run/hakube-lab/units.
RUN=/run/hakube-lab/units
PKG_DB="$HOST_DIR/packages/installed"
mkdir -p "$RUN"

installed() {
  case " $BASE_PACKAGES " in *" $1 "*) return 0 ;; esac
  grep -qxF "$1" "$PKG_DB" 2>/dev/null
}

unit_name() {
  case "$1" in
    *.service | *.timer | *.socket | *.target | *.mount | *.path) printf '%s\n' "$1" ;;
    *) printf '%s.service\n' "$1" ;;
  esac
}

# The value of KEY in a unit file (the last one wins), without systemd's prefix characters.
unit_key() { sed -n "s/^$2=[-+@!:]*//p" "$1" 2>/dev/null | tail -n 1; }

# Every KEY= line of the unit file and its drop-ins, in order.
hook_lines() {
  for f in "/etc/systemd/system/$1" /etc/systemd/system/"$1".d/*.conf; do
    [ -f "$f" ] && sed -n "s/^$2=[-+@!:]*//p" "$f"
  done
}

run_hooks() {
  hook_lines "$1" "$2" | while IFS= read -r c; do
    [ -n "$c" ] && sh -c "$c"
  done
}

# Sets KIND (daemon, oneshot, state or missing) and, for daemons, EXEC, RELOAD_CHECK,
# RELOAD_SIGNAL, KILL_SIGNAL, READY_FILE, RUN_USER, RUN_GROUP, COND_NONEMPTY.
define() {
  KIND=missing EXEC= RELOAD_CHECK= RELOAD_SIGNAL=HUP KILL_SIGNAL=TERM READY_FILE= RUN_USER=
  RUN_GROUP= COND_NONEMPTY=
  pkg=
  for m in $UNIT_PACKAGES; do
    [ "${m%%=*}" = "$1" ] && pkg=${m#*=}
  done
  if [ -n "$pkg" ] && installed "$pkg"; then KIND=state; fi
  case " $BASE_UNITS " in *" $1 "*) KIND=state ;; esac
  if [ "$KIND" = state ]; then
    case "$1" in
      haproxy.service)
        CONFIG=/etc/haproxy/haproxy.cfg PIDFILE=/run/haproxy.pid
        EXTRAOPTS="-S /run/haproxy-master.sock"
        [ -r /etc/default/haproxy ] && . /etc/default/haproxy
        EXEC="/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS"
        RELOAD_CHECK="/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS"
        RELOAD_SIGNAL=USR2 READY_FILE=$PIDFILE KIND=daemon ;;
      keepalived.service)
        DAEMON_ARGS=
        [ -r /etc/default/keepalived ] && . /etc/default/keepalived
        COND_NONEMPTY=/etc/keepalived/keepalived.conf
        EXEC="/usr/sbin/keepalived --dont-fork --log-console $DAEMON_ARGS"
        READY_FILE=/run/keepalived.pid KIND=daemon ;;
      vault.service)
        EXEC="vault server -config=/etc/vault.d/vault.hcl" RUN_USER=vault KIND=daemon ;;
      openbao.service)
        EXEC="bao server -config=/etc/openbao/openbao.hcl" RUN_USER=openbao KIND=daemon ;;
      kubelet.service)
        # pkgs.k8s.io's unit runs /usr/bin/kubelet (a lab links the program it provides).
        EXEC="kubelet" KIND=daemon ;;
    esac
  fi
  f="/etc/systemd/system/$1"
  if [ -f "$f" ]; then
    [ "$KIND" = missing ] && KIND=state
    v=$(unit_key "$f" ExecStart)
    if [ -n "$v" ]; then
      # A program at its Debian path that this machine has elsewhere (the lab's apt-get
      # linked it into /usr/local/bin): run that one.
      prog=${v%% *}
      case "$prog" in
        /*) if [ ! -x "$prog" ] && command -v "${prog##*/}" >/dev/null; then
              v="$(command -v "${prog##*/}")${v#"$prog"}"
            fi ;;
      esac
      EXEC=$v RELOAD_CHECK= READY_FILE= RELOAD_SIGNAL=HUP KIND=daemon
      [ "$(unit_key "$f" Type)" = oneshot ] && KIND=oneshot
    fi
    v=$(unit_key "$f" User)
    [ -n "$v" ] && RUN_USER=$v
    v=$(unit_key "$f" Group)
    [ -n "$v" ] && RUN_GROUP=$v
    v=$(unit_key "$f" KillSignal)
    [ -n "$v" ] && KILL_SIGNAL=${v#SIG}
    v=$(unit_key "$f" ConditionFileNotEmpty)
    [ -n "$v" ] && COND_NONEMPTY=$v
  fi
  return 0
}

# The command line of EXEC as RUN_USER/RUN_GROUP.
as_user() {
  cmd=$EXEC
  if [ -n "$RUN_USER" ] && [ "$RUN_USER" != root ]; then
    g=${RUN_GROUP:-$(id -g "$RUN_USER")}
    cmd="setpriv --reuid=$RUN_USER --regid=$g --init-groups $cmd"
  fi
  printf '%s\n' "$cmd"
}

not_found() { echo "Failed to $2 $1: Unit $1 not found." >&2; }
main_pid() { cat "$RUN/$1.pid" 2>/dev/null; }
is_running() { p=$(main_pid "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
state_of() {
  if [ "$KIND" = daemon ]; then
    if is_running "$1"; then echo active; return; fi
    s=$(cat "$RUN/$1.state" 2>/dev/null)
    [ "$s" = failed ] && echo failed || echo inactive
    return
  fi
  s=$(cat "$RUN/$1.state" 2>/dev/null)
  if [ -z "$s" ]; then
    case " $BASE_UNITS " in *" $1 "*) s=active ;; *) s=inactive ;; esac
  fi
  echo "$s"
}

wants_dir() {
  case "$1" in
    *.timer) echo /etc/systemd/system/timers.target.wants ;;
    *.socket) echo /etc/systemd/system/sockets.target.wants ;;
    *) echo /etc/systemd/system/multi-user.target.wants ;;
  esac
}
is_enabled() {
  for d in /etc/systemd/system/*.wants; do
    [ -e "$d/$1" ] || [ -L "$d/$1" ] && return 0
  done
  case " $BASE_UNITS " in *" $1 "*) [ -e "$RUN/$1.disabled" ] || return 0 ;; esac
  return 1
}
enable_unit() {
  d=$(wants_dir "$1")
  if [ ! -L "$d/$1" ]; then
    mkdir -p "$d"
    ln -sf "/lib/systemd/system/$1" "$d/$1"
    echo "Created symlink $d/$1 -> /lib/systemd/system/$1." >&2
  fi
  rm -f "$RUN/$1.disabled"
}
disable_unit() {
  for d in /etc/systemd/system/*.wants; do
    if [ -L "$d/$1" ]; then rm -f "$d/$1"; echo "Removed \"$d/$1\"." >&2; fi
  done
  touch "$RUN/$1.disabled"
}

start_unit() {
  u=$1
  if [ "$KIND" = state ]; then echo active > "$RUN/$u.state"; run_hooks "$u" ExecStartPost; return 0; fi
  if [ "$KIND" = oneshot ]; then
    # Type=oneshot: the start job is the run; the unit is inactive (or failed) afterwards.
    if sh -c "exec $(as_user)" </dev/null >>"$HOST_DIR/logs/$u.log" 2>&1; then
      echo inactive > "$RUN/$u.state"
      run_hooks "$u" ExecStartPost
      return 0
    fi
    echo failed > "$RUN/$u.state"
    echo "Job for $u failed because the control process exited with error code." >&2
    return 1
  fi
  is_running "$u" && return 0
  if [ -n "$COND_NONEMPTY" ] && [ ! -s "$COND_NONEMPTY" ]; then
    echo inactive > "$RUN/$u.state"
    return 0
  fi
  if [ -n "$RUN_USER" ] && ! getent passwd "$RUN_USER" >/dev/null; then
    echo "$u: Failed to determine user credentials: No such process ($RUN_USER)" >> "$HOST_DIR/logs/$u.log"
    echo failed > "$RUN/$u.state"
    echo "Job for $u failed because of unavailable resources or another system error." >&2
    return 1
  fi
  rm -f "$RUN/$u.pid" "$RUN/$u.stopping" "$RUN/$u.sup"
  [ -n "$READY_FILE" ] && rm -f "$READY_FILE"
  echo activating > "$RUN/$u.state"
  setsid "$SELF" __supervise "$u" </dev/null >>"$HOST_DIR/logs/$u.log" 2>&1 &
  # Type=notify stands in as: the main process wrote its pid file (or stayed up for 0.3 s).
  i=0
  while [ $i -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
    p=$(main_pid "$u")
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      if [ -n "$READY_FILE" ]; then
        [ -s "$READY_FILE" ] && break
      elif [ $i -ge 6 ]; then
        break
      fi
    elif [ "$(cat "$RUN/$u.state" 2>/dev/null)" = failed ] || [ "$(cat "$RUN/$u.state" 2>/dev/null)" = inactive ]; then
      echo "Job for $u failed because the control process exited with error code." >&2
      echo "See \"systemctl status $u\" and \"journalctl -xeu $u\" for details." >&2
      return 1
    fi
  done
  if ! is_running "$u"; then
    echo "Job for $u failed because the control process exited with error code." >&2
    return 1
  fi
  echo active > "$RUN/$u.state"
  run_hooks "$u" ExecStartPost
  return 0
}

stop_unit() {
  u=$1
  if [ "$KIND" = state ] || [ "$KIND" = oneshot ]; then echo inactive > "$RUN/$u.state"; run_hooks "$u" ExecStopPost; return 0; fi
  sup=$(cat "$RUN/$u.sup" 2>/dev/null)
  if [ -z "$sup" ] || ! kill -0 "$sup" 2>/dev/null; then
    [ "$(cat "$RUN/$u.state" 2>/dev/null)" = failed ] || echo inactive > "$RUN/$u.state"
    return 0
  fi
  touch "$RUN/$u.stopping"
  p=$(main_pid "$u")
  [ -n "$p" ] && kill "-$KILL_SIGNAL" "$p" 2>/dev/null
  i=0
  while kill -0 "$sup" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  # KillMode=mixed: whatever of the unit is left gets SIGKILL.
  kill -KILL -- "-$sup" 2>/dev/null
  rm -f "$RUN/$u.pid" "$RUN/$u.sup"
  echo inactive > "$RUN/$u.state"
  return 0
}

reload_unit() {
  u=$1
  if [ "$KIND" = state ] || [ "$KIND" = oneshot ]; then return 0; fi
  if ! is_running "$u"; then
    echo "Failed to reload $u: Unit $u is not active." >&2
    return 1
  fi
  if [ -n "$RELOAD_CHECK" ]; then
    if ! out=$(sh -c "$RELOAD_CHECK" 2>&1); then
      printf '%s\n' "$out" >> "$HOST_DIR/logs/$u.log"
      echo "Job for $u failed because the control process exited with error code." >&2
      printf '%s\n' "$out" >&2
      return 1
    fi
  fi
  kill "-$RELOAD_SIGNAL" "$(main_pid "$u")"
}

if [ "${1:-}" = __supervise ]; then
  u=$2
  define "$u"
  echo $$ > "$RUN/$u.sup"
  cmd=$(as_user)
  echo "hakube-lab systemctl: starting $u: $cmd"
  sh -c "exec $cmd" &
  main=$!
  echo "$main" > "$RUN/$u.pid"
  wait "$main"
  rc=$?
  rm -f "$RUN/$u.pid"
  if [ -e "$RUN/$u.stopping" ]; then
    echo inactive > "$RUN/$u.state"
  else
    echo failed > "$RUN/$u.state"
  fi
  echo "hakube-lab systemctl: $u main process $main exited, status $rc"
  run_hooks "$u" ExecStopPost
  rm -f "$RUN/$u.sup"
  exit 0
fi

verb= now= quiet= value= props= units=
while [ $# -gt 0 ]; do
  case "$1" in
    --now) now=1 ;;
    -q | --quiet) quiet=1 ;;
    --value) value=1 ;;
    -p) shift; props="$props ${1:-}" ;;
    --property=*) props="$props ${1#--property=}" ;;
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$1; else units="$units $(unit_name "$1")"; fi ;;
  esac
  shift
done

rc=0
case "$verb" in
  start | stop | restart | reload | try-restart | reload-or-restart | try-reload-or-restart | condrestart | enable | disable | is-active | is-enabled | is-failed | status | show | kill | mask | unmask) ;;
  *) exit 0 ;;
esac
for u in $units; do
  define "$u"
  if [ "$KIND" = missing ]; then
    case "$verb" in
      is-active) [ -n "$quiet" ] || echo inactive; rc=3 ;;
      is-failed) [ -n "$quiet" ] || echo inactive; rc=1 ;;
      is-enabled) echo "Failed to get unit file state for $u: No such file or directory" >&2; rc=1 ;;
      status) echo "Unit $u could not be found." >&2; rc=4 ;;
      show) echo "ActiveState=inactive"; rc=0 ;;
      *) not_found "$u" "$verb"; rc=5 ;;
    esac
    continue
  fi
  case "$verb" in
    start) start_unit "$u" || rc=1 ;;
    stop) stop_unit "$u" ;;
    restart) stop_unit "$u"; start_unit "$u" || rc=1 ;;
    try-restart | condrestart)
      if [ "$(state_of "$u")" = active ]; then stop_unit "$u"; start_unit "$u" || rc=1; fi ;;
    reload) reload_unit "$u" || rc=1 ;;
    reload-or-restart)
      if [ "$(state_of "$u")" = active ]; then reload_unit "$u" || rc=1; else start_unit "$u" || rc=1; fi ;;
    try-reload-or-restart)
      if [ "$(state_of "$u")" = active ]; then reload_unit "$u" || rc=1; fi ;;
    enable) enable_unit "$u"; if [ -n "$now" ]; then start_unit "$u" || rc=1; fi ;;
    disable) disable_unit "$u"; if [ -n "$now" ]; then stop_unit "$u"; fi ;;
    is-active)
      s=$(state_of "$u"); [ -n "$quiet" ] || echo "$s"; [ "$s" = active ] || rc=3 ;;
    is-failed)
      s=$(state_of "$u"); [ -n "$quiet" ] || echo "$s"; [ "$s" = failed ] || rc=1 ;;
    is-enabled)
      if is_enabled "$u"; then [ -n "$quiet" ] || echo enabled; else [ -n "$quiet" ] || echo disabled; rc=1; fi ;;
    status)
      s=$(state_of "$u")
      echo "* $u (hakube-lab stand-in)"
      echo "     Active: $s"
      [ "$KIND" = daemon ] && is_running "$u" && echo "   Main PID: $(main_pid "$u")"
      [ "$s" = active ] || rc=3 ;;
    show)
      s=$(state_of "$u")
      en=disabled; is_enabled "$u" && en=enabled
      pid=0; [ "$KIND" = daemon ] && is_running "$u" && pid=$(main_pid "$u")
      [ -n "$props" ] || props="Id ActiveState MainPID UnitFileState"
      for p in $(echo "$props" | tr ',' ' '); do
        case "$p" in
          Id) v=$u ;; ActiveState) v=$s ;; MainPID) v=$pid ;; UnitFileState) v=$en ;;
          SubState) [ "$s" = active ] && v=running || v=dead ;;
          *) v= ;;
        esac
        if [ -n "$value" ]; then echo "$v"; else echo "$p=$v"; fi
      done ;;
    kill) [ "$KIND" = daemon ] && is_running "$u" && kill -TERM "$(main_pid "$u")" ;;
    mask | unmask) ;;
  esac
done
exit $rc
