"""``python -m berg_controller.wrapper --run-dir DIR -- COMMAND...``: run one pipeline, record its exit status.

The local launcher starts this wrapper detached (its own session), so the
pipeline outlives a controller that dies or restarts. The wrapper first waits
for the controller to write ``go`` on its stdin, which the controller does only
after the wrapper's pid is in the database: a controller that dies before that
closes the pipe, the wrapper reads end-of-file and exits without running
anything (``"started": false``), and the restarted controller starts the run
afresh. Once the command ends, its status goes to ``DIR/exit.json`` in one
atomic rename, where a controller (this one or the next) reads it. The file is named after the
wrapper's pid (``DIR/exit-<pid>.json``), the id the controller recorded, so an
earlier attempt's status is never mistaken for this one's.

Only the standard library (and this package's stdlib-only ``private_files``) is imported: it starts fast.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from berg_controller.private_files import open_private

__all__ = ["GO", "exit_file", "main", "write_exit_status"]

GO = b"go\n"
_USAGE = "usage: python -m berg_controller.wrapper --run-dir DIR -- COMMAND [ARG...]"


def exit_file(run_dir: Path, pid: int) -> Path:
    """Where the wrapper with ``pid`` records how its command ended."""
    return run_dir / f"exit-{pid}.json"


def write_exit_status(run_dir: Path, *, started: bool, returncode: int | None, error: str = "") -> None:
    """Write this wrapper's exit file atomically: readers see the whole file or none."""
    status = {
        "started": started,
        "returncode": returncode,
        "error": error,
        "finished_at": datetime.now(UTC).isoformat(),
    }
    target = exit_file(run_dir, os.getpid())
    temporary = target.with_name(f".{target.name}.tmp")
    with open_private(temporary, "wb") as handle:
        handle.write(json.dumps(status).encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def _parse(argv: Sequence[str]) -> tuple[Path, list[str]]:
    if len(argv) < 4 or argv[0] != "--run-dir" or argv[2] != "--":
        raise SystemExit(_USAGE)
    return Path(argv[1]), list(argv[3:])


def main(argv: Sequence[str] | None = None) -> int:
    """Wait for ``go``, run the command, record how it ended; returns the wrapper's own exit status (0)."""
    run_dir, command = _parse(sys.argv[1:] if argv is None else argv)
    if sys.stdin.buffer.readline() != GO:
        write_exit_status(run_dir, started=False, returncode=None, error="the controller never said go")
        return 0
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except OSError as error:
        write_exit_status(run_dir, started=True, returncode=127, error=f"cannot start {command[0]!r}: {error}")
        return 0

    def forward(signum: int, _: FrameType | None) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    returncode = child.wait()
    write_exit_status(run_dir, started=True, returncode=returncode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
