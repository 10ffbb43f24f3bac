#!/usr/bin/env bash
# Scale figures of the userspace WireGuard engine (issue 10), one quotable "scale: ..." line each:
#   - configure N peers (default 100 000, a /32 each) through the engine API, a UAPI set=1 on a unix socket and,
#     as root with wireguard-tools installed, the real `wg setconf`; `wg show dump` / UAPI get=1; removal
#   - managed memory per idle peer (GC.GetTotalMemory before and after)
#   - handshakes per wall-clock and per CPU second (both sides on one thread)
#   - the data path allocation counter read during an encrypt+decrypt run
#   - BenchmarkDotNet: allowed-IP lookup ns at 10 / 10 000 / 100 000 peers, handshakes per second per core,
#     bytes allocated per encrypted and decrypted packet
# Environment: PEERS (100000), JOB (short | default; "short" is BenchmarkDotNet's ShortRun, the default job takes
# about 10 minutes), SKIP_BDN=1 to print only the one-shot figures.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS="${PEERS:-100000}"
JOB="${JOB:-short}"
DLL=bench/CloudVpn.Benchmarks/bin/Release/net10.0/CloudVpn.Benchmarks.dll

echo "building the benchmarks (Release) ..." >&2
dotnet build bench/CloudVpn.Benchmarks -c Release -nologo -v quiet >&2

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
dotnet "$DLL" scale "$PEERS"

if [ "${SKIP_BDN:-0}" != "1" ]; then
  work=$(mktemp -d /tmp/cloudvpn-scale.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  arg=""
  [ "$JOB" = "short" ] && arg="short"
  # BenchmarkDotNet's artifacts go to a temporary directory, not into the repository
  BDN_ARTIFACTS="$work/artifacts" dotnet "$DLL" scale-figures $arg > "$work/bdn.txt" 2>&1 || { tail -50 "$work/bdn.txt" >&2; exit 1; }
  grep '^scale: ' "$work/bdn.txt"
fi
