#!/usr/bin/env bash
# masq-janitor demo: nerdctl's default network leaks masquerade rules; masq-janitor stops the leak.
#
# Everything happens inside throwaway network namespaces, so this machine's own
# iptables rules, interfaces and files are never touched. Two phases, each in a
# fresh "host" netns, each with three container lifecycles through
# examples/original/nerdctl-bridge.conflist:
#   1. the conflist exactly as nerdctl ships it;
#   2. the same conflist with {"type": "masq-janitor"} appended as the last plugin.
#
# One lifecycle is what nerdctl and `ctr run --cni` do, played by hand:
#   ADD  the plugins in order; each gets the previous plugin's result as prevResult,
#        and (like libcni) the network's "name" and "cniVersion";
#   the container exits and its network namespace is gone;
#   DEL  the plugins in reverse order with CNI_NETNS="" (nerdctl and ctr always pass
#        an empty netns on DEL); each gets the final ADD result as prevResult.
# bridge skips its masquerade teardown when CNI_NETNS is empty, so each container
# leaves a CNI-<hash> chain and its rules in the nat table
# (containernetworking/plugins#810); masq-janitor removes them.
#
# Run as root after building (`make demo` does both). Needs jq, iproute2, iptables
# and the CNI plugins in /usr/lib/cni (Debian: containernetworking-plugins).
# Exit status 0: the leak was shown, and then its absence with masq-janitor.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CONFLIST=examples/original/nerdctl-bridge.conflist
JANITOR=$PWD/dist/masq-janitor
PLUGIN_DIR=${CNI_PLUGIN_DIR:-/usr/lib/cni}
CONTAINERS=(default-c1 default-c2 default-c3)   # ctr and nerdctl pass "<namespace>-<container id>"

die() { echo "demo: $*" >&2; exit 1; }

# --- preflight ---------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "run as root (it creates network namespaces and iptables rules inside them)"
for tool in jq ip iptables ip6tables; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: apt-get install jq iproute2 iptables)"
done
[[ -x $PLUGIN_DIR/bridge ]] || die "no CNI plugins in $PLUGIN_DIR (Debian: apt-get install containernetworking-plugins)"
[[ -x $JANITOR ]] || die "$JANITOR not built: run 'make demo' or 'npx tsup' first"
NODE=$(command -v node) || die "node not found on PATH (masq-janitor is a Node script)"

# --- a throwaway world, removed on any exit (also on Ctrl-C or failure) ------
RUN_ID="$$-$RANDOM"
WORK=$(mktemp -d "/tmp/masq-demo.$RUN_ID.XXXXXX")
NETNS_MADE=()     # every namespace we create, host and container ones

cleanup() {
  set +e
  for ns in "${NETNS_MADE[@]}"; do
    ip netns delete "$ns" 2>/dev/null   # the nerdctl0 bridge and veths live in there and go with it
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

new_netns() { ip netns add "$1"; NETNS_MADE+=("$1"); }

# CNI_PATH as a runtime would have it: a directory with the upstream plugins and masq-janitor.
mkdir -p "$WORK/bin"
ln -s "$PLUGIN_DIR"/* "$WORK/bin/"
ln -s "$JANITOR" "$WORK/bin/masq-janitor"

# Plugins inherit the runtime's environment; keep it small, but with node on PATH.
PLUGIN_PATH="$(dirname "$NODE"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# --- CNI, played the way libcni does it -------------------------------------
# stdin for plugin number $2 of conflist $1: the plugin object plus the injected
# name and cniVersion, plus prevResult (file $3) when there is one.
plugin_stdin() {
  local list=$1 index=$2 prev=${3:-}
  if [[ -n $prev ]]; then
    jq -c --argjson i "$index" --slurpfile prev "$prev" \
      '.plugins[$i] + {cniVersion: .cniVersion, name: .name, prevResult: $prev[0]}' "$list"
  else
    jq -c --argjson i "$index" '.plugins[$i] + {cniVersion: .cniVersion, name: .name}' "$list"
  fi
}

# run_plugin HOST_NS LIST INDEX VERB CONTAINER_ID NETNS PREV_FILE OUT_FILE
run_plugin() {
  local host=$1 list=$2 index=$3 verb=$4 cid=$5 netns=$6 prev=$7 out=$8 type
  type=$(jq -r --argjson i "$index" '.plugins[$i].type' "$list")
  if ! plugin_stdin "$list" "$index" "$prev" |
       ip netns exec "$host" env -i PATH="$PLUGIN_PATH" \
         CNI_COMMAND="$verb" CNI_CONTAINERID="$cid" CNI_NETNS="$netns" CNI_IFNAME=eth0 \
         CNI_ARGS="IgnoreUnknown=1" CNI_PATH="$WORK/bin" \
         "$WORK/bin/$type" >"$out"; then
    echo "    $verb failed in plugin \"$type\" for $cid:" >&2
    sed 's/^/      /' "$out" >&2
    die "a plugin failed; libcni would stop here too"
  fi
}

# One container: ADD through the list, the netns goes away, DEL in reverse with CNI_NETNS="".
lifecycle() {
  local host=$1 list=$2 cid=$3 dir=$WORK/$host/$3 cns n i prev=""
  mkdir -p "$dir"
  cns="$host-$cid"
  new_netns "$cns"
  n=$(jq '.plugins | length' "$list")
  for ((i = 0; i < n; i++)); do
    run_plugin "$host" "$list" "$i" ADD "$cid" "/var/run/netns/$cns" "$prev" "$dir/add-$i.json"
    prev=$dir/add-$i.json
  done
  cp "$prev" "$dir/result.json"   # what libcni caches in /var/lib/cni/results
  ip netns delete "$cns"          # the container exits
  for ((i = n - 1; i >= 0; i--)); do
    run_plugin "$host" "$list" "$i" DEL "$cid" "" "$dir/result.json" "$dir/del-$i.json"
  done
  printf '    %-11s ADD %s (%s), netns deleted, DEL with CNI_NETNS="" ok\n' "$cid" \
    "$(jq -r '[.plugins[].type] | join(" → ")' "$list")" "$(jq -r '[.ips[].address] | join(", ")' "$dir/result.json")"
}

# --- what is left ------------------------------------------------------------
# Masquerade state in one family's nat table: chains named CNI-<24 hex> (bridge's
# per-container chains), the rules inside them and the POSTROUTING jumps into them.
MASQ_CHAIN='CNI-[0-9a-f]{24}'
nat_leftovers() { # HOST_NS iptables|ip6tables
  ip netns exec "$1" "$2" -w 5 -t nat -S | grep -E "^-N $MASQ_CHAIN\$|^-A $MASQ_CHAIN |-j $MASQ_CHAIN( |\$)" || true
}
count() { grep -cE "$1" <<<"$2" || true; }

# Leftovers of one phase; sets TOTAL_CHAINS and TOTAL_RULES, prints a summary and a listing.
report() {
  local host=$1 ipam=$2 v4 v6 c4 r4 c6 r6 reserved
  v4=$(nat_leftovers "$host" iptables)
  v6=$(nat_leftovers "$host" ip6tables)
  c4=$(count '^-N ' "$v4"); r4=$(count '^-A ' "$v4")
  c6=$(count '^-N ' "$v6"); r6=$(count '^-A ' "$v6")
  TOTAL_CHAINS=$((c4 + c6)); TOTAL_RULES=$((r4 + r6))
  reserved=$(find "$ipam" -type f ! -name lock ! -name 'last_reserved_ip.*' 2>/dev/null | wc -l)
  echo "  left in the host's nat tables after the three DELs:"
  echo "    IPv4 (iptables -t nat):  $c4 chains, $r4 rules"
  echo "    IPv6 (ip6tables -t nat): $c6 chains, $r6 rules"
  echo "    IPAM (host-local) reservations still held: $reserved"
  if ((TOTAL_CHAINS + TOTAL_RULES > 0)); then
    echo "  the leaked rules (iptables -t nat -S):"
    printf '%s\n' "$v4" "$v6" | grep -v '^$' | sed 's/^/    /'
  fi
}

# One phase in its own fresh host netns with its own IPAM dataDir.
phase() { # NAME CONFLIST_FILE
  local host="masq-demo-$RUN_ID-$1" list=$2 cid
  new_netns "$host"
  ip netns exec "$host" ip link set lo up
  for cid in "${CONTAINERS[@]}"; do lifecycle "$host" "$list" "$cid"; done
  report "$host" "$WORK/ipam-$1"
}

# --- the two conflists -------------------------------------------------------
# The only change for the demo: host-local keeps its reservations in a temp dir.
jq --arg d "$WORK/ipam-plain" '.plugins[0].ipam.dataDir = $d' "$CONFLIST" >"$WORK/plain.conflist"
jq --arg d "$WORK/ipam-janitor" '.plugins[0].ipam.dataDir = $d | .plugins += [{"type": "masq-janitor"}]' \
  "$CONFLIST" >"$WORK/janitor.conflist"

echo "masq-janitor demo: nerdctl's default network, $CONFLIST ($(iptables -V))"
echo "Each container: ADD, its netns deleted, then DEL with CNI_NETNS=\"\" as nerdctl and ctr send it."
echo
echo "== 1. the conflist as nerdctl ships it (fresh host netns masq-demo-$RUN_ID-plain)"
phase plain "$WORK/plain.conflist"
LEAK_CHAINS=$TOTAL_CHAINS LEAK_RULES=$TOTAL_RULES
echo
echo "== 2. the same with {\"type\": \"masq-janitor\"} appended (fresh host netns masq-demo-$RUN_ID-janitor)"
phase janitor "$WORK/janitor.conflist"
AFTER_CHAINS=$TOTAL_CHAINS AFTER_RULES=$TOTAL_RULES
echo
echo "== result"
echo "  without masq-janitor: $LEAK_CHAINS chains, $LEAK_RULES rules leaked"
if ((AFTER_CHAINS + AFTER_RULES == 0)); then
  echo "  with masq-janitor:    0 leaked"
else
  echo "  with masq-janitor:    $AFTER_CHAINS chains, $AFTER_RULES rules leaked"
fi

if ((LEAK_CHAINS == 0)); then
  die "no leak without masq-janitor: this bridge plugin already cleans up on DEL with an empty netns?"
fi
if ((AFTER_CHAINS + AFTER_RULES > 0)); then
  die "masq-janitor left masquerade state behind (listed above)"
fi
echo "  demo OK: the leak, then its absence"
