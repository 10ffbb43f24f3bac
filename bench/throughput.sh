#!/usr/bin/env bash
# Throughput of our userspace WireGuard against Debian's wireguard-go and the raw veth, in one run.
#
# Topology: two network namespaces joined by a veth pair (192.0.2.1/24 <-> 192.0.2.2/24). For each tunnel both
# ends run the same implementation (our drop-in sample, or wireguard-go), tunnel addresses 10.77.0.1 <-> 10.77.0.2,
# configured with `wg` and `ip` exactly the same way. iperf3 TCP, 10 s per run, 3 rounds alternating
# (ours, wireguard-go, veth). Prints each median and ends with
#   throughput ratio cloudvpn/wireguard-go: R
# Needs root, iproute2, iperf3, wireguard-go, wireguard-tools and the .NET SDK.
# Environment: SECONDS_PER_RUN (10), ROUNDS (3), OURS (path to a published drop-in; built when unset).
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

for tool in ip iperf3 wireguard-go wg; do
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

# start_tunnel <kind> <suffix>: runs <kind> (ours|wggo) in both namespaces as interfaces cv<suffix>a / cv<suffix>b
start_tunnel() {
  local kind=$1 ifa="cv$2a$ID" ifb="cv$2b$ID"
  ifa=${ifa:0:15}; ifb=${ifb:0:15}
  for side in a b; do
    local ns=$NS_A ifname=$ifa
    [ "$side" = b ] && ns=$NS_B ifname=$ifb
    if [ "$kind" = ours ]; then
      ip netns exec "$ns" "$OURS" -f "$ifname" >"$WORK/$kind-$side.log" 2>&1 &
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

# measure <target ip>: iperf3 TCP from A to B, prints Mbit/s of the receiver
measure() {
  ip netns exec "$NS_A" iperf3 -c "$1" -t "$SECONDS_PER_RUN" -J \
    | python3 -c 'import json,sys; print("%.1f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6))'
}

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

OURS_R=(); WGGO_R=(); VETH_R=()
for round in $(seq "$ROUNDS"); do
  start_tunnel ours o; r=$(measure 10.77.0.2); stop_tunnel; OURS_R+=("$r")
  echo "round $round cloudvpn:     $r Mbit/s" >&2
  start_tunnel wggo g; r=$(measure 10.77.0.2); stop_tunnel; WGGO_R+=("$r")
  echo "round $round wireguard-go: $r Mbit/s" >&2
  r=$(measure 192.0.2.2); VETH_R+=("$r")
  echo "round $round veth:         $r Mbit/s" >&2
done

M_OURS=$(median "${OURS_R[@]}"); M_WGGO=$(median "${WGGO_R[@]}"); M_VETH=$(median "${VETH_R[@]}")
echo "median cloudvpn:     $M_OURS Mbit/s"
echo "median wireguard-go: $M_WGGO Mbit/s"
echo "median veth:         $M_VETH Mbit/s"
awk -v a="$M_OURS" -v b="$M_WGGO" 'BEGIN { printf "throughput ratio cloudvpn/wireguard-go: %.2f\n", (b > 0 ? a / b : 0) }'
