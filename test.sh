#!/usr/bin/env bash
# Installs what the tests need (idempotent), builds warning-free, runs every test project and ends with
#   tests: N passed, N failed, N skipped
# Under CI=true a test whose prerequisite is missing fails instead of skipping.
set -uo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export CLOUDVPN_CACHE="${CLOUDVPN_CACHE:-/var/cache/cloudvpn}"
CONFIGURATION="${CONFIGURATION:-Debug}"

log() { printf '\n==> %s\n' "$*" >&2; }

# ---- 1. prerequisites -------------------------------------------------------------------------------
APT_PACKAGES=(iproute2 iputils-ping iperf3 wireguard-go wireguard-tools openvpn prometheus procps)
install_apt() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
install_apt "${APT_PACKAGES[@]}"
# Extra prerequisites of individual areas (helm, kube-apiserver, ...) install through their own idempotent scripts.
for script in tests/prerequisites.d/*.sh; do
  [ -e "$script" ] || continue
  log "prerequisite: $script"
  bash "$script" || { echo "prerequisite script failed: $script" >&2; [ "${CI:-}" = "true" ] && exit 1; }
done

# ---- 2. build ---------------------------------------------------------------------------------------
log "dotnet build -warnaserror"
if ! dotnet build CloudVpn.sln -c "$CONFIGURATION" -warnaserror -nologo -clp:ErrorsOnly; then
  echo "tests: 0 passed, 1 failed, 0 skipped"
  exit 1
fi

# ---- 3. test ----------------------------------------------------------------------------------------
passed=0; failed=0; skipped=0; status=0
mkdir -p TestResults
for proj in tests/*.Tests/*.Tests.csproj; do
  name=$(basename "$proj" .csproj)
  log "test $name"
  out="TestResults/$name.log"
  timeout "${TEST_PROJECT_TIMEOUT:-1200}" dotnet test --project "$proj" -c "$CONFIGURATION" --no-build 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  t=$(grep -E '^\s+total:' "$out" | tail -1 | grep -oE '[0-9]+' || echo 0)
  f=$(grep -E '^\s+failed:' "$out" | tail -1 | grep -oE '[0-9]+' || echo 0)
  s=$(grep -E '^\s+succeeded:' "$out" | tail -1 | grep -oE '[0-9]+' || echo 0)
  k=$(grep -E '^\s+skipped:' "$out" | tail -1 | grep -oE '[0-9]+' || echo 0)
  passed=$((passed + s)); failed=$((failed + f)); skipped=$((skipped + k))
  # exit code 8 = the project ran zero tests; anything else non-zero is a failure even if no test reported one
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 8 ]; then
    status=1
    [ "$f" -eq 0 ] && failed=$((failed + 1)) && echo "$name: test run exited $rc without a failed test (crash or timeout)" >&2
  fi
  if [ "${CI:-}" = "true" ] && [ "$k" -gt 0 ]; then
    echo "$name: $k test(s) skipped under CI=true" >&2
    status=1
  fi
  : "$t"
done

[ "$failed" -gt 0 ] && status=1
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
