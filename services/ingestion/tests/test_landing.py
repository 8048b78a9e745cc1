"""The landing zone: partitioned parquet, atomic files, idempotent on event_id across restarts and instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from berg.kafka.records import RawRecord
from berg_fraud.contracts import TransactionV1
from berg_ingestion.landing import LandingZone
from berg_ingestion.rows import landing_schema, to_row
from tests.helpers import make_transactions

pytestmark = pytest.mark.unit

TRANSACTION_SCHEMA = landing_schema(TransactionV1)

INGESTED_AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def rows(count: int, seed: int = 1) -> list[dict[str, object]]:
    events = make_transactions(count, seed)
    return [
        to_row(event, RawRecord("transactions.raw", 0, i, None, b"", (), 0), INGESTED_AT)
        for i, event in enumerate(events)
    ]


def test_a_row_is_the_events_fields_with_ids_as_text_plus_where_it_was_read() -> None:
    [event] = make_transactions(1, 3)
    row = to_row(event, RawRecord("transactions.raw", 2, 17, None, b"", (), 0), INGESTED_AT)
    dumped = event.model_dump(mode="python")
    assert row == {
        **dumped,
        "event_id": str(event.event_id),
        "ingested_at": INGESTED_AT,
        "kafka_topic": "transactions.raw",
        "kafka_partition": 2,
        "kafka_offset": 17,
    }
    assert list(row)[: len(dumped)] == list(dumped)


def test_rows_land_partitioned_by_event_date_and_read_back(tmp_path: Path) -> None:
    batch = rows(50)
    batch[0]["event_time"] = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    zone = LandingZone(tmp_path)
    assert zone.append("transactions", batch, TRANSACTION_SCHEMA) == 50
    table = zone.read("transactions")
    assert table.num_rows == 50
    assert sorted(table.column("event_id").to_pylist()) == sorted(str(r["event_id"]) for r in batch)
    assert (tmp_path / "transactions" / "event_date=2026-01-02").is_dir()
    assert not list(tmp_path.rglob(".*.tmp")), "no temporary file is left behind"


def test_a_redelivered_batch_lands_nothing_twice_even_after_a_restart(tmp_path: Path) -> None:
    batch = rows(30)
    assert LandingZone(tmp_path).append("transactions", batch[:20], TRANSACTION_SCHEMA) == 20
    restarted = LandingZone(tmp_path)
    assert restarted.append("transactions", batch, TRANSACTION_SCHEMA) == 10
    assert restarted.append("transactions", batch, TRANSACTION_SCHEMA) == 0
    ids = restarted.read("transactions").column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == 30


def test_a_second_instance_sees_what_the_first_one_landed(tmp_path: Path) -> None:
    batch = rows(10)
    first, second = LandingZone(tmp_path), LandingZone(tmp_path)
    second.read("transactions")
    assert first.append("transactions", batch, TRANSACTION_SCHEMA) == 10
    assert second.append("transactions", batch, TRANSACTION_SCHEMA) == 0


def test_duplicates_within_one_batch_land_once(tmp_path: Path) -> None:
    batch = rows(5)
    assert LandingZone(tmp_path).append("transactions", batch + batch, TRANSACTION_SCHEMA) == 5


def test_lineage_columns_are_kept(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path)
    zone.append("transactions", rows(3), TRANSACTION_SCHEMA)
    table = zone.read("transactions")
    assert set(table.column("kafka_offset").to_pylist()) == {0, 1, 2}
    ingested = table.column("ingested_at").to_pylist()[0]
    assert ingested - INGESTED_AT == timedelta(0)


def test_nothing_landed_reads_as_an_empty_table(tmp_path: Path) -> None:
    assert LandingZone(tmp_path).read("labels").num_rows == 0


def test_idle_old_partitions_are_forgotten_and_a_redelivery_still_lands_nothing_twice(tmp_path: Path) -> None:
    """Sixty days of traffic, day by day: the ids held stay a few days' worth (today's code held every
    day's), and a batch of the first day redelivered at the end is still recognised, from the files."""
    zone = LandingZone(tmp_path, evict_every=2, keep_days=2)
    days = []
    for day in range(60):
        batch = rows(4, seed=day)
        for row in batch:
            row["event_time"] = datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(days=day)
        days.append(batch)
        assert zone.append("transactions", batch[:2], TRANSACTION_SCHEMA) == 2
        assert zone.append("transactions", batch, TRANSACTION_SCHEMA) == 2
        assert zone.cached_partitions <= 4
    assert zone.append("transactions", days[0], TRANSACTION_SCHEMA) == 0
    assert zone.append("transactions", days[30] + days[59], TRANSACTION_SCHEMA) == 0
    assert zone.read("transactions").num_rows == 60 * 4
