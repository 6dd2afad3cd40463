# Shell helpers for scripts that run inside the testbed VM (source it from a run.sh script):
#   . "$REPO/scripts/vm/guest-lib.sh"
#   tb_usb_up                      # usbmon, dummy_hcd (high speed), gadgetfs on /dev/gadget
#   tb_dumpcap_start FILE          # capture usbmon0 (all buses) until tb_dumpcap_stop
#   tb_emulator_start NAME ARGS..  # emulated Edge TPU; logs and stats in $OUT/NAME.*
#   tb_emulator_stop; tb_dumpcap_stop
# Every helper returns non-zero with a message on stderr when something does not come up.

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"  # the lab package (lab.testbed) lives in the checkout, outside the wheel

tb_log() { echo "[guest $(cut -d' ' -f1 /proc/uptime)] $*" >&2; }

tb_modprobe() { modprobe -d "$KROOT" "$@"; }

tb_usb_up() {
  tb_modprobe usbmon || return 1
  tb_modprobe dummy_hcd is_high_speed=1 is_super_speed=0 || return 1
  tb_modprobe gadgetfs || return 1
  mkdir -p /dev/gadget
  mountpoint -q /dev/gadget || mount -t gadgetfs gadgetfs /dev/gadget || return 1
  [ -e /dev/usbmon0 ] || { tb_log "no /dev/usbmon0"; return 1; }
}

# tb_wait_for SECONDS COMMAND...: poll every 50 ms until COMMAND succeeds
tb_wait_for() {
  local limit=$(( $1 * 20 )) i=0
  shift
  until "$@"; do
    i=$((i + 1))
    [ "$i" -ge "$limit" ] && return 1
    sleep 0.05
  done
}

tb_file_has_header() { [ -s "$1" ] && [ "$(stat -c %s "$1")" -ge 100 ]; }

tb_dumpcap_start() {
  TB_CAPTURE="$1"
  rm -f "$TB_CAPTURE"
  dumpcap -q -i usbmon0 -w "$TB_CAPTURE" 2>"$TB_CAPTURE.dumpcap.log" &
  TB_DUMPCAP_PID=$!
  # capturing only once the section and interface blocks are on disk
  tb_wait_for 30 tb_file_has_header "$TB_CAPTURE" \
    || { tb_log "dumpcap did not start"; cat "$TB_CAPTURE.dumpcap.log" >&2; return 1; }
}

tb_dumpcap_stop() {
  [ -n "${TB_DUMPCAP_PID:-}" ] || return 0
  kill -INT "$TB_DUMPCAP_PID" 2>/dev/null
  wait "$TB_DUMPCAP_PID" 2>/dev/null
  TB_DUMPCAP_PID=""
}

tb_emulator_configured() { [ -s "$1" ]; }

tb_emulator_start() {
  local name="$1"
  shift
  rm -f "$OUT/$name.ready" "$OUT/$name.stats.json"
  "$PYTHON" -m lab.testbed emulate --gadget /dev/gadget --ready-file "$OUT/$name.ready" \
    --stats "$OUT/$name.stats.json" "$@" >"$OUT/$name.emulator.log" 2>&1 &
  TB_EMULATOR_PID=$!
  tb_wait_for 60 tb_emulator_configured "$OUT/$name.ready" \
    || { tb_log "emulator $name not configured"; cat "$OUT/$name.emulator.log" >&2; return 1; }
  TB_BUS="$(tb_device_bus)"
}

# A control reply still queued on EP0 when GadgetFS unbinds crashes 6.1's gadgetfs (ep0_complete
# on a freed request). dummy_hcd drops stale EP0 requests when the next SETUP arrives, so a few
# harmless requests (lsusb reads the string descriptors) clear the queue before the unplug.
tb_ep0_flush() { lsusb -v -d 18d1:9302 >/dev/null 2>&1; }

tb_emulator_stop() {
  [ -n "${TB_EMULATOR_PID:-}" ] || return 0
  tb_ep0_flush
  kill -TERM "$TB_EMULATOR_PID" 2>/dev/null
  wait "$TB_EMULATOR_PID" 2>/dev/null
  TB_EMULATOR_PID=""
  # the device is gone once the kernel removed it; the next emulator may bind then
  tb_wait_for 10 tb_no_device
}

# bus number of the emulated device, from sysfs
tb_device_bus() {
  local d
  for d in /sys/bus/usb/devices/*; do
    [ "$(cat "$d/idVendor" 2>/dev/null)" = 18d1 ] && [ "$(cat "$d/idProduct" 2>/dev/null)" = 9302 ] \
      && { cat "$d/busnum"; return 0; }
  done
  return 1
}

tb_no_device() { ! tb_device_bus >/dev/null; }
