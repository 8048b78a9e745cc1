"""The `berg` command run as a user runs it, and the processes a stack leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["BERG", "berg", "processes_mentioning"]

BERG = [sys.executable, "-m", "berg_app"]


def berg(env: dict[str, str], *args: str, timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BERG, *args], capture_output=True, text=True, env=env, timeout=timeout_s, check=False)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose command line or environment mentions ``text`` (the state directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environment = (entry / "environ").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if (text in command or text in environment) and state != "Z":
            found.append(command)
    return found
