#!/usr/bin/env bash
# Sample gateway tests: curl reaches the gateway's HTTP endpoints inside a network namespace (end-to-end test,
# scripts/demo-netns.sh). prometheus/promtool, wireguard-go and wg come from test.sh's own package list.
set -euo pipefail
command -v curl >/dev/null 2>&1 && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends curl ca-certificates >/dev/null
