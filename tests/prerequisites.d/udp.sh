#!/usr/bin/env bash
# UDP batching tests: ethtool switches a veth's checksum offload off inside a test namespace (a device that cannot
# offload UDP checksums; older kernels refuse UDP GSO there with EIO) (tests/CloudVpn.WireGuard.Tests/Udp/UdpBatchNetnsTests.cs).
set -euo pipefail
command -v ethtool >/dev/null 2>&1 && exit 0
[ -x /usr/sbin/ethtool ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends ethtool >/dev/null
