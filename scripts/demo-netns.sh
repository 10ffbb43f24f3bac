#!/usr/bin/env bash
# Demo of the sample gateway, entirely inside two network namespaces joined by a veth pair:
#   the gateway (samples/CloudVpn.Samples.Gateway) in one, a wireguard-go client in the other,
#   configured with the client configuration the gateway prints on its first start;
#   then a ping across the tunnel, `wg show` on both sides and the gateway's /metrics.
# Needs root, dotnet, wireguard-go, wg (wireguard-tools), curl, ping. Cleans up after itself, also on failure.
# Usage: sudo scripts/demo-netns.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONFIGURATION="${CONFIGURATION:-Debug}"
GW_NS="cvdemo-gw-$$"; CL_NS="cvdemo-cl-$$"
GW_IF="cvdemogw"; CL_IF="cvdemocl"
GW_IP=192.0.2.1; CL_IP=192.0.2.2
DATA=$(mktemp -d /tmp/cloudvpn-demo-XXXXXX)
GW_PID=""; CL_PID=""

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "demo-netns: $*" >&2; exit 1; }

cleanup() {
  set +e
  [ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
  [ -n "$CL_PID" ] && kill -TERM "$CL_PID" 2>/dev/null && wait "$CL_PID" 2>/dev/null
  ip netns del "$GW_NS" 2>/dev/null
  ip netns del "$CL_NS" 2>/dev/null
  rm -f "/var/run/wireguard/$GW_IF.sock" "/var/run/wireguard/$CL_IF.sock"
  rm -rf "$DATA"
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, TUN devices)"
for c in dotnet wireguard-go wg curl ping ip; do command -v "$c" >/dev/null || die "'$c' is not installed"; done

DLL="$ROOT/samples/CloudVpn.Samples.Gateway/bin/$CONFIGURATION/net10.0/CloudVpn.Samples.Gateway.dll"
if [ "${1:-}" != "--no-build" ]; then
  say "building the sample gateway"
  dotnet build "$ROOT/samples/CloudVpn.Samples.Gateway" -c "$CONFIGURATION" -nologo -clp:ErrorsOnly >/dev/null
fi
[ -f "$DLL" ] || die "$DLL not found (build it first)"

say "namespaces $GW_NS ($GW_IP) and $CL_NS ($CL_IP)"
ip netns add "$GW_NS"; ip netns add "$CL_NS"
ip link add veth0 netns "$GW_NS" type veth peer name veth0 netns "$CL_NS"
ip -n "$GW_NS" addr add "$GW_IP/24" dev veth0; ip -n "$CL_NS" addr add "$CL_IP/24" dev veth0
for ns in "$GW_NS" "$CL_NS"; do ip -n "$ns" link set lo up; ip -n "$ns" link set veth0 up; done

say "starting the gateway in $GW_NS (data folder $DATA)"
ip netns exec "$GW_NS" dotnet "$DLL" --data-dir "$DATA" --interface "$GW_IF" --public-endpoint "$GW_IP:51820" \
  --http 127.0.0.1:9586 >"$DATA/gateway.log" 2>"$DATA/gateway.out" &
GW_PID=$!
for _ in $(seq 1 300); do
  grep -q -- '# ---- end client configuration ----' "$DATA/gateway.out" 2>/dev/null && break
  kill -0 "$GW_PID" 2>/dev/null || { cat "$DATA/gateway.out" "$DATA/gateway.log" >&2; die "the gateway exited"; }
  sleep 0.1
done
sed -n '/^CloudVpn gateway is up/,/^  add a peer/p' "$DATA/gateway.out"
sed -n '/# ---- begin client configuration ----/,/# ---- end client configuration ----/p' "$DATA/gateway.out" \
  | grep -v '^# ----' >"$DATA/client.conf"
[ -s "$DATA/client.conf" ] || die "no client configuration printed"
echo; echo "client configuration printed by the gateway (private key elided here):"
sed 's/^PrivateKey = .*/PrivateKey = (hidden)/' "$DATA/client.conf"

say "starting wireguard-go $CL_IF in $CL_NS with that configuration"
ip netns exec "$CL_NS" wireguard-go -f "$CL_IF" >"$DATA/client.log" 2>&1 &
CL_PID=$!
for _ in $(seq 1 100); do ip -n "$CL_NS" link show "$CL_IF" >/dev/null 2>&1 && break; sleep 0.1; done
grep -vE '^(Address|MTU|DNS) ' "$DATA/client.conf" >"$DATA/client.wg"
ip netns exec "$CL_NS" wg setconf "$CL_IF" "$DATA/client.wg"
ip -n "$CL_NS" addr add "$(sed -n 's/^Address = //p' "$DATA/client.conf")" dev "$CL_IF"
ip -n "$CL_NS" link set "$CL_IF" mtu "$(sed -n 's/^MTU = //p' "$DATA/client.conf")" up
ip -n "$CL_NS" route add "$(sed -n 's/^AllowedIPs = //p' "$DATA/client.conf")" dev "$CL_IF"

say "ping 10.8.0.1 (the gateway's tunnel address) from the client"
ok=0
ip netns exec "$CL_NS" ping -c 3 -i 0.2 -w 15 10.8.0.1 || ok=$?

say "wg show on the gateway ($GW_NS)"
ip netns exec "$GW_NS" wg show "$GW_IF"
say "wg show on the client ($CL_NS)"
ip netns exec "$CL_NS" wg show "$CL_IF"

sleep 1.5
say "gateway /readyz and /metrics (samples only)"
ip netns exec "$GW_NS" curl -s http://127.0.0.1:9586/readyz; echo
ip netns exec "$GW_NS" curl -s http://127.0.0.1:9586/metrics | grep -v '^#'

say "connection events from the gateway's JSON log"
grep '"Category":"CloudVpn.Gateway.Events"' "$DATA/gateway.log" || echo "(none yet)"

[ "$ok" -eq 0 ] || die "ping across the tunnel failed"
say "done: traffic crossed the tunnel"
