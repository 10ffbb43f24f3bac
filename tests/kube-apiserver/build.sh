#!/usr/bin/env bash
# Builds kube-apiserver v1.20 from Debian's source package `kubernetes` with Debian's Go, once per machine, into
#   ${CLOUDVPN_CACHE:-/var/cache/cloudvpn}/kube-apiserver/kube-apiserver
# and installs Debian's etcd-server. Idempotent: does nothing when the binary is there. ~8 minutes on 2 cores.
set -euo pipefail
CACHE="${CLOUDVPN_CACHE:-/var/cache/cloudvpn}/kube-apiserver"
BIN="$CACHE/kube-apiserver"
# What the cached binary was built from; a different id rebuilds it.
BUILD_ID="kubernetes-1.20.2 + reflect2-1.0.2"
STAMP="$CACHE/.build-id"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

need=()
for p in golang-go rsync make etcd-server openssl golang-github-modern-go-reflect2-dev; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ -x "$BIN" ] && [ ${#need[@]} -eq 0 ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$BUILD_ID" ]; then
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
[ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$BUILD_ID" ] && { echo "kube-apiserver: cached at $BIN"; exit 0; }

mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
echo "kube-apiserver: fetching Debian source package kubernetes" >&2
apt-get source --download-only kubernetes >/dev/null
tar -xzf kubernetes_*.orig.tar.gz
tree="$(find . -maxdepth 1 -mindepth 1 -type d | head -n1)"
cd "$tree"
# The vendored github.com/modern-go/reflect2 v1.0.1 iterates maps with a runtime layout Go 1.18 changed: built with
# Debian's Go 1.19 the server dies ("fatal error: fault" in mapiterinit) as soon as a mutating webhook returns a JSON
# patch. Debian's reflect2 1.0.2 (same API) has the fix; swap it in.
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -d "$REFLECT2" ] || { echo "kube-apiserver: $REFLECT2 missing (golang-github-modern-go-reflect2-dev)" >&2; exit 1; }
rm -rf vendor/github.com/modern-go/reflect2 && mkdir -p vendor/github.com/modern-go/reflect2
cp -r "$REFLECT2"/. vendor/github.com/modern-go/reflect2/
rm -f vendor/github.com/modern-go/reflect2/go.mod vendor/github.com/modern-go/reflect2/go.sum
echo "kube-apiserver: make WHAT=cmd/kube-apiserver in $PWD (several minutes)" >&2
export HOME="$WORK/home" GOCACHE="$WORK/gocache" GOPATH="$WORK/gopath" GOPROXY=off GOFLAGS=-mod=vendor CGO_ENABLED=0
mkdir -p "$HOME"
make WHAT=cmd/kube-apiserver >"$WORK/make.log" 2>&1 || { tail -n 40 "$WORK/make.log" >&2; exit 1; }
out="$(find _output -type f -name kube-apiserver -perm -u+x | head -n1)"
[ -n "$out" ] || { echo "kube-apiserver: build produced no binary" >&2; exit 1; }
install -m 0755 "$out" "$BIN.tmp" && mv -f "$BIN.tmp" "$BIN"
echo "$BUILD_ID" > "$STAMP"
"$BIN" --version
