#!/usr/bin/env bash
# masq-janitor demo: nerdctl's default network leaks masquerade rules and (phase 3) published-port
# DNAT rules; masq-janitor stops both leaks.
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

SERVER_PIDS=()    # echo servers we started inside container namespaces

cleanup() {
  set +e
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
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
# name and cniVersion, plus prevResult (file $3) when there is one, plus (like
# libcni's capability args) runtimeConfig.portMappings $4 for a plugin whose
# "capabilities" asks for portMappings, when the runtime passes any.
plugin_stdin() {
  local list=$1 index=$2 prev=${3:-} maps=${4:-null}
  local base='.plugins[$i] + {cniVersion: .cniVersion, name: .name}
    + (if $maps != null and (.plugins[$i].capabilities.portMappings // false) then {runtimeConfig: {portMappings: $maps}} else {} end)'
  if [[ -n $prev ]]; then
    jq -c --argjson i "$index" --argjson maps "$maps" --slurpfile prev "$prev" "$base + {prevResult: \$prev[0]}" "$list"
  else
    jq -c --argjson i "$index" --argjson maps "$maps" "$base" "$list"
  fi
}

# run_plugin HOST_NS LIST INDEX VERB CONTAINER_ID NETNS PREV_FILE OUT_FILE [PORT_MAPPINGS_JSON]
run_plugin() {
  local host=$1 list=$2 index=$3 verb=$4 cid=$5 netns=$6 prev=$7 out=$8 maps=${9:-null} type
  type=$(jq -r --argjson i "$index" '.plugins[$i].type' "$list")
  if ! plugin_stdin "$list" "$index" "$prev" "$maps" |
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

# --- phase 3: hostPort (portmap) state and the hijack ----------------------
# portmap's DEL returns at once when the runtime passes no portMappings (after a
# kill, a failed start, a restart), so the container's DNAT state stays: a chain
# CNI-DN-<hash> entered from CNI-HOSTPORT-DNAT. The next container publishing the
# same host port is shadowed by it: connections follow the stale DNAT to the old IP.
PORT_MAPS='[{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]'
GATEWAY=$(jq -r '.plugins[0].ipam.ranges[0][0].gateway' "$CONFLIST")
# The janitor half is required: with it, host port 8080 must reach B and nothing of A may be left.
# (HOSTPORT_JANITOR=report only reports it, e.g. to show the leak with an older build.)
HOSTPORT_JANITOR=${HOSTPORT_JANITOR:-required}

dn_chain() { # NETWORK CONTAINER_ID -> portmap's chain name: CNI-DN- + sha512(network + id), 28 chars
  printf 'CNI-DN-%s' "$(printf '%s%s' "$1" "$2" | sha512sum | cut -c1-21)"
}

# A tiny TCP echo server on port 80 inside NETNS answering REPLY; gone after 60 s at the latest.
echo_server() { # NETNS REPLY
  ip netns exec "$1" "$NODE" -e 'require("net").createServer((c) => c.end(process.argv[1])).listen(80); setTimeout(() => process.exit(0), 60000);' "$2" &
  SERVER_PIDS+=("$!")
  local i
  for ((i = 0; i < 50; i++)); do
    ip netns exec "$1" ss -Hltn 'sport = :80' | grep -q . && return 0
    sleep 0.1
  done
  die "the echo server in $1 did not start"
}

stop_servers() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; done
  SERVER_PIDS=()
}

# Connect from HOST_NS to ADDR:PORT; prints what the server said, or why nothing did (within 3 s).
connect() { # HOST_NS ADDR PORT
  ip netns exec "$1" "$NODE" -e '
    const s = require("net").connect({ host: process.argv[1], port: Number(process.argv[2]) });
    let d = ""; s.setTimeout(3000, () => { console.log("nothing answered (timeout)"); process.exit(0); });
    s.on("data", (b) => (d += b)); s.on("end", () => { console.log(d); process.exit(0); });
    s.on("error", (e) => { console.log("nothing answered (" + e.code + ")"); process.exit(0); });' "$2" "$3"
}

# ADD container CID through LIST in HOST_NS with PORT_MAPS; sets HP_IP to its first address.
# (Not run in a $(...) subshell: new_netns must record the namespace for cleanup.)
hp_add() { # HOST_NS LIST CID
  local host=$1 list=$2 cid=$3 dir=$WORK/$1/$3 n i prev=""
  mkdir -p "$dir"
  new_netns "$host-$cid"
  n=$(jq '.plugins | length' "$list")
  for ((i = 0; i < n; i++)); do
    run_plugin "$host" "$list" "$i" ADD "$cid" "/var/run/netns/$host-$cid" "$prev" "$dir/add-$i.json" "$PORT_MAPS"
    prev=$dir/add-$i.json
  done
  cp "$prev" "$dir/result.json"
  HP_IP=$(jq -r '.ips[0].address | split("/")[0]' "$dir/result.json")
}

# The container exits; DEL in reverse with CNI_NETNS="" and no portMappings (what a runtime sends after a kill).
hp_kill() { # HOST_NS LIST CID
  local host=$1 list=$2 cid=$3 dir=$WORK/$1/$3 n i
  ip netns delete "$host-$cid"
  n=$(jq '.plugins | length' "$list")
  for ((i = n - 1; i >= 0; i--)); do
    run_plugin "$host" "$list" "$i" DEL "$cid" "" "$dir/result.json" "$dir/del-$i.json"
  done
}

# Sets HP_REPLY (what host port 8080 reached at the end) and HP_LEFT (rules of A's DNAT state left).
hostport_phase() { # NAME CONFLIST_FILE
  local host="masq-demo-$RUN_ID-hp-$1" list=$2 ip_a ip_b chain
  new_netns "$host"
  ip netns exec "$host" ip link set lo up
  hp_add "$host" "$list" default-hp-a
  ip_a=$HP_IP
  echo_server "$host-default-hp-a" "hello from container A ($ip_a)"
  echo "    default-hp-a ADD with portMappings 8080->80, IP $ip_a: $GATEWAY:8080 reaches: $(connect "$host" "$GATEWAY" 8080)"
  stop_servers
  hp_kill "$host" "$list" default-hp-a
  echo "    default-hp-a killed: netns deleted, DEL with CNI_NETNS=\"\" and no portMappings ok"
  hp_add "$host" "$list" default-hp-b
  ip_b=$HP_IP
  echo_server "$host-default-hp-b" "hello from container B ($ip_b)"
  HP_REPLY=$(connect "$host" "$GATEWAY" 8080)
  echo "    default-hp-b ADD with portMappings 8080->80, IP $ip_b: $GATEWAY:8080 reaches: $HP_REPLY"
  chain=$(dn_chain "$(jq -r .name "$list")" default-hp-a)
  HP_LEFT=$(ip netns exec "$host" iptables -w 5 -t nat -S | grep -cE "(^-N $chain\$|^-A $chain |-j $chain( |\$))" || true)
  echo "  default-hp-a's DNAT state left ($chain, its rules and entry rules): $HP_LEFT lines"
  if ((HP_LEFT > 0)); then
    ip netns exec "$host" iptables -w 5 -t nat -S | grep -E "(^-N $chain\$|^-A $chain |-j $chain( |\$))" | sed 's/^/    /'
  fi
  stop_servers
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
echo "== 3. hostPort: A publishes 8080, is killed (DEL without portMappings), B publishes 8080"
echo "  without masq-janitor (fresh host netns masq-demo-$RUN_ID-hp-plain):"
hostport_phase plain "$WORK/plain.conflist"
HP_PLAIN_REPLY=$HP_REPLY HP_PLAIN_LEFT=$HP_LEFT
echo "  with masq-janitor (fresh host netns masq-demo-$RUN_ID-hp-janitor):"
hostport_phase janitor "$WORK/janitor.conflist"
HP_JANITOR_REPLY=$HP_REPLY HP_JANITOR_LEFT=$HP_LEFT
echo
echo "== result"
echo "  without masq-janitor: $LEAK_CHAINS chains, $LEAK_RULES rules leaked"
if ((AFTER_CHAINS + AFTER_RULES == 0)); then
  echo "  with masq-janitor:    0 leaked"
else
  echo "  with masq-janitor:    $AFTER_CHAINS chains, $AFTER_RULES rules leaked"
fi

echo "  hostPort 8080 after A's leak, without masq-janitor: $HP_PLAIN_REPLY ($HP_PLAIN_LEFT lines of A's DNAT state left)"
echo "  hostPort 8080 after A's leak, with masq-janitor:    $HP_JANITOR_REPLY ($HP_JANITOR_LEFT lines of A's DNAT state left)"

if ((LEAK_CHAINS == 0)); then
  die "no leak without masq-janitor: this bridge plugin already cleans up on DEL with an empty netns?"
fi
if ((AFTER_CHAINS + AFTER_RULES > 0)); then
  die "masq-janitor left masquerade state behind (listed above)"
fi
if ((HP_PLAIN_LEFT == 0)) || [[ $HP_PLAIN_REPLY == "hello from container B"* ]]; then
  die "no hostport leak without masq-janitor: this portmap already cleans up on DEL without portMappings?"
fi
if ((HP_JANITOR_LEFT > 0)) || [[ $HP_JANITOR_REPLY != "hello from container B"* ]]; then
  if [[ $HOSTPORT_JANITOR == required ]]; then
    die "with masq-janitor host port 8080 still does not reach the new container"
  fi
  echo "  (hostPort with masq-janitor: not cleaned; reported only, HOSTPORT_JANITOR=$HOSTPORT_JANITOR)"
fi
echo "  demo OK: the leak, then its absence"
