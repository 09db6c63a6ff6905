#!/bin/sh
# masq-janitor DaemonSet entrypoint: install masq-janitor into the node's CNI
# directories (mounted from the host), keep it installed, and optionally sweep
# masquerade state that leaked before it was there.
#
# Keeping it installed is a poll: `masq-janitor install` is idempotent and
# cheap when nothing changed (one compare of the binary, one read per config),
# so running it every INSTALL_INTERVAL seconds re-appends the janitor when a
# runtime or another installer rewrites a conflist, and picks up networks
# created later (nerdctl network create, CNI operators).
#
# Environment [default]:
#   MASQ_JANITOR      the masq-janitor executable in this image [/usr/local/bin/masq-janitor]
#   CNI_BIN_DIR       the node's CNI plugin dir as mounted here [/host/opt/cni/bin]
#   CNI_CONF_DIR      the node's CNI conf dir as mounted here [/host/etc/cni/net.d]
#   INSTALL_INTERVAL  seconds between install rounds [30]
#   SWEEP_INTERVAL    seconds between `masq-janitor sweep --apply` runs; empty: never []
#   ACTION            install, or uninstall: take out what install added (and
#                     the binary, once no config names it), then idle [install]
#   ONESHOT           non-empty: do one round and exit with its status (init
#                     containers, tests) []
set -u

MASQ_JANITOR="${MASQ_JANITOR:-/usr/local/bin/masq-janitor}"
CNI_BIN_DIR="${CNI_BIN_DIR:-/host/opt/cni/bin}"
CNI_CONF_DIR="${CNI_CONF_DIR:-/host/etc/cni/net.d}"
INSTALL_INTERVAL="${INSTALL_INTERVAL:-30}"
SWEEP_INTERVAL="${SWEEP_INTERVAL:-}"
ACTION="${ACTION:-install}"
ONESHOT="${ONESHOT:-}"

log() { printf '%s masq-janitor-entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"; }

positive() {
  case "$2" in
    '' | *[!0-9]* | 0) log "$1 must be a positive number of seconds, not '$2'"; exit 2 ;;
  esac
}
positive INSTALL_INTERVAL "$INSTALL_INTERVAL"
[ -z "$SWEEP_INTERVAL" ] || positive SWEEP_INTERVAL "$SWEEP_INTERVAL"
case "$ACTION" in
  install | uninstall) ;;
  *) log "ACTION must be install or uninstall, not '$ACTION'"; exit 2 ;;
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

if [ "$ACTION" = uninstall ]; then
  "$MASQ_JANITOR" uninstall --conf-dir "$CNI_CONF_DIR" --bin-dir "$CNI_BIN_DIR" --remove-binary 2>&1
  rc=$?
  log "uninstall finished (exit $rc); delete the DaemonSet now"
  [ -z "$ONESHOT" ] || exit "$rc"
  while :; do pause 3600; done
fi

last=''
next_sweep=0
while :; do
  out=$("$MASQ_JANITOR" install --conf-dir "$CNI_CONF_DIR" --bin-dir "$CNI_BIN_DIR" 2>&1)
  rc=$?
  # The report repeats every round; print it when it changes or fails.
  if [ "$rc" -ne 0 ] || [ "$out" != "$last" ]; then
    printf '%s\n' "$out"
    [ "$rc" -eq 0 ] || log "install failed (exit $rc); retrying in ${INSTALL_INTERVAL}s"
    last=$out
  fi
  if [ -n "$SWEEP_INTERVAL" ] && [ "$(date +%s)" -ge "$next_sweep" ]; then
    "$MASQ_JANITOR" sweep --apply --settle 10 2>&1
    src=$?
    [ "$src" -eq 0 ] || log "sweep --apply failed (exit $src)"
    [ "$rc" -ne 0 ] || rc=$src
    next_sweep=$(($(date +%s) + SWEEP_INTERVAL))
  fi
  [ -z "$ONESHOT" ] || exit "$rc"
  pause "$INSTALL_INTERVAL"
done
