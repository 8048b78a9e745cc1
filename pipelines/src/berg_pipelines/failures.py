"""Which step of a local pipeline run failed, and the head of its error, from what kfp.local says.

kfp.local runs the steps one after another, streams each step's output to
``sys.stdout`` and, on the first failure, raises ``RuntimeError("Pipeline 'p'
finished with status FAILURE. Inner task failed: 't'.")``. So the failing step is
in that message, and its error is the last Python traceback of the output kept
by :class:`OutputTail` (the failing step's output comes last).

Example:
    >>> with OutputTail.capture() as tail:
    ...     training(**arguments)            # raises RuntimeError on a failed step
    >>> failed_step(str(error)), error_lines(tail.lines())
    ('build-dataset', ['DatasetError: the label store holds no scored events yet'])
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TextIO

__all__ = ["OutputTail", "StepFailed", "error_lines", "failed_step"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_INNER_TASK = re.compile(r"Inner task failed: '([^']+)'")
_TRACEBACK = "Traceback (most recent call last):"
_KEPT_LINES = 500
_FALLBACK_LINES = 20


class StepFailed(RuntimeError):
    """A step of the pipeline failed: which one, and the head of its error."""

    def __init__(self, step: str | None, error: str) -> None:
        super().__init__(f"step {step or '(unknown)'} failed: {error}")
        self.step = step
        self.error = error


def failed_step(message: str) -> str | None:
    """The innermost failed task kfp.local names in its failure message, or None."""
    found = _INNER_TASK.search(_ANSI.sub("", message))
    return found.group(1) if found else None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def error_lines(output: Sequence[str]) -> list[str]:
    """The exception lines of the last Python traceback in ``output``; else its last non-blank lines.

    A traceback's frames are indented under its ``Traceback (most recent call last):`` line, and its
    exception lines (``DatasetError: ...`` and the rest of a multi-line message) start at that line's
    indentation (kfp.local indents the streamed output of a step).
    """
    lines = [_ANSI.sub("", line.rstrip("\n")) for line in output]
    starts = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK]
    if not starts:
        return [line for line in lines if line.strip()][-_FALLBACK_LINES:]
    start = starts[-1]
    base = _indent(lines[start])
    found: list[str] = []
    for line in lines[start + 1 :]:
        if not line.strip():
            if found:
                break
            continue
        if _indent(line) < base:
            break
        if _indent(line) == base or found:
            found.append(line[base:])
    return found


class OutputTail(io.TextIOBase):
    """A text stream that passes everything on to ``target`` and keeps the last lines written."""

    def __init__(self, target: TextIO, keep: int = _KEPT_LINES) -> None:
        super().__init__()
        self._target = target
        self._lines: deque[str] = deque(maxlen=keep)
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._target.write(text)
        pieces = (self._partial + text).split("\n")
        self._partial = pieces.pop()
        self._lines.extend(pieces)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def lines(self) -> list[str]:
        """The last lines written (the unfinished one included)."""
        return [*self._lines, *([self._partial] if self._partial else [])]

    @classmethod
    @contextlib.contextmanager
    def capture(cls) -> Iterator[OutputTail]:
        """Tee ``sys.stdout`` (where kfp.local streams the steps' output) into a tail while the block runs."""
        tail = cls(sys.stdout)
        with contextlib.redirect_stdout(tail):
            yield tail
