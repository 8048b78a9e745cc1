"""What ``berg demo`` shows of the data plane: simulated traffic in, valid events and dead letters out.

The demo plans a simulator run ending at the present (with a share of every
malformed class), notes where the downstream topics end (the valid topics of
the use case's two streams and ``berg.dlq``), produces the run to the raw topics
and then watches them until every record of this run has come out of the
ingestion and validation services, one way or the other.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel

from berg.contracts.dead_letter import DeadLetterV1
from berg.kafka.lineage import dead_letter_origin
from berg.kafka.records import RawRecord
from berg.kafka.security import client_security
from berg.kafka.topics import DEAD_LETTER
from berg.kafka.undecodable import UndecodableBatchError, UndecodableBatches, poll_records
from berg.settings import KafkaSettings
from berg.simulator.traffic import MALFORMED_CLASS_HEADER, SimulatedEvent
from berg.usecase import UseCase

__all__ = ["DownstreamWatcher", "RunOutcome"]


def _event_id(contract: type[BaseModel], value: bytes | None) -> str:
    # Every contract has an event_id (the descriptor checks it), whatever its type: compared as text.
    event: Any = contract.model_validate_json(value or b"")
    return str(event.event_id)


@dataclass
class RunOutcome:
    """What has come out downstream of one run's records so far (event ids as text)."""

    expected_scored: frozenset[str]
    expected_labels: frozenset[str]
    expected_dead_letters: int
    valid_scored: set[str] = field(default_factory=set)
    valid_labels: set[str] = field(default_factory=set)
    dead_letters: dict[tuple[str, ...], tuple[str, str, str]] = field(default_factory=dict)
    """Raw coordinates to (malformed class, stage, reason), one entry per refused raw record."""

    @classmethod
    def of(cls, events: Sequence[SimulatedEvent], use_case: UseCase) -> RunOutcome:
        return cls(
            expected_scored=frozenset(e.truth.subject_id for e in events if e.kind == "scored"),
            expected_labels=frozenset(
                _event_id(use_case.labels.contract, e.value) for e in events if e.kind == "label"
            ),
            expected_dead_letters=sum(e.kind == "malformed" for e in events),
        )

    @property
    def complete(self) -> bool:
        return (
            self.valid_scored >= self.expected_scored
            and self.valid_labels >= self.expected_labels
            and len(self.dead_letters) >= self.expected_dead_letters
        )

    def dead_letters_by_class(self) -> Counter[tuple[str, str, str]]:
        return Counter(self.dead_letters.values())


class DownstreamWatcher:
    """Reads the downstream topics from where they end now, so only what comes later is seen."""

    def __init__(self, settings: KafkaSettings, use_case: UseCase) -> None:
        self._scored, self._labels = use_case.scored, use_case.labels
        self._consumer: Any = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id="berg-demo",
            enable_auto_commit=False,
            **client_security(settings),
        )
        partitions = [
            TopicPartition(topic, partition)
            for topic in (self._scored.valid_topic, self._labels.valid_topic, DEAD_LETTER)
            for partition in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end()
        for partition in partitions:
            # Resolve the lazy seek now: records produced after this point are the run's.
            self._consumer.position(partition)

    def poll(self, outcome: RunOutcome) -> None:
        """Fold whatever arrived into ``outcome``."""
        try:
            records = poll_records(self._consumer, 300, None)
        except UndecodableBatchError as error:
            # A watcher has nothing to dead-letter: the skip is logged, and the run reads on.
            UndecodableBatches().move_past(self._consumer, error.batch)
            return
        for record in records:
            if record.topic == self._scored.valid_topic:
                event_id = _event_id(self._scored.contract, record.value)
                if event_id in outcome.expected_scored:
                    outcome.valid_scored.add(event_id)
            elif record.topic == self._labels.valid_topic:
                label_id = _event_id(self._labels.contract, record.value)
                if label_id in outcome.expected_labels:
                    outcome.valid_labels.add(label_id)
            else:
                self._dead_letter(record, outcome)

    @staticmethod
    def _dead_letter(record: RawRecord, outcome: RunOutcome) -> None:
        headers = {name: value or b"" for name, value in record.headers}
        malformed_class = headers.get(MALFORMED_CLASS_HEADER)
        if malformed_class is None:
            return  # not one of this run's planted records
        envelope = DeadLetterV1.from_headers(record.headers)
        key = dead_letter_origin(record.headers)
        outcome.dead_letters.setdefault(key, (malformed_class.decode(), envelope.stage, envelope.reason))

    def wait(
        self, outcome: RunOutcome, timeout_s: float, on_progress: Callable[[RunOutcome], None] = lambda _: None
    ) -> bool:
        """Poll until the run is complete or ``timeout_s`` passed; True when complete."""
        deadline = time.monotonic() + timeout_s
        while not outcome.complete and time.monotonic() < deadline:
            self.poll(outcome)
            on_progress(outcome)
        return outcome.complete

    def close(self) -> None:
        self._consumer.close()
