#!/usr/bin/env bash
# Builds kube-apiserver v1.20 from Debian's source package `kubernetes` with Debian's Go, once per machine, into
#   ${CLOUDVPN_CACHE:-/var/cache/cloudvpn}/kube-apiserver/kube-apiserver
# and installs Debian's etcd-server. Idempotent: does nothing when the binary is there. ~8 minutes on 2 cores.
set -euo pipefail
CACHE="${CLOUDVPN_CACHE:-/var/cache/cloudvpn}/kube-apiserver"
BIN="$CACHE/kube-apiserver"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

need=()
for p in golang-go rsync make etcd-server openssl; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ -x "$BIN" ] && [ ${#need[@]} -eq 0 ]; then
  echo "kube-apiserver: cached at $BIN"
  exit 0
fi

# deb-src entries so that `apt-get source` can see the package
src_added=0
for f in /etc/apt/sources.list.d/debian.sources; do
  if [ -f "$f" ] && grep -q '^Types: deb$' "$f"; then
    $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"; src_added=1
  fi
done
if [ $src_added -eq 1 ] || [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -q >/dev/null
fi
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
[ -x "$BIN" ] && { echo "kube-apiserver: cached at $BIN"; exit 0; }

mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
echo "kube-apiserver: fetching Debian source package kubernetes" >&2
apt-get source --download-only kubernetes >/dev/null
tar -xzf kubernetes_*.orig.tar.gz
tree="$(find . -maxdepth 1 -mindepth 1 -type d | head -n1)"
cd "$tree"
echo "kube-apiserver: make WHAT=cmd/kube-apiserver in $PWD (several minutes)" >&2
export HOME="$WORK/home" GOCACHE="$WORK/gocache" GOPATH="$WORK/gopath" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0
mkdir -p "$HOME"
make WHAT=cmd/kube-apiserver >"$WORK/make.log" 2>&1 || { tail -n 40 "$WORK/make.log" >&2; exit 1; }
out="$(find _output -type f -name kube-apiserver -perm -u+x | head -n1)"
[ -n "$out" ] || { echo "kube-apiserver: build produced no binary" >&2; exit 1; }
install -m 0755 "$out" "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
"$BIN" --version
