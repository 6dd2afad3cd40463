#!/bin/busybox sh
# /init of the testbed's initramfs: reach the host's root over 9p (read-only), mount the
# read-write output share at the same path as on the host, run "$OUT/cmd.sh" in a chroot with a
# clean environment, leave its exit status in "$OUT/rc" and power off. Nothing else runs: no udev,
# no network; devtmpfs creates /dev/bus/usb/* and /dev/usbmon* on its own.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Order matters: each module needs the ones before it (no modprobe in here).
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
         netfs fscache 9pnet 9pnet_virtio 9p configfs; do
  [ -f "/modules/$m.ko" ] && insmod "/modules/$m.ko"
done

out=""
for word in $(cat /proc/cmdline); do
  case "$word" in vmout=*) out="${word#vmout=}" ;; esac
done

fail() { echo "usbtrace-vm init: $*"; poweroff -f; }
[ -n "$out" ] || fail "no vmout= on the kernel command line"
mkdir -p /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot /newroot \
  || fail "cannot mount the host root (9p)"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out "/newroot$out" \
  || fail "cannot mount the output folder $out (9p)"

mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs tmpfs /newroot/run
mount -t debugfs debugfs /newroot/sys/kernel/debug 2>/dev/null
mount -t configfs configfs /newroot/sys/kernel/config 2>/dev/null

chroot /newroot /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root TMPDIR=/run PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8 OUT="$out" \
  /bin/bash "$out/cmd.sh" </dev/console >/dev/console 2>&1
echo "$?" >"/newroot$out/rc"
sync
umount "/newroot$out"
poweroff -f
