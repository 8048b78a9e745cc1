"""Concurrent readers and writers on the embedded (local disk) registry.

Bounded by counts and a join timeout, never by sleeps. fsspec's memory filesystem
is left out here: it is a test double without the per-object atomicity of S3 or GCS.
"""

from __future__ import annotations

import threading
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from berg.registry import ModelRegistry, VersionMetadata

pytestmark = pytest.mark.unit

JOIN_TIMEOUT_S = 60


def _run(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"


def test_alias_moves_are_atomic_for_concurrent_readers(tmp_path: Path, metadata: VersionMetadata) -> None:
    registry = ModelRegistry(tmp_path)
    registry.register("fraud", {"model.bst": b"one"}, metadata)
    registry.register("fraud", {"model.bst": b"two"}, metadata)
    registry.promote("fraud", "v0001")
    moves, readers, max_reads = 60, 4, 50_000
    seen: Counter[str] = Counter()
    errors: list[BaseException] = []
    done = threading.Event()
    start = threading.Barrier(readers + 1)
    lock = threading.Lock()

    def read() -> None:
        local: Counter[str] = Counter()
        start.wait()
        try:
            for _ in range(max_reads):
                if done.is_set():
                    break
                resolved = ModelRegistry(tmp_path).resolve("fraud", "production")
                local["none" if resolved is None else resolved.version] += 1
        except BaseException as error:
            errors.append(error)
        with lock:
            seen.update(local)

    def move() -> None:
        start.wait()
        try:
            for number in range(moves):
                registry.promote("fraud", "v0002" if number % 2 == 0 else "v0001", reason=f"move {number}")
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    _run([threading.Thread(target=read) for _ in range(readers)] + [threading.Thread(target=move)])

    assert errors == []
    assert set(seen) <= {"v0001", "v0002"}
    assert seen["v0001"] > 0
    assert seen["v0002"] > 0
    history = registry.history("fraud", "production")
    assert len(history) == moves + 1
    assert registry.alias("fraud", "production") == history[-1]


def test_concurrent_registers_get_distinct_versions(tmp_path: Path, metadata: VersionMetadata) -> None:
    writers, each = 8, 5
    registered: dict[str, bytes] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(writers)
    lock = threading.Lock()

    def write(writer: int) -> None:
        registry = ModelRegistry(tmp_path)
        start.wait()
        try:
            for number in range(each):
                payload = f"writer {writer} model {number}".encode()
                version = registry.register("fraud", {"model.bst": payload}, metadata)
                with lock:
                    assert version.version not in registered
                    registered[version.version] = payload
        except BaseException as error:
            errors.append(error)

    _run([threading.Thread(target=write, args=(writer,)) for writer in range(writers)])

    assert errors == []
    registry = ModelRegistry(tmp_path)
    assert [v.version for v in registry.versions("fraud")] == [f"v{n:04d}" for n in range(1, writers * each + 1)]
    for version, payload in registered.items():
        assert (registry.local_path("fraud", version) / "model.bst").read_bytes() == payload
    assert not any((tmp_path / ".staging").iterdir())


def test_concurrent_alias_moves_never_lose_a_move(tmp_path: Path, metadata: VersionMetadata) -> None:
    registry = ModelRegistry(tmp_path)
    for payload in (b"1", b"2", b"3"):
        registry.register("fraud", {"model.bst": payload}, metadata)
    movers, each = 4, 25
    errors: list[BaseException] = []
    start = threading.Barrier(movers)

    def move(mover: int) -> None:
        mine = ModelRegistry(tmp_path)
        start.wait()
        try:
            for number in range(each):
                mine.promote("fraud", f"v000{(mover + number) % 3 + 1}", reason=f"mover {mover}")
        except BaseException as error:
            errors.append(error)

    _run([threading.Thread(target=move, args=(mover,)) for mover in range(movers)])

    assert errors == []
    history = registry.history("fraud", "production")
    # Each move was decided on the whole history before it: previous is always the version just before.
    assert history[0].previous is None
    for before, after in pairwise(history):
        assert after.previous == before.version
        assert after.version != before.version
    assert registry.alias("fraud", "production") == history[-1]
