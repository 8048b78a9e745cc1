"""A late backfill gets its merchant features: live traffic first, then a month of older history.

The features service runs against real Kafka and a real Feast store. Live traffic of
some users comes first and the merchant job catches up with it; then 30 days of
older history of other users (and their labels) arrive on the same topics, in two
parts: the service is killed with SIGKILL while it consumes the first, and has
caught up again (its merchant job included) when the second arrives, at merchants
of its own as well as the live ones. At the end, the training frame that
``build_training_frame`` makes over the feature service holds, for every stored
transaction, the merchant values a brute force computes from what was produced:
the latest snapshot that was available at or before the transaction (stamped when
the slowest partition reached its time plus the allowed lateness; of snapshots
available at one moment, the newest), within the view's TTL; its labels counted from when they
arrived (the history's arrive after the live traffic, so none counts in its own month). The user values
equal the user oracle too (the backfill's users are evicted when idle and read
back from the label store when they come back).
"""

from __future__ import annotations

import bisect
import functools
import math
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError, NotCoordinatorError

from berg.features.dataset import build_training_frame
from berg.features.label_store import ARRIVAL_TIME
from berg.features.store import close_store, open_store
from berg.features.store_config import FeatureStoreConfig
from berg.settings import KafkaSettings
from berg_features.aggregates import WindowEvent
from berg_features.handler import event_from_scored
from berg_fraud.contracts import LabelV1, TransactionV1
from tests.feature_oracle import oracle_row
from tests.fraud_schema import (
    EVENT_TIMESTAMP,
    FEATURE_SERVICE,
    MERCHANT_FRAUD_WINDOW,
    MERCHANT_KEY,
    MERCHANT_SNAPSHOT_EVERY,
    MERCHANT_TTL,
    REQUEST_AMOUNT,
    REQUEST_EVENT_UNIX,
    USER_AGGREGATES,
    USER_AS_OF,
    USER_FEATURES,
    USER_KEY,
    USER_TTL,
    fraud_label_store,
)
from tests.helpers import wait_for
from tests.integration.features.test_features_service import lag
from tests.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]  # bounds a hang only

LATENESS = timedelta(hours=1)
D0 = datetime(2026, 1, 1, tzinfo=UTC)
LIVE_START = D0 + timedelta(days=30)
MERCHANTS = [f"m{index}" for index in range(6)]
VIEW = {"view": "merchant_aggregates"}
"""The label of the merchant view's snapshot job metrics."""
MERCHANT_VALUES = ["merchant_tx_count_24h", "merchant_amount_mean_24h", "merchant_fraud_rate_30d"]
MERCHANT_VALUES.append("merchant_labels_known_30d")
USER_VALUES = [spec.name for spec in USER_FEATURES if spec.name != USER_AS_OF]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def traffic(
    rng: random.Random,
    users: Sequence[str],
    start: datetime,
    span: timedelta,
    count: int,
    label_delay: timedelta,
    merchants: Sequence[str] = MERCHANTS,
) -> tuple[list[TransactionV1], list[LabelV1]]:
    """``count`` transactions of ``users`` in event-time order over ``span``; labels for a third of them."""
    times = sorted(start + span * rng.random() for _ in range(count))
    transactions = [
        TransactionV1(
            event_id=uuid.UUID(int=rng.getrandbits(128)),
            event_time=at,
            user_id=rng.choice(users),
            merchant_id=rng.choice(merchants),
            amount=round(rng.uniform(1, 500), 2),
            merchant_category="5411",
            channel=rng.choice(["card_present", "card_not_present"]),
            country="DE",
        )
        for at in times
    ]
    labels = [
        LabelV1(
            event_id=uuid.UUID(int=rng.getrandbits(128)),
            event_time=tx.event_time + timedelta(hours=1) + label_delay * rng.random(),
            transaction_event_id=tx.event_id,
            user_id=tx.user_id,
            is_fraud=rng.random() < 0.4,
        )
        for tx in transactions
        if rng.random() < 1 / 3
    ]
    return transactions, sorted(labels, key=lambda label: label.event_time)


def availability_oracle(stored: pd.DataFrame) -> Callable[[datetime], datetime | None]:
    """When the snapshot at ``s`` became available, by definition: the latest over the source partitions
    of each one's first transaction at or after ``s`` plus the lateness (None: one has not got there)."""
    partitions = [
        sorted(moment.to_pydatetime() for moment in group)
        for _, group in stored.groupby("source_partition")["event_time"]
    ]

    @functools.cache
    def available(snapshot: datetime) -> datetime | None:
        firsts = []
        for times in partitions:
            index = bisect.bisect_left(times, snapshot + LATENESS)
            if index == len(times):
                return None
            firsts.append(times[index])
        return max(firsts)

    return available


def merchant_oracle(
    transactions: Sequence[TransactionV1],
    labels: Sequence[LabelV1],
    arrived: Mapping[str, datetime],
    merchant: str,
    at: datetime,
    available: Callable[[datetime], datetime | None],
    watermark: datetime,
) -> dict[str, float] | None:
    """What training must see for a transaction at ``at``: the newest snapshot available strictly before
    ``at`` and within the TTL (of snapshots available at one moment only the newest, where the watermark
    has passed the next), of a merchant with a transaction in its 30 days; each value from its definition
    (labels arrived by the snapshot, as ``arrived`` says per label id; the first to arrive per transaction)."""
    query = at - timedelta(microseconds=1)
    snapshot = _EPOCH + ((query - LATENESS - _EPOCH) // MERCHANT_SNAPSHOT_EVERY) * MERCHANT_SNAPSHOT_EVERY
    first_label: dict[str, LabelV1] = {}
    for label in sorted(labels, key=lambda label: (arrived[str(label.event_id)], str(label.event_id))):
        first_label.setdefault(str(label.transaction_event_id), label)
    mine = [tx for tx in transactions if tx.merchant_id == merchant]
    first_transaction = min((tx.event_time for tx in mine), default=at)
    while snapshot >= first_transaction:
        stamp = available(snapshot)
        if stamp is not None and stamp < query - MERCHANT_TTL:
            return None  # earlier snapshots are available no later
        following = snapshot + MERCHANT_SNAPSHOT_EVERY
        hidden = following <= watermark and available(following) == stamp
        window = [tx for tx in mine if snapshot - MERCHANT_FRAUD_WINDOW < tx.event_time <= snapshot]
        if stamp is not None and stamp <= query and not hidden and window:
            day = [tx for tx in window if tx.event_time > snapshot - timedelta(days=1)]
            known = [first_label[str(tx.event_id)] for tx in window if str(tx.event_id) in first_label]
            known = [label for label in known if arrived[str(label.event_id)] <= snapshot]
            return {
                "merchant_tx_count_24h": len(day),
                "merchant_amount_mean_24h": math.fsum(tx.amount for tx in day) / len(day) if day else math.nan,
                "merchant_fraud_rate_30d": sum(label.is_fraud for label in known) / len(window),
                "merchant_labels_known_30d": len(known),
            }
        snapshot -= MERCHANT_SNAPSHOT_EVERY
    return None


def user_oracle(events: Sequence[WindowEvent], user_id: str, at_us: int) -> dict[str, float | int] | None:
    """The user row training sees at ``at``: the one at the user's previous transaction, within the TTL."""
    earlier = [e.event_us for e in events if e.key == user_id and e.event_us < at_us]
    if not earlier or at_us - 1 - max(earlier) > USER_TTL.total_seconds() * 1_000_000:
        return None
    return oracle_row(events, user_id, max(earlier))


def same(got: Any, want: float) -> bool:
    if math.isnan(want):
        return bool(pd.isna(got))
    return not pd.isna(got) and math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-9)


def consumed_everything(bootstrap: str, group: str, topics: tuple[str, str]) -> bool:
    try:
        return lag(bootstrap, group, topics) == 0
    except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
        return False  # the group's coordinator is still being set up


def wait_for_the_merchant_job(service: ServiceProcess, bootstrap: str, group: str, topics: tuple[str, str]) -> None:
    """Until the service has consumed everything and a merchant run that began afterwards left nothing pending."""
    wait_for(lambda: consumed_everything(bootstrap, group, topics), 600, "the features service to consume everything")
    runs = service.metric("berg_features_snapshot_runs_total", {**VIEW, "outcome": "ok"})
    wait_for(
        lambda: (
            service.metric("berg_features_snapshot_runs_total", {**VIEW, "outcome": "ok"}) >= runs + 2
            and service.metric("berg_features_snapshot_pending_days", VIEW) == 0
        ),
        600,
        "the merchant job to recompute every pending day",
    )


def test_a_backfill_after_live_traffic_gets_its_merchant_and_user_features(
    kafka_settings: KafkaSettings, new_topic: Any, producer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap = kafka_settings.bootstrap_servers
    tx_topic, label_topic = new_topic(3), new_topic(3)
    topics = (tx_topic, label_topic)
    group = f"features-{uuid.uuid4().hex[:8]}"
    state, offline = tmp_path / "state", tmp_path / "offline"
    monkeypatch.setenv("BERG_STATE_DIR", str(state))
    rng = random.Random(15)
    live, live_labels = traffic(
        rng, [f"live{i}" for i in range(8)], LIVE_START, timedelta(days=2), 200, timedelta(hours=30)
    )
    first, first_labels = traffic(rng, [f"old{i}" for i in range(10)], D0, timedelta(days=30), 300, timedelta(days=20))
    second, second_labels = traffic(
        rng, [f"older{i}" for i in range(10)], D0, timedelta(days=30), 300, timedelta(days=20), [*MERCHANTS, "n0", "n1"]
    )

    def produce(transactions: Sequence[TransactionV1], labels: Sequence[LabelV1]) -> None:
        for tx in transactions:
            producer.send(tx_topic, key=tx.user_id.encode(), value=tx.model_dump_json().encode())
        for label in labels:
            producer.send(label_topic, key=label.user_id.encode(), value=label.model_dump_json().encode())
        producer.flush(30)

    service = ServiceProcess(
        "berg_features",
        "BERG_FEATURES_",
        {
            "KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "GROUP_ID": group,
            "SCORED_TOPIC": tx_topic,
            "LABELS_TOPIC": label_topic,
            "OFFLINE_ROOT": str(offline),
            "ALLOWED_LATENESS_S": str(LATENESS.total_seconds()),
            "BATCH_MAX_RECORDS": "60",
            "BATCH_MAX_WAIT_MS": "200",
            "SNAPSHOT_INTERVAL_S": "1",
            "SNAPSHOT_DAYS_PER_RUN": "4",
            "STATE_EVICTION_INTERVAL_S": "0",
            "ENVIRONMENT": "development",
        },
        tmp_path,
        "features",
    )
    try:
        # Live traffic first, and the merchant job up to date with it.
        produce(live, live_labels)
        service.start()
        service.wait_ready(timeout_s=600)  # a bound on a hang; a loaded machine starts Feast slowly
        wait_for_the_merchant_job(service, bootstrap, group, topics)

        # Then a month of older history, with a SIGKILL while it is being consumed...
        produce(first, first_labels)
        accepted = service.metric("berg_features_events_total", {"kind": "scored", "outcome": "accepted"})
        wait_for(
            lambda: (
                service.metric("berg_features_events_total", {"kind": "scored", "outcome": "accepted"})
                >= accepted + 100
            ),
            600,
            "the features service to take part of the history",
        )
        service.kill9()
        service.start()
        service.wait_ready(timeout_s=600)  # a bound on a hang; a loaded machine starts Feast slowly
        wait_for_the_merchant_job(service, bootstrap, group, topics)
        # ...and more of it once the service and its merchant job have caught up.
        produce(second, second_labels)
        wait_for_the_merchant_job(service, bootstrap, group, topics)
        failed = service.metric("berg_features_snapshot_runs_total", {**VIEW, "outcome": "failed"})
        assert failed == 0, service.log_tail()

        history = [*first, *second]
        produced = [*live, *history]
        labels = sorted([*live_labels, *first_labels, *second_labels], key=lambda label: label.event_time)
        label_store = fraud_label_store(str(offline / "label_store"))
        stored = label_store.read("transactions")
        stored_labels = label_store.read("labels")
        arrived = {
            str(event_id): at.to_pydatetime()
            for event_id, at in zip(stored_labels["event_id"], stored_labels[ARRIVAL_TIME], strict=True)
        }
        assert set(arrived) == {str(label.event_id) for label in labels}
        # The history's labels were read after the live traffic: they count from then, not from their event time.
        live_end = max(tx.event_time for tx in live)
        assert all(arrived[str(label.event_id)] >= live_end for label in [*first_labels, *second_labels])
        assert all(arrived[str(label.event_id)] >= label.event_time for label in labels)
        assert set(stored["event_id"]) == {str(tx.event_id) for tx in produced}  # nothing was late
        # Every transaction whose snapshots the watermark has passed: each partition is past it.
        low = stored.groupby("source_partition")["event_time"].max().min()
        scored = sorted((tx for tx in produced if tx.event_time <= low), key=lambda tx: tx.event_time)
        available = availability_oracle(stored)
        watermark = low.to_pydatetime() - LATENESS
        entities = pd.DataFrame(
            {
                "event_id": [str(tx.event_id) for tx in scored],
                USER_KEY: [tx.user_id for tx in scored],
                MERCHANT_KEY: [tx.merchant_id for tx in scored],
                EVENT_TIMESTAMP: pd.to_datetime([tx.event_time for tx in scored], utc=True),
                REQUEST_AMOUNT: [tx.amount for tx in scored],
                REQUEST_EVENT_UNIX: [tx.event_time.timestamp() for tx in scored],
            }
        )
        store = open_store(FeatureStoreConfig.embedded(state))
        try:
            frame = build_training_frame(store, entities, FEATURE_SERVICE)
        finally:
            close_store(store)

        events = [event_from_scored(USER_AGGREGATES, tx) for tx in produced]
        wrong_merchant, wrong_user, merchant_rows, missing = [], [], 0, 0
        for tx, (_, row) in zip(scored, frame.iterrows(), strict=True):
            want = merchant_oracle(produced, labels, arrived, tx.merchant_id, tx.event_time, available, watermark)
            missing += want is not None and bool(pd.isna(row["merchant_tx_count_24h"]))
            if want is None:
                if not all(pd.isna(row[name]) for name in MERCHANT_VALUES):
                    wrong_merchant.append((tx.event_time, tx.merchant_id, "expected no row"))
            else:
                merchant_rows += 1
                if not all(same(row[name], value) for name, value in want.items()):
                    wrong_merchant.append((tx.event_time, tx.merchant_id, {n: row[n] for n in want}, want))
            user_want = user_oracle(events, tx.user_id, event_from_scored(USER_AGGREGATES, tx).event_us)
            if user_want is None:
                if not all(pd.isna(row[name]) for name in USER_VALUES):
                    wrong_user.append((tx.event_time, tx.user_id, "expected no row"))
            elif not all(same(row[name], float(user_want[name])) for name in USER_VALUES):
                wrong_user.append((tx.event_time, tx.user_id))
        history_scored = sum(tx.event_time < LIVE_START for tx in scored)
        assert history_scored == len(history)
        assert merchant_rows > len(scored) * 0.9
        assert missing == 0, f"{missing} transactions have no merchant values where a snapshot was available"
        assert not wrong_merchant, (len(wrong_merchant), wrong_merchant[:5])
        assert not wrong_user, (len(wrong_user), wrong_user[:5])
    finally:
        service.stop()
