"""Shadow traffic for the shadow comparison's tests, and the brute force its gauges must equal.

The brute force knows nothing of the exporter's windows: it settles each scored event
from the card's definition (positive when a positive label came within the horizon,
negative once the watermark is a horizon past it), bins as the pipeline's reference
profile does (``distribution_profile``) and sums PSI in a loop, and takes PR-AUC from
scikit-learn. Shared by the unit test and the integration test against Kafka.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import BaseModel
from sklearn.metrics import average_precision_score

from berg.contracts import PredictionV3, ShadowPredictionV1
from berg.contracts.predictions import Decision
from berg.usecase import UseCase
from berg_monitoring.shadow_comparison import ShadowSettings
from berg_monitoring.statistics import PSI_EMPTY_BIN_SHARE
from berg_monitoring.windows import Verdict
from berg_pipelines.runtime.profile import distribution_profile

__all__ = ["CHAMPION", "SETTINGS", "SHADOWS", "Traffic", "brute_force", "label_of", "label_record", "traffic"]

T0 = datetime(2026, 6, 1, tzinfo=UTC)
CHAMPION = "v0001"
SHADOWS = ("v0002", "v0003")
DECISIONS: tuple[Decision, ...] = ("approve", "review", "decline")
# The other fields each use case's label contract requires besides the join's (subject, verdict, event time).
LABEL_EXTRAS: dict[str, dict[str, Any]] = {"fraud": {"user_id": "u-1"}, "clicks": {"viewer_id": "v-1"}}
SETTINGS = ShadowSettings(min_rows=50, min_labels=30, min_positives=3)


@dataclass
class Traffic:
    """What was sent, for the brute force: the champion's predictions, the shadow records, the labels."""

    horizon_s: float
    predictions: list[PredictionV3]
    shadows: list[ShadowPredictionV1]
    labels: list[Verdict]


def label_record(use_case: UseCase, subject: uuid.UUID, positive: bool, at: datetime) -> BaseModel:
    """A label in the use case's own contract, as its labels topic carries it."""
    join = use_case.label_join
    return use_case.labels.contract.model_validate(
        {
            "event_id": uuid.uuid4(),
            "event_time": at,
            join.subject_id: subject,
            join.target: positive,
            **LABEL_EXTRAS[use_case.name],
        }
    )


def label_of(use_case: UseCase, subject: uuid.UUID, positive: bool, at: datetime) -> Verdict:
    """A label in the use case's own contract, read through its label join as the exporter reads it."""
    return Verdict.of(label_record(use_case, subject, positive, at), use_case.label_join)


def traffic(use_case: UseCase, rng: np.random.Generator, rows: int = 600, model: str | None = None) -> Traffic:
    """Champion predictions over four horizons of event time; each shadow version scores a random share of them
    (some requests both), deciding otherwise now and then; a share is labelled, some positives after the horizon."""
    horizon_s = use_case.card.target.label_horizon_days * 86_400.0
    step = 4 * horizon_s / rows
    predictions, shadows, labels = [], [], []
    for n in range(rows):
        at = T0 + timedelta(seconds=n * step)
        scored = uuid.uuid4()
        positive = bool(rng.random() < 0.2)
        champion_score = float(np.clip(rng.beta(2, 6) + 0.4 * positive, 0, 1))
        champion_decision: Decision = "review" if champion_score >= 0.5 else "approve"
        predictions.append(
            PredictionV3(
                event_id=uuid.uuid4(),
                scored_event_id=scored,
                scored_event_time=at,
                served_at=at,
                entities={"k": "e-1"},
                model_name=model or use_case.name,
                model_version=CHAMPION,
                features={"x": float(rng.normal())},
                score=champion_score,
                threshold=0.5,
                decision=champion_decision,
            )
        )
        for shadow_version in SHADOWS:
            if rng.random() < 0.6:
                score = float(np.clip(champion_score + rng.normal(0.05, 0.15), 0, 1))
                shadows.append(
                    ShadowPredictionV1(
                        event_id=uuid.uuid4(),
                        prediction_event_id=predictions[-1].event_id,
                        scored_event_id=scored,
                        scored_event_time=at,
                        served_at=at,
                        shadow_scored_at=at + timedelta(milliseconds=5),
                        entities={"k": "e-1"},
                        model_name=model or use_case.name,
                        champion_version=CHAMPION,
                        champion_score=champion_score,
                        champion_threshold=0.5,
                        champion_decision=champion_decision,
                        shadow_version=shadow_version,
                        score=score,
                        threshold=0.45,
                        decision=DECISIONS[int(rng.integers(3))] if rng.random() < 0.3 else champion_decision,
                    )
                )
        if rng.random() < 0.7:  # labelled: mostly within the horizon, a tenth after it (stays negative)
            delay = horizon_s * (rng.uniform(1.05, 1.5) if rng.random() < 0.1 else rng.uniform(0.01, 0.9))
            labels.append(label_of(use_case, scored, positive, at + timedelta(seconds=delay)))
    return Traffic(horizon_s, predictions, shadows, labels)


def brute_force_psi(reference: list[float], live: list[float]) -> float:
    profile = distribution_profile(np.array(reference))
    edges, expected = profile["edges"], [*profile["shares"], profile["missing_share"]]
    counts = [0] * (len(edges) + 2)
    for value in live:
        counts[sum(edge <= value for edge in edges)] += 1
    total = 0.0
    for count, share in zip(counts, expected, strict=True):
        actual, share = max(count / len(live), PSI_EMPTY_BIN_SHARE), max(share, PSI_EMPTY_BIN_SHARE)
        total += (actual - share) * math.log(actual / share)
    return total


def brute_force(sent: Traffic, capacity: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Every gauge of every pair, from the card's definitions over the last ``capacity`` requests of each pair."""
    watermark = min(
        max(p.scored_event_time.timestamp() for p in sent.predictions),
        max(label.event_time.timestamp() for label in sent.labels),
    )
    times = {p.scored_event_id: p.scored_event_time.timestamp() for p in sent.predictions}
    positive = {
        key
        for label in sent.labels
        if label.positive and label.event_time.timestamp() - times[(key := label.subject_id)] <= sent.horizon_s
    }
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for version in SHADOWS:
        records = [r for r in sent.shadows if r.shadow_version == version][-capacity:]
        settled = [r for r in records if times[r.scored_event_id] + sent.horizon_s <= watermark]
        truth = [int(r.scored_event_id in positive) for r in settled]
        flips = sum(r.decision != r.champion_decision for r in records)
        gauges: dict[str, Any] = {
            "predictions": len(records),
            "labelled": len(settled),
            "decision_agreement": (len(records) - flips) / len(records),
            "decision_flips": flips,
            "score_psi": brute_force_psi([r.champion_score for r in records], [r.score for r in records]),
        }
        if len(truth) >= SETTINGS.min_labels and SETTINGS.min_positives <= sum(truth) < len(truth):
            gauges["champion"] = average_precision_score(truth, [r.champion_score for r in settled])
            gauges["shadow"] = average_precision_score(truth, [r.score for r in settled])
        expected[(CHAMPION, version)] = gauges
    return expected
