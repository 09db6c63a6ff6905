#!/bin/sh
# masq-janitor DaemonSet entrypoint. One of three jobs, by ACTION:
#   install    install masq-janitor into the node's CNI directories (mounted
#              from the host) and keep it installed: `masq-janitor install` is
#              idempotent and cheap when nothing changed, so running it every
#              INSTALL_INTERVAL seconds re-appends the janitor when a runtime or
#              another installer rewrites a conflist, and picks up networks
#              created later. Needs no capabilities for root-owned files.
#   sweep      every SWEEP_INTERVAL seconds, `masq-janitor sweep --apply`: remove
#              masquerade state that leaked before the janitor was there. Needs
#              NET_ADMIN and NET_RAW, so it runs in its own container.
#   uninstall  take out exactly what install added (and the binary, once no
#              config names it; each conflist's backup goes once the file is
#              back to its original bytes), then idle.
# `entrypoint.sh ready` is the readiness probe: `masq-janitor check` on the same
# dirs (exit 0: installed and chained where it should be).
#
# Environment [default]:
#   MASQ_JANITOR      the masq-janitor executable in this image [/usr/local/bin/masq-janitor]
#   CNI_BIN_DIR       the node's CNI plugin dir as mounted here [/host/opt/cni/bin]
#   CNI_CONF_DIR      the node's CNI conf dir as mounted here [/host/etc/cni/net.d]
#   ACTION            install, sweep or uninstall [install]
#   INSTALL_INTERVAL  seconds between install rounds [30]
#   SWEEP_INTERVAL    seconds between sweeps (ACTION=sweep) [3600]
#   SWEEP_SETTLE      sweep --settle: seconds between reading the tables and
#                     the records, for container starts in flight [10]
#   METRICS_FILE      sweep --metrics-file: a Prometheus textfile for
#                     node_exporter's textfile collector; empty: none []
#   HOST_ROOT         where the host's k3s data is mounted, for the k3s check
#                     below; empty: no check []
#   HOST_CNI_BIN_DIR, HOST_CNI_CONF_DIR
#                     the host paths mounted at CNI_BIN_DIR and CNI_CONF_DIR,
#                     for the k3s check []
#   ONESHOT           non-empty: do one round and exit with its status []
#
# The k3s check: when HOST_ROOT holds /var/lib/rancher/k3s, masq-janitor reads
# k3s's containerd config there and says which dirs containerd really uses;
# if those are not the mounted HOST_CNI_* dirs, nothing is installed (a
# conflist naming a plugin containerd cannot find fails every pod start).
set -u

MASQ_JANITOR="${MASQ_JANITOR:-/usr/local/bin/masq-janitor}"
CNI_BIN_DIR="${CNI_BIN_DIR:-/host/opt/cni/bin}"
CNI_CONF_DIR="${CNI_CONF_DIR:-/host/etc/cni/net.d}"
ACTION="${ACTION:-install}"
INSTALL_INTERVAL="${INSTALL_INTERVAL:-30}"
SWEEP_INTERVAL="${SWEEP_INTERVAL:-3600}"
SWEEP_SETTLE="${SWEEP_SETTLE:-10}"
METRICS_FILE="${METRICS_FILE:-}"
HOST_ROOT="${HOST_ROOT:-}"
HOST_CNI_BIN_DIR="${HOST_CNI_BIN_DIR:-}"
HOST_CNI_CONF_DIR="${HOST_CNI_CONF_DIR:-}"
ONESHOT="${ONESHOT:-}"

log() { printf '%s masq-janitor-entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

if [ "${1:-}" = ready ]; then
  exec "$MASQ_JANITOR" check --conf-dir "$CNI_CONF_DIR" --bin-dir "$CNI_BIN_DIR" --json >/dev/null
fi

number() { # NAME VALUE MIN
  case "$2" in
    '' | *[!0-9]*) log "$1 must be a whole number of seconds, not '$2'"; exit 2 ;;
  esac
  [ "$2" -ge "$3" ] || { log "$1 must be at least $3, not '$2'"; exit 2; }
}
number INSTALL_INTERVAL "$INSTALL_INTERVAL" 1
number SWEEP_INTERVAL "$SWEEP_INTERVAL" 1
number SWEEP_SETTLE "$SWEEP_SETTLE" 0
case "$ACTION" in
  install | sweep | uninstall) ;;
  *) log "ACTION must be install, sweep or uninstall, not '$ACTION'"; exit 2 ;;
esac
if [ ! -x "$MASQ_JANITOR" ]; then
  log "$MASQ_JANITOR is missing or not executable"
  exit 2
fi

# PID 1 gets no default signal handling: stop promptly on TERM (pod deletion).
# Nothing is undone on the way out: the installed plugin keeps working without
# this pod, and a rolling update must not flap every node's conflists.
sleeper=''
trap 'log "stopping"; [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; exit 0' TERM INT

pause() {
  sleep "$1" &
  sleeper=$!
  wait "$sleeper"
  sleeper=''
}

# Refuse to work on dirs k3s's containerd does not read (see the header).
if [ -n "$HOST_ROOT" ] && [ -d "$HOST_ROOT/var/lib/rancher/k3s" ] && [ "$ACTION" != sweep ]; then
  found=$("$MASQ_JANITOR" install --runtime k3s --root "$HOST_ROOT" --skip-binary --dry-run 2>&1 >/dev/null |
    sed -n 's/^k3s: using conf dir \([^ ]*\) and bin dir \([^ ]*\) (.*$/\1 \2/p')
  want="${HOST_CNI_CONF_DIR} ${HOST_CNI_BIN_DIR}"
  if [ -z "$found" ]; then
    log "HOST_ROOT=$HOST_ROOT holds k3s, but its CNI dirs could not be read; not installing"
    exit 2
  elif [ "$found" != "$want" ]; then
    log "k3s's containerd uses conf dir and bin dir '$found', but '$want' is mounted; fix the hostPath volumes (examples/k3s/)"
    exit 2
  fi
  log "k3s: containerd uses $found, as mounted"
fi

if [ "$ACTION" = uninstall ]; then
  "$MASQ_JANITOR" uninstall --conf-dir "$CNI_CONF_DIR" --bin-dir "$CNI_BIN_DIR" --remove-binary 2>&1
  rc=$?
  log "uninstall finished (exit $rc); delete the DaemonSet now"
  [ -z "$ONESHOT" ] || exit "$rc"
  while :; do pause 3600; done
fi

if [ "$ACTION" = sweep ]; then
  while :; do
    if [ -n "$METRICS_FILE" ]; then
      "$MASQ_JANITOR" sweep --apply --settle "$SWEEP_SETTLE" --metrics-file "$METRICS_FILE" 2>&1
    else
      "$MASQ_JANITOR" sweep --apply --settle "$SWEEP_SETTLE" 2>&1
    fi
    rc=$?
    [ "$rc" -eq 0 ] || log "sweep --apply failed (exit $rc); next in ${SWEEP_INTERVAL}s"
    [ -z "$ONESHOT" ] || exit "$rc"
    pause "$SWEEP_INTERVAL"
  done
fi

last=''
while :; do
  out=$("$MASQ_JANITOR" install --conf-dir "$CNI_CONF_DIR" --bin-dir "$CNI_BIN_DIR" 2>&1)
  rc=$?
  # The report repeats every round; print it when it changes or fails.
  if [ "$rc" -ne 0 ] || [ "$out" != "$last" ]; then
    printf '%s\n' "$out"
    [ "$rc" -eq 0 ] || log "install failed (exit $rc); retrying in ${INSTALL_INTERVAL}s"
    last=$out
  fi
  [ -z "$ONESHOT" ] || exit "$rc"
  pause "$INSTALL_INTERVAL"
done
