#!/usr/bin/env bash
# Throughput and latency of our userspace WireGuard against Debian's wireguard-go and the raw veth, in one run.
#
# Topology: two network namespaces joined by a veth pair (192.0.2.1/24 <-> 192.0.2.2/24). For each tunnel both
# ends run the same implementation (our drop-in sample, or wireguard-go), tunnel addresses 10.77.0.1 <-> 10.77.0.2,
# configured with `wg` and `ip` exactly the same way. Per round and tunnel, alternating (ours, wireguard-go, veth):
# ping idle (RTT), iperf3 TCP A->B for SECONDS_PER_RUN with a ping running beside it (RTT under load), and iperf3 TCP
# B->A (-R). Prints each median and ends with the ratio lines, the first being
#   throughput ratio cloudvpn/wireguard-go: R
# Needs root, iproute2, iperf3, iputils-ping, wireguard-go, wireguard-tools and the .NET SDK.
# Environment: SECONDS_PER_RUN (10), ROUNDS (3), OURS (path to a published drop-in; built when unset),
# VARIANTS: more runs of our drop-in with data-path switches turned off, as "name:VAR=value[,VAR=value]" words, e.g.
#   VARIANTS="no-tun-offload:CLOUDVPN_WG_TUN_OFFLOADS=0 one-by-one:CLOUDVPN_WG_BATCHING=0"
# (the switches: docs/wireguard-device.md, "Data path switches").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
ROUNDS="${ROUNDS:-3}"
ID=$$
NS_A="cvbA$ID"; NS_B="cvbB$ID"
WORK=$(mktemp -d /tmp/cloudvpn-bench.XXXXXX)
PIDS=()

cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  ip netns del "$NS_A" 2>/dev/null
  ip netns del "$NS_B" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in ip iperf3 wireguard-go wg ping; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces, TUN devices)" >&2; exit 1; }

if [ -z "${OURS:-}" ]; then
  echo "building the drop-in (Release) ..." >&2
  dotnet publish samples/CloudVpn.Samples.UserspaceWireGuard -c Release -o "$WORK/ours" -nologo -v quiet >&2
  OURS="$WORK/ours/CloudVpn.Samples.UserspaceWireGuard"
fi

ip netns add "$NS_A"; ip netns add "$NS_B"
ip link add veth0 netns "$NS_A" type veth peer name veth0 netns "$NS_B"
ip -n "$NS_A" addr add 192.0.2.1/24 dev veth0
ip -n "$NS_B" addr add 192.0.2.2/24 dev veth0
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done

KEY_A=$(wg genkey); KEY_B=$(wg genkey)
PUB_A=$(echo "$KEY_A" | wg pubkey); PUB_B=$(echo "$KEY_B" | wg pubkey)
echo "$KEY_A" > "$WORK/a.key"; echo "$KEY_B" > "$WORK/b.key"

ip netns exec "$NS_B" iperf3 -s >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5

# start_tunnel <kind> <suffix> [VAR=value,...]: runs <kind> (ours|wggo) in both namespaces as interfaces
# cv<suffix>a / cv<suffix>b, ours with the given environment
start_tunnel() {
  local kind=$1 ifa="cv$2a$ID" ifb="cv$2b$ID" envs=${3:-}
  ifa=${ifa:0:15}; ifb=${ifb:0:15}
  for side in a b; do
    local ns=$NS_A ifname=$ifa
    [ "$side" = b ] && ns=$NS_B ifname=$ifb
    if [ "$kind" = ours ]; then
      # shellcheck disable=SC2086
      ip netns exec "$ns" env CLOUDVPN_WG_STATS_FILE="$WORK/stats-$side" ${envs//,/ } "$OURS" -f "$ifname" >"$WORK/$kind-$side.log" 2>&1 &
    else
      ip netns exec "$ns" wireguard-go -f "$ifname" >"$WORK/$kind-$side.log" 2>&1 &
    fi
    PIDS+=($!)
  done
  for _ in $(seq 100); do
    [ -S "/var/run/wireguard/$ifa.sock" ] && [ -S "/var/run/wireguard/$ifb.sock" ] && break
    sleep 0.1
  done
  ip netns exec "$NS_A" wg set "$ifa" private-key "$WORK/a.key" listen-port 51820 \
    peer "$PUB_B" endpoint 192.0.2.2:51820 allowed-ips 10.77.0.2/32
  ip netns exec "$NS_B" wg set "$ifb" private-key "$WORK/b.key" listen-port 51820 \
    peer "$PUB_A" endpoint 192.0.2.1:51820 allowed-ips 10.77.0.1/32
  ip -n "$NS_A" addr add 10.77.0.1/24 dev "$ifa"; ip -n "$NS_A" link set "$ifa" up
  ip -n "$NS_B" addr add 10.77.0.2/24 dev "$ifb"; ip -n "$NS_B" link set "$ifb" up
  ip netns exec "$NS_A" ping -c 1 -W 5 10.77.0.2 >/dev/null || { echo "$kind tunnel does not pass traffic" >&2; cat "$WORK/$kind-"*.log >&2; exit 1; }
  TUN_A=$ifa; TUN_B=$ifb
}

stop_tunnel() {
  ip -n "$NS_A" link del "$TUN_A" 2>/dev/null || true
  ip -n "$NS_B" link del "$TUN_B" 2>/dev/null || true
  rm -f "/var/run/wireguard/$TUN_A.sock" "/var/run/wireguard/$TUN_B.sock"
  sleep 0.5
}

# measure <target ip> [-R]: iperf3 TCP between A and B (A->B, or B->A with -R), prints Mbit/s of the receiver
measure() {
  ip netns exec "$NS_A" iperf3 -c "$1" -t "$SECONDS_PER_RUN" -J ${2:-} \
    | python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}

# rtt <target ip> <count>: average ping round trip in ms (0.02 s apart)
rtt() {
  ip netns exec "$NS_A" ping -q -n -c "$2" -i 0.02 -W 2 "$1" | awk -F/ '/^rtt|^round-trip/ { print $5 }'
}

# stat <side> <key>: a value from our drop-in's statistics file (written every 0.5 s)
stat() { awk -F= -v k="$2" '$1 == k { print $2 }' "$WORK/stats-$1" 2>/dev/null || echo 0; }

# alloc_begin / alloc_end: our allocation counters around one transfer of the cloudvpn tunnel. The stats file is
# rewritten every 0.5 s, so each waits 0.6 s for a sample taken after the traffic before it (the begin: after the
# tunnel is up, its first ping and the idle pings; the end: after the transfer). alloc_end adds the difference of
# both ends to ALLOC_BYTES and ALLOC_PACKETS (the data path threads), and to ALLOC_REST what the rest of the two
# processes allocated meanwhile, less what writing the stats file allocated itself.
# alloc_snapshot: the four counters of each end, each end's read from one version of its file (one awk)
alloc_snapshot() {
  local side
  for side in a b; do
    awk -F= '{ v[$1] = $2 } END { printf "%d %d %d %d ", v["data_path_allocated_bytes"], v["data_path_packets"], v["allocated_bytes"], v["stats_writer_allocated_bytes"] }' "$WORK/stats-$side" 2>/dev/null || printf '0 0 0 0 '
  done
}
alloc_begin() { sleep 0.6; ALLOC0=$(alloc_snapshot); }
alloc_end() {
  sleep 0.6
  local now was i
  read -r -a now <<< "$(alloc_snapshot)"
  read -r -a was <<< "$ALLOC0"
  for i in 0 4; do
    ALLOC_BYTES=$(( ALLOC_BYTES + now[i] - was[i] ))
    ALLOC_PACKETS=$(( ALLOC_PACKETS + now[i+1] - was[i+1] ))
    ALLOC_REST=$(( ALLOC_REST + (now[i+2] - was[i+2]) - (now[i+3] - was[i+3]) ))
  done
}

# run_all <name> <target ip>: idle RTT, forward throughput with RTT under load, reverse throughput; appends to
# the arrays <name>_F, <name>_R, <name>_I, <name>_L; for cloudvpn also counts the data path allocations of both
# ends over each transfer, from its start
run_all() {
  local name=$1 target=$2 idle loaded fwd rev pingpid
  idle=$(rtt "$target" 50)
  if [ "$name" = cloudvpn ]; then alloc_begin; fi
  ( sleep 1; rtt "$target" $(( (SECONDS_PER_RUN - 2) * 50 )) > "$WORK/loaded.rtt" ) &
  pingpid=$!
  fwd=$(measure "$target")
  wait "$pingpid"; loaded=$(cat "$WORK/loaded.rtt")
  if [ "$name" = cloudvpn ]; then alloc_end; alloc_begin; fi
  rev=$(measure "$target" -R)
  if [ "$name" = cloudvpn ]; then alloc_end; fi
  eval "${name}_F+=(\"$fwd\"); ${name}_R+=(\"$rev\"); ${name}_I+=(\"$idle\"); ${name}_L+=(\"$loaded\")"
  echo "round $round $(printf '%-22s' "$name:") A->B $fwd Mbit/s, B->A $rev Mbit/s, rtt idle $idle ms, under load $loaded ms" >&2
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

NAMES=(cloudvpn wireguard_go veth)
VARIANT_NAMES=()
for v in ${VARIANTS:-}; do
  n="v_${v%%:*}"; n=${n//-/_}; VARIANT_NAMES+=("$n"); NAMES+=("$n")
done
for n in "${NAMES[@]}"; do eval "${n}_F=(); ${n}_R=(); ${n}_I=(); ${n}_L=()"; done

ALLOC_BYTES=0; ALLOC_PACKETS=0; ALLOC_REST=0
for round in $(seq "$ROUNDS"); do
  rm -f "$WORK"/stats-*
  start_tunnel ours o; run_all cloudvpn 10.77.0.2; stop_tunnel
  start_tunnel wggo g; run_all wireguard_go 10.77.0.2; stop_tunnel
  run_all veth 192.0.2.2
  i=0
  for v in ${VARIANTS:-}; do
    start_tunnel ours "v$i" "${v#*:}"; run_all "${VARIANT_NAMES[$i]}" 10.77.0.2; stop_tunnel
    i=$((i + 1))
  done
done

for n in "${NAMES[@]}"; do
  eval "f=\$(median \"\${${n}_F[@]}\"); r=\$(median \"\${${n}_R[@]}\"); i=\$(median \"\${${n}_I[@]}\"); l=\$(median \"\${${n}_L[@]}\")"
  eval "M_${n}_F=$f; M_${n}_R=$r; M_${n}_I=$i; M_${n}_L=$l"
  printf 'median %-22s A->B %s Mbit/s, B->A %s Mbit/s, rtt idle %s ms, rtt under load %s ms\n' "$n:" "$f" "$r" "$i" "$l"
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "fraction of the raw veth (A->B): cloudvpn $(ratio "$M_cloudvpn_F" "$M_veth_F"), wireguard-go $(ratio "$M_wireguard_go_F" "$M_veth_F")"
for n in "${VARIANT_NAMES[@]}"; do
  eval "vf=\$M_${n}_F; vr=\$M_${n}_R"
  echo "variant ${n#v_}: A->B $(ratio "$vf" "$M_wireguard_go_F") x wireguard-go, B->A $(ratio "$vr" "$M_wireguard_go_R") x wireguard-go"
done
echo "data path allocations of cloudvpn over its transfers, A->B and B->A from the start of each (both ends): $ALLOC_BYTES bytes for $ALLOC_PACKETS packets"
echo "other allocations of the cloudvpn processes over the same transfers (both ends, besides writing their stats file): $ALLOC_REST bytes"
echo "latency ratio idle cloudvpn/wireguard-go: $(ratio "$M_cloudvpn_I" "$M_wireguard_go_I")"
echo "latency ratio under load cloudvpn/wireguard-go: $(ratio "$M_cloudvpn_L" "$M_wireguard_go_L")"
echo "reverse throughput ratio cloudvpn/wireguard-go: $(ratio "$M_cloudvpn_R" "$M_wireguard_go_R")"
echo "throughput ratio cloudvpn/wireguard-go: $(ratio "$M_cloudvpn_F" "$M_wireguard_go_F")"
