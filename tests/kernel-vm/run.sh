#!/usr/bin/env bash
# Boots Debian's own kernel (which has the WireGuard module) under qemu with software emulation and runs a
# command inside it, chrooted into this machine's root file system (read-only over 9p) with the repository
# mounted read-write at its own path. The exit status is the command's; "no status" (a crash, a hang) is 1.
#
#   tests/kernel-vm/run.sh                   # runs the kernel-driver tests (trait Category=KernelVm)
#   tests/kernel-vm/run.sh -- CMD [ARGS...]  # runs CMD instead (for example: -- wg --version)
#
# Needs root, qemu-system-x86, busybox-static, cpio, kmod (installed when missing). The kernel package is the one
# linux-image-amd64 currently depends on, downloaded once into $CLOUDVPN_CACHE/kernel-vm.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE="${CLOUDVPN_CACHE:-/var/cache/cloudvpn}/kernel-vm"
TIMEOUT="${KERNEL_VM_TIMEOUT:-900}"
CONFIGURATION="${CONFIGURATION:-Debug}"

if [ "${1:-}" = "--" ]; then
  shift
  CMD=("$@")
else
  TESTS_DLL="$REPO/tests/CloudVpn.WireGuard.Tests/bin/$CONFIGURATION/net10.0/CloudVpn.WireGuard.Tests.dll"
  [ -f "$TESTS_DLL" ] || { echo "kernel-vm: $TESTS_DLL not built (run dotnet build first)" >&2; exit 1; }
  # Run directly, the test executable speaks xunit's own command line (not Microsoft.Testing.Platform's).
  CMD=(dotnet exec "$TESTS_DLL" -trait "Category=KernelVm" -noColor -noLogo -showLiveOutput)
fi

need=()
for p in qemu-system-x86 busybox-static cpio kmod; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$CACHE"
PKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$PKG" ] || { echo "kernel-vm: cannot find the kernel package linux-image-amd64 depends on" >&2; exit 1; }
KROOT="$CACHE/$PKG"
if [ ! -f "$KROOT/.ready" ]; then
  rm -rf "$KROOT" && mkdir -p "$KROOT"
  (cd "$CACHE" && apt-get download "$PKG" >/dev/null 2>&1)
  dpkg-deb -x "$CACHE/${PKG}"_*.deb "$KROOT"
  touch "$KROOT/.ready"
fi
KVER=$(ls "$KROOT/lib/modules" | head -1)
VMLINUZ="$KROOT/boot/vmlinuz-$KVER"
[ -f "$KROOT/lib/modules/$KVER/modules.dep" ] || depmod -b "$KROOT" "$KVER"

# The initramfs: static busybox, the modules (with their dependencies, in load order) and /init.
INITRD="$CACHE/initrd-$KVER.cpio.gz"
INIT_VERSION=6
if [ ! -f "$INITRD" ] || [ "$(cat "$INITRD.version" 2>/dev/null)" != "$INIT_VERSION" ]; then
  WORK=$(mktemp -d)
  mkdir -p "$WORK"/{bin,proc,sys,dev,host,ctl,work,modules}
  cp /bin/busybox "$WORK/bin/busybox"
  for a in sh mount umount mkdir insmod poweroff cat echo sleep chroot; do ln -s busybox "$WORK/bin/$a"; done
  : > "$WORK/modules/order"
  for m in virtio_pci 9pnet_virtio 9p wireguard veth tun; do
    modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}' | while read -r f; do
      base=$(basename "$f")
      if [ ! -f "$WORK/modules/$base" ]; then
        case "$f" in
          *.xz) xz -dc "$f" > "$WORK/modules/${base%.xz}"; base=${base%.xz} ;;
          *) cp "$f" "$WORK/modules/$base" ;;
        esac
        grep -qx "$base" "$WORK/modules/order" || echo "$base" >> "$WORK/modules/order"
      fi
    done
  done
  cat > "$WORK/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules/order); do insmod /modules/$m 2>/dev/null; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 ctl /ctl
for d in proc sys dev; do mount --bind /$d /host/$d; done
mount -t tmpfs tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
mount -t tmpfs tmpfs /host/dev/shm
mkdir -p /host/run/netns /host/var/run 2>/dev/null
WORKDIR=$(cat /ctl/workdir)
# a checkout under /tmp or /run lies on the fresh tmpfs: make its mount point there
mkdir -p "/host$WORKDIR" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 work "/host$WORKDIR"
mkdir -p /host/tmp/cloudvpn-ctl
mount --bind /ctl /host/tmp/cloudvpn-ctl
chroot /host /bin/sh /tmp/cloudvpn-ctl/command.sh > /ctl/output 2>&1
echo $? > /ctl/status
sync
poweroff -f
INIT
  chmod +x "$WORK/init"
  (cd "$WORK" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$INITRD")
  echo "$INIT_VERSION" > "$INITRD.version"
  rm -rf "$WORK"
fi

CTL=$(mktemp -d)
trap 'rm -rf "$CTL"' EXIT
echo "$REPO" > "$CTL/workdir"
{
  echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp"
  echo "export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 CLOUDVPN_IN_KERNEL_VM=1 CLOUDVPN_KERNEL_VM_PERF=${CLOUDVPN_KERNEL_VM_PERF:-} CI=${CI:-}"
  echo "mkdir -p /run/netns /var/run/wireguard /tmp"
  echo "/usr/sbin/ip link set lo up"
  printf 'cd %q && ' "$REPO"
  printf '%q ' "${CMD[@]}"
  echo
} > "$CTL/command.sh"

timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -nographic -no-reboot -nic none \
  -kernel "$VMLINUZ" -initrd "$INITRD" -append "console=ttyS0 quiet panic=-1" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$REPO",mount_tag=work,security_model=none,multidevs=remap \
  -virtfs local,path="$CTL",mount_tag=ctl,security_model=none \
  > "$CTL/console" 2>&1 || true

cat "$CTL/output" 2>/dev/null || true
if [ ! -f "$CTL/status" ]; then
  echo "kernel-vm: the VM left no status (crash or timeout); console:" >&2
  tail -30 "$CTL/console" >&2
  exit 1
fi
exit "$(cat "$CTL/status")"
