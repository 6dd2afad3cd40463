"""Guest snippets for ``usbtrace capture -- CMD`` and ``--attach`` (see ``scenarios.py``).

The user's program is the project's pyusb replay of a capture (``lab.testbed.replay_app``),
which knows nothing of the capture runner. The emulator runs at its full rate (no pace, no
link-rate cap): the capture must still drop no packet while the live view draws.
"""

from __future__ import annotations

# Wrapped: `usbtrace capture -- python3 -m lab.testbed.replay_app ...`, on a pseudo-terminal so
# the live view is drawn; everything the terminal showed lands in capture.tty.
WRAP = """
tb_emulator_start {name} {emulator_args} || exit 12
"$PYTHON" "$REPO/tests/vm/in_pty.py" "$S/capture.tty" -- \\
  "$PYTHON" -m usbtrace capture --bus "$TB_BUS" --out-dir "$S/runs" --label {name} -- \\
  "$PYTHON" -m lab.testbed.replay_app "{src}" --count {count} --bus "$TB_BUS"
echo "$?" >"$S/capture.rc"
tb_emulator_stop
mv "$OUT/{name}".* "$S/" 2>/dev/null
exit 0
"""

# Attached: the capture starts first and records whatever happens; the same program then runs
# on its own; SIGTERM (as `timeout` or a service manager sends) ends the capture.
ATTACH = """
tb_emulator_start {name} {emulator_args} || exit 12
"$PYTHON" -m usbtrace capture --attach --bus "$TB_BUS" --out-dir "$S/runs" --label {name} \\
  >"$S/capture.out" 2>"$S/capture.err" &
runner=$!
tb_capturing() {{ for f in "$S"/runs/*.pcapng; do tb_file_has_header "$f" && return 0; done; \\
  return 1; }}
tb_wait_for 60 tb_capturing || {{ kill -TERM "$runner"; wait "$runner"; exit 13; }}
sleep 0.5
"$PYTHON" -m lab.testbed.replay_app "{src}" --count {count} --bus "$TB_BUS" \\
  >"$S/app.out" 2>"$S/app.err"
echo "$?" >"$S/app.rc"
sleep 1
kill -TERM "$runner"
wait "$runner"
echo "$?" >"$S/capture.rc"
tb_emulator_stop
mv "$OUT/{name}".* "$S/" 2>/dev/null
exit 0
"""
