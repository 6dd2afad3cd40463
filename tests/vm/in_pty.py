"""Run a command on a pseudo-terminal and keep everything it drew: ``in_pty.py LOG -- CMD...``.

The VM tests use it to see ``usbtrace capture``'s live view as a terminal would (the view is off
when stderr is not a terminal). Exits with the command's status.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys


def main(argv: list[str]) -> int:
    log, command = argv[0], argv[argv.index("--") + 1 :]
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="160", LINES="50")
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    with open(log, "wb") as out:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            out.write(data)
    os.close(master)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
