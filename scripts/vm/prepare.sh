#!/usr/bin/env bash
# Prepare the testbed VM from Debian packages only: the stock kernel named by linux-image-amd64
# (image + the module folders the testbed needs, nothing installed into the host), a busybox
# initramfs, and a check that QEMU is there. Artefacts are cached in $USBTRACE_VM_DIR (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/usbtrace-vm) and reused while the kernel package and the guest
# init script are unchanged. Needs root (apt-get) the first time.
#
# Exit status: 0 ready, 3 a requirement is missing (the message says which), 1 anything else.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
VM="${USBTRACE_VM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/usbtrace-vm}"

missing() { echo "usbtrace-vm: $*" >&2; exit 3; }

command -v qemu-system-x86_64 >/dev/null || missing "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
command -v busybox >/dev/null && busybox --list >/dev/null 2>&1 \
  || missing "busybox not found (apt-get install busybox-static)"
[ -f /bin/busybox ] || [ -f /usr/bin/busybox ] || missing "busybox binary not found"
command -v cpio >/dev/null || missing "cpio not found (apt-get install cpio)"
command -v depmod >/dev/null || [ -x /usr/sbin/depmod ] || [ -x /sbin/depmod ] \
  || missing "depmod not found (apt-get install kmod)"
DEPMOD="$(command -v depmod || echo /usr/sbin/depmod)"
BUSYBOX="$(command -v busybox)"
file "$BUSYBOX" 2>/dev/null | grep -q 'dynamically linked' \
  && missing "$BUSYBOX is dynamically linked (apt-get install busybox-static)"

mkdir -p "$VM"
exec 9>"$VM/.lock"
flock 9  # two test sessions preparing at once must not interleave

# --- kernel --------------------------------------------------------------------------------------
PKG="${USBTRACE_VM_KERNEL_PKG:-}"
if [ -z "$PKG" ]; then
  PKG="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')"
fi
if [ -z "$PKG" ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null 2>&1 || true  # a fresh machine has no package lists yet
  PKG="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')"
fi
if [ -z "$PKG" ] && [ -f "$VM/kver" ]; then
  PKG="linux-image-$(cat "$VM/kver")"  # apt lists gone: reuse what was unpacked before
fi
[ -n "$PKG" ] || missing "cannot name the kernel package (run apt-get update as root)"
KVER="${PKG#linux-image-}"
KROOT="$VM/kroot"
L="./lib/modules/$KVER"

if [ ! -f "$KROOT/.done-$KVER" ]; then
  [ "$(id -u)" = 0 ] || missing "root is needed to fetch $PKG the first time (apt-get download)"
  echo "usbtrace-vm: fetching and unpacking $PKG" >&2
  tmp="$(mktemp -d "$VM/dl.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  ( cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$PKG" >/dev/null ) \
    || missing "apt-get download $PKG failed (run apt-get update; are Debian's mirrors reachable?)"
  rm -rf "$KROOT"
  mkdir -p "$KROOT"
  dpkg-deb --fsys-tarfile "$tmp/${PKG}"_*.deb | tar -x -C "$KROOT" --wildcards \
    "./boot/vmlinuz-$KVER" "$L/modules.*" "$L/kernel/drivers/usb/*" \
    "$L/kernel/drivers/virtio/*" "$L/kernel/fs/9p/*" "$L/kernel/net/9p/*" \
    "$L/kernel/fs/netfs/*" "$L/kernel/fs/fscache/*" "$L/kernel/fs/configfs/*"
  "$DEPMOD" -b "$KROOT" "$KVER"
  rm -rf "$tmp"
  trap - EXIT
  echo "$KVER" >"$VM/kver"
  touch "$KROOT/.done-$KVER"
fi
echo "$KVER" >"$VM/kver"

# --- initramfs -----------------------------------------------------------------------------------
stamp="$KVER $(sha256sum "$HERE/guest-init.sh" | cut -c1-16) $(sha256sum "$BUSYBOX" | cut -c1-16)"
if [ ! -f "$VM/initrd.gz" ] || [ "$(cat "$VM/initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "usbtrace-vm: building the initramfs" >&2
  ird="$(mktemp -d "$VM/initrd.XXXXXX")"
  mkdir -p "$ird/bin" "$ird/modules" "$ird/proc" "$ird/sys" "$ird/dev" "$ird/newroot"
  cp "$BUSYBOX" "$ird/bin/busybox"
  install -m 0755 "$HERE/guest-init.sh" "$ird/init"
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
           netfs fscache 9pnet 9pnet_virtio 9p configfs; do
    ko="$(find "$KROOT/lib/modules/$KVER" -name "$m.ko*" | head -n1)"
    case "$ko" in
      "") ;;  # built into this kernel
      *.ko) cp "$ko" "$ird/modules/" ;;
      *) missing "$ko is compressed; this harness expects plain .ko files" ;;
    esac
  done
  ( cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1 ) >"$VM/initrd.gz.new"
  mv "$VM/initrd.gz.new" "$VM/initrd.gz"
  rm -rf "$ird"
  echo "$stamp" >"$VM/initrd.stamp"
fi

echo "$VM"
