#!/usr/bin/env bash
# Run one shell script inside the testbed VM and return its exit status.
#
#   scripts/vm/run.sh OUT SCRIPT [TIMEOUT_SECONDS]
#
# OUT is a folder on the host (created if needed) that the guest sees read-write at the same
# path; everything the guest leaves behind goes there (captures, logs). SCRIPT runs in the guest
# with bash, with the host's whole root read-only and these variables set: OUT, VM (the prepared
# VM folder), KROOT (module tree for `modprobe -d "$KROOT"`), KVER, PYTHON ($USBTRACE_VM_PYTHON,
# which the VM tests set to their own interpreter, else the host's python3), REPO (this checkout;
# also on PYTHONPATH). The console goes to stdout.
#
# Exit status: the script's own; 99 when it left none (timeout, kernel panic, QEMU failure);
# 3 when the VM is not prepared or QEMU is missing (the message says what to do).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VM="${USBTRACE_VM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/usbtrace-vm}"

if [ $# -lt 2 ]; then
  echo "usage: $0 OUT SCRIPT [TIMEOUT_SECONDS]" >&2
  exit 2
fi
OUT="$1"
SCRIPT="$2"
TIMEOUT="${3:-${USBTRACE_VM_TIMEOUT:-300}}"

command -v qemu-system-x86_64 >/dev/null \
  || { echo "usbtrace-vm: qemu-system-x86_64 not found (apt-get install qemu-system-x86)" >&2; exit 3; }
[ -f "$VM/kver" ] && [ -f "$VM/initrd.gz" ] \
  || { echo "usbtrace-vm: VM not prepared in $VM (run scripts/vm/prepare.sh)" >&2; exit 3; }
[ -r "$SCRIPT" ] || { echo "usbtrace-vm: $SCRIPT: cannot read the guest script" >&2; exit 2; }
KVER="$(cat "$VM/kver")"
KERNEL="$VM/kroot/boot/vmlinuz-$KVER"
[ -f "$KERNEL" ] || { echo "usbtrace-vm: $KERNEL missing (run scripts/vm/prepare.sh)" >&2; exit 3; }

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
case "$OUT" in *[[:space:]]*) echo "usbtrace-vm: OUT must not contain spaces: $OUT" >&2; exit 2 ;; esac
PYTHON="${USBTRACE_VM_PYTHON:-$(python3 -c 'import sys; print(sys.executable)')}"

{
  echo "# written by scripts/vm/run.sh"
  printf 'export OUT=%q VM=%q KROOT=%q KVER=%q PYTHON=%q REPO=%q\n' \
    "$OUT" "$VM" "$VM/kroot" "$KVER" "$PYTHON" "$REPO"
  printf 'export PYTHONPATH=%q PATH=%q:"$PATH"\n' "$REPO" "$(dirname "$PYTHON")"
  echo 'cd "$OUT"'
  cat "$SCRIPT"
} >"$OUT/cmd.sh"
rm -f "$OUT/rc"

# TCG: KVM may exist but be unusable (RECIPE §7); USBTRACE_VM_ACCEL=kvm opts in on real hardware.
ACCEL="${USBTRACE_VM_ACCEL:-tcg,thread=multi}"
CPU="${USBTRACE_VM_CPU:-max}"
qemu_status=0
timeout --foreground -k 5 "$TIMEOUT" qemu-system-x86_64 \
  -machine pc -accel "$ACCEL" -cpu "$CPU" -smp 2 -m "${USBTRACE_VM_MEM:-1024}" \
  -nodefaults -no-user-config -display none -no-reboot \
  -chardev stdio,id=con,signal=off -serial chardev:con \
  -kernel "$KERNEL" -initrd "$VM/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 vmout=$OUT" \
  -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
  -fsdev local,id=out,path="$OUT",security_model=none,multidevs=remap \
  -device virtio-9p-pci,fsdev=out,mount_tag=out \
  </dev/null || qemu_status=$?

if [ -f "$OUT/rc" ]; then
  exit "$(cat "$OUT/rc")"
fi
[ "$qemu_status" = 124 ] && echo "usbtrace-vm: timed out after ${TIMEOUT}s" >&2
echo "usbtrace-vm: the guest left no exit status (QEMU status $qemu_status)" >&2
exit 99
