"""What the VM tests run inside the guest: one bash snippet per scenario, all in one boot.

Each snippet runs in its own subshell with ``scripts/vm/guest-lib.sh`` loaded, USB up, ``S`` set
to its own output folder, and its console output in ``$S/console.log``; its exit status lands in
``$S/rc``. Snippets are formatted with ``str.format``: ``{src}`` is a source capture path.
"""

from __future__ import annotations

# The smoke test: the project's own pyusb host plays a session against the emulator while
# dumpcap records usbmon0; the emulator's stats record what it served.
PLAY = """
tb_dumpcap_start "$S/capture.pcapng" || exit 11
tb_emulator_start {name} {emulator_args} || {{ tb_dumpcap_stop; exit 12; }}
"$PYTHON" -m lab.testbed play --profile {profile} --count {count} --bus "$TB_BUS" \\
  >"$S/play.jsonl"
rc=$?
tb_emulator_stop
tb_dumpcap_stop
mv "$OUT/{name}".* "$S/" 2>/dev/null
exit $rc
"""

# The capture runner end to end: it starts dumpcap itself and replays the source capture's host
# side against the emulator.
CAPTURE = """
tb_emulator_start {name} {emulator_args} || exit 12
"$PYTHON" -m usbtrace capture --backend "replay:{src}" --count 5 --warmup 0 --bus "$TB_BUS" \\
  --out "$S/runs" --label {name} >"$S/capture.out" 2>"$S/capture.err"
rc=$?
tb_emulator_stop
mv "$OUT/{name}".* "$S/" 2>/dev/null
echo "$rc" >"$S/capture.rc"
exit 0
"""

# Fault scenarios act once the emulator served two requests, or give up when the runner is gone.
WAIT = """
tb_served_or_gone() {{ grep -q "request 2 " "$1" || ! kill -0 "$2" 2>/dev/null; }}
"""

# Fault: the device is unplugged (the emulator ends) while the runner is replaying.
UNPLUG = (
    WAIT
    + """
tb_emulator_start {name} {emulator_args} || exit 12
"$PYTHON" -m usbtrace capture --backend "replay:{src}" --count 5 --warmup 0 --interval 1 \\
  --bus "$TB_BUS" \\
  --out "$S/runs" --label {name} >"$S/capture.out" 2>"$S/capture.err" &
runner=$!
tb_wait_for 60 tb_served_or_gone "$OUT/{name}.emulator.log" "$runner"
tb_emulator_stop
wait "$runner"
echo "$?" >"$S/capture.rc"
mv "$OUT/{name}".* "$S/" 2>/dev/null
exit 0
"""
)

# Fault: dumpcap (the runner's child) is killed while the runner is replaying.
KILL_DUMPCAP = (
    WAIT
    + """
tb_emulator_start {name} {emulator_args} || exit 12
"$PYTHON" -m usbtrace capture --backend "replay:{src}" --count 5 --warmup 0 --interval 1 \\
  --bus "$TB_BUS" \\
  --out "$S/runs" --label {name} >"$S/capture.out" 2>"$S/capture.err" &
runner=$!
tb_wait_for 60 tb_served_or_gone "$OUT/{name}.emulator.log" "$runner"
child="$(pgrep -P "$runner" -x dumpcap | head -n1)"
[ -n "$child" ] && kill -KILL "$child"
echo "${{child:-none}}" >"$S/killed_pid"
wait "$runner"
echo "$?" >"$S/capture.rc"
tb_emulator_stop
mv "$OUT/{name}".* "$S/" 2>/dev/null
exit 0
"""
)
