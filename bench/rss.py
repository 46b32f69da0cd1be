"""``python -m bench.rss RESULT_JSON TIMEOUT_S -- COMMAND...``: run COMMAND, record its own usage.

Linux starts a process's ``ru_maxrss`` from the resident set of the memory it
replaced at exec, which for a child spawned by fork or vfork is its parent's:
a command spawned by a benchmark holding a large emulator store would report
the benchmark's size, not its own. This launcher uses the standard library
only, so its resident set (about 10 MiB) is the most that can leak into the
figure of a command it runs. It writes the command's exit code, wall time,
CPU time and peak RSS (bytes) to RESULT_JSON, and kills it after TIMEOUT_S.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: python -m bench.rss RESULT_JSON TIMEOUT_S -- COMMAND...\n")
        return 2
    result_path, timeout, command = argv[0], float(argv[1]), list(argv[3:])
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        watchdog.cancel()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "exit": proc.returncode,
                "wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "max_rss": usage.ru_maxrss * 1024,  # Linux reports KiB
            },
            handle,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
