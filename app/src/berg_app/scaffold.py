"""``berg new use-case NAME``: a skeleton use-case package whose own tests pass as generated.

Like ``feast init``: it writes a workspace member under ``usecases/<name>/`` with
everything the use-case descriptor (:mod:`berg.usecase`) asks for today: the two
contracts (the event scored and the label that judges it), a problem card, the
data rules validation and serving apply, the features its model reads (a streaming
view and the Feast feature service), the descriptor itself with its streams and
label join, the entry point that lets the platform find it by name, and tests. ``uv sync`` installs it (the workspace's
members include ``usecases/*``); ``BERG_USE_CASE=<name>`` selects it.

The skeleton's domain is deliberately neutral (a ``subject`` and an ``outcome``):
rename the fields to yours. docs/use-cases.md walks on from here.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

__all__ = ["ScaffoldError", "scaffold_use_case"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


class ScaffoldError(ValueError):
    """The name is not a valid use-case name, or its folder exists already."""


_PYPROJECT = """\
[project]
name = "berg-$dist"
version = "0.1.0"
description = "Berg use case $name: a plug-in found through the berg.use_cases entry-point group."
requires-python = ">=3.11,<3.12"
dependencies = [
    "berg",
]

[project.entry-points."berg.use_cases"]
$name = "berg_$name.use_case:use_case"

[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/berg_$name"]

[tool.uv.sources]
berg = { workspace = true }
"""

_INIT = '''\
"""Berg use case $name, a plug-in (see :mod:`berg.usecase`)."""
'''

_CONTRACTS = '''\
"""The contracts of use case $name: the event scored and the label that judges it, version 1.

A contract change is a new version (``EventV2``), never an edit. Every Berg contract has an
``event_id`` (sinks are idempotent on it) and an aware ``event_time`` (sinks partition by it).
"""

from __future__ import annotations

from pydantic import BaseModel

from berg.contracts._types import CONTRACT_CONFIG, EventId, Identifier, JsonBool, JsonNumber, UtcDatetime

__all__ = ["EventV1", "LabelV1"]


class EventV1(BaseModel):
    """One event to score. Rename ``subject_id`` and ``value`` to your domain's fields."""

    model_config = CONTRACT_CONFIG

    event_id: EventId
    event_time: UtcDatetime
    subject_id: Identifier
    """The entity the event belongs to: the Kafka key, so one subject's events stay in order."""
    value: JsonNumber
    """A number the model scores by, and the amount business metrics price a miss by."""


class LabelV1(BaseModel):
    """The verdict on one event, known later."""

    model_config = CONTRACT_CONFIG

    event_id: EventId
    event_time: UtcDatetime
    """When the verdict became known; after the event."""
    scored_event_id: EventId
    """The ``event_id`` of the event this label judges."""
    subject_id: Identifier
    outcome: JsonBool
    """The positive class."""
'''

_CARD = """\
# The problem card of use case $name: the target, the cost of a wrong prediction and the
# baseline to beat. A change of meaning is a new version (card_v2.yaml), never an edit.
name: $name
version: 1
summary: >-
  Say what is predicted, for whom, and what is done with the score.
prediction_unit: >-
  One event (event_id), scored once with the features known before it.
target:
  column: outcome
  definition: >-
    An event is positive when a label with outcome=true arrives within label_horizon_days of it.
  label_horizon_days: 7
costs:
  currency: EUR
  false_positive: 1.0
  false_negative_fixed: 5.0
  false_negative_amount_share: 0.0
  true_positive: 0.0
metrics:
  primary: pr_auc
  reported: [pr_auc, roc_auc, precision, recall, expected_cost]
threshold:
  policy: min_expected_cost
  min_precision: 0.0
baseline:
  kind: prior
promotion:
  metric: pr_auc
  min_lift_over_baseline: 0.02
  min_lift_over_champion: 0.005
  require_lower_cost_than_champion: true
"""

_RULES = '''\
"""The data rules of use case $name: what an event must mean, and what a healthy batch of them looks like.

Validation dead-letters an event that breaks a value rule and quarantines a batch that breaks a
batch rule; serving refuses a scoring request that breaks a value rule. The fields are the rules'
parameters, read from ``BERG_VALIDATION_RULES__*`` and ``BERG_SERVING_RULES__*`` (docs/use-cases.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import ConfigDict, Field

from berg.contracts.batch_rules import BatchBounds, BatchRule, Bounds, MeanBetween, TopValueShareAtMost
from berg.contracts.rules import ContractRules, PositiveAtMost, ValueRule

__all__ = ["UseCaseBatchBounds", "UseCaseRules"]


class UseCaseBatchBounds(BatchBounds):
    """The bounds of the events' batch rules: wide enough for normal traffic, tight enough for a broken upstream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value_mean: Bounds = (0.01, 10_000.0)
    """Mean ``value`` of the events that passed the value rules."""
    max_top_subject_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    """At most this share of a batch may belong to one subject."""


class UseCaseRules(ContractRules):
    """The parameters of the rules; a stream they do not declare (the labels) gets the shared ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_value: Annotated[float, Field(gt=0.0)] = 1_000_000.0
    """Largest accepted ``value``."""
    batch: UseCaseBatchBounds = UseCaseBatchBounds()

    def declare_value_rules(self) -> Mapping[str, tuple[ValueRule, ...]]:
        return {"events": (PositiveAtMost("value", self.max_value), *self.common_value_rules())}

    def declare_batch_rules(self) -> Mapping[str, tuple[BatchRule, ...]]:
        return {
            "events": (
                MeanBetween("value", *self.batch.value_mean),
                TopValueShareAtMost("subject_id", self.batch.max_top_subject_share),
            )
        }
'''

_FEATURES = '''\
"""The features of use case $name's model: the ``${name}_model_v1`` feature service and its views.

The features service computes the streaming view per event and pushes it to Feast; serving and the
training pipeline read the feature service. Add a snapshot view over the label store
(:class:`~berg.features.feature_set.SnapshotView`) or an on-demand view
(:class:`~berg.features.feature_set.OnDemandView`) the same way; docs/use-cases.md shows both.
"""

from __future__ import annotations

from datetime import timedelta

from berg.features.aggregation import AggregationView, WindowedAggregate
from berg.features.feature_set import Entity, FeatureSet, StreamingView

__all__ = ["features"]

_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)

SUBJECT = Entity("subject", "subject_id", "The entity the events belong to.")

SUBJECT_AGGREGATES = AggregationView(
    name="subject_aggregates",
    key=SUBJECT.key,
    as_of="last_event_unix",
    aggregates=(
        WindowedAggregate("events_1h", "count", _HOUR, description="The subject's events in the last hour."),
        WindowedAggregate("value_mean_24h", "mean", _DAY, field="value", description="Mean value, last 24 hours."),
        WindowedAggregate("value_max_24h", "max", _DAY, field="value", description="Largest value, last 24 hours."),
    ),
)


def features() -> FeatureSet:
    """The ``${name}_model_v1`` feature service: a new feature set is a new service (v2), never an edit."""
    return FeatureSet(
        service="${name}_model_v1",
        streaming=(StreamingView(SUBJECT_AGGREGATES, SUBJECT, ttl=timedelta(days=7), description="Per subject."),),
        request_features=("value",),
        description="The features of the $name model, version 1.",
    )
'''

_USE_CASE = '''\
"""The descriptor of use case $name: what the platform loads when ``BERG_USE_CASE=$name``."""

from __future__ import annotations

from importlib import resources

from berg.problem.card import ProblemCard, parse_problem_card
from berg.usecase import LabelJoin, Stream, UseCase
from berg_$name.contracts import EventV1, LabelV1
from berg_$name.features import features
from berg_$name.rules import UseCaseRules

__all__ = ["problem_card", "use_case"]


def problem_card() -> ProblemCard:
    """The card of ``card_v1.yaml``."""
    return parse_problem_card(resources.files("berg_$name").joinpath("card_v1.yaml").read_text(encoding="utf-8"))


def _stream(name: str, contract: type[EventV1] | type[LabelV1]) -> Stream:
    topics = (f"$name.{name}.raw", f"$name.{name}.ingested", f"$name.{name}.valid")
    return Stream(name, contract, *topics, key="subject_id")


def use_case() -> UseCase:
    """Use case $name (the entry point ``$name`` in pyproject.toml names this function)."""
    return UseCase(
        name="$name",
        card=problem_card(),
        scored=_stream("events", EventV1),
        labels=_stream("labels", LabelV1),
        label_join=LabelJoin(event_id="event_id", subject_id="scored_event_id", target="outcome", amount="value"),
        features=features(),
        rules=UseCaseRules,
    )
'''

_TEST = '''\
"""Use case $name as generated: its descriptor, its contracts and its entry point agree."""

from __future__ import annotations

import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path

import pytest
from pydantic import ValidationError

from berg.contracts.rules import violations
from berg.usecase import ENTRY_POINT_GROUP
from berg_$name.contracts import EventV1, LabelV1
from berg_$name.rules import UseCaseRules
from berg_$name.use_case import use_case

pytestmark = pytest.mark.unit

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_descriptor_is_valid_and_its_card_names_the_label_target() -> None:
    described = use_case()
    assert described.name == described.card.name == "$name"
    assert described.card.target.column == described.label_join.target
    assert (described.scored.contract, described.labels.contract) == (EventV1, LabelV1)
    assert described.features.service == "${name}_model_v1"


def test_the_entry_point_names_the_descriptor() -> None:
    entry_points = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    module, _, function = entry_points["$name"].partition(":")
    assert getattr(import_module(module), function)() == use_case()


def test_the_contracts_take_a_well_formed_event_and_label_and_refuse_a_string_verdict() -> None:
    event = EventV1(event_id=uuid.uuid4(), event_time=datetime.now(UTC), subject_id="s-1", value=3.5)
    label = {
        "event_id": str(uuid.uuid4()),
        "event_time": datetime.now(UTC).isoformat(),
        "scored_event_id": str(event.event_id),
        "subject_id": "s-1",
        "outcome": True,
    }
    assert LabelV1.model_validate(label).outcome is True
    with pytest.raises(ValidationError, match="outcome"):
        LabelV1.model_validate({**label, "outcome": "yes"})


def test_the_value_rules_refuse_a_value_out_of_bounds_and_an_event_from_the_future() -> None:
    rules = UseCaseRules(max_value=100.0).value_rules("events")
    now = datetime.now(UTC)
    event = EventV1(event_id=uuid.uuid4(), event_time=now, subject_id="s-1", value=3.5)
    assert violations(rules, event, now) == []
    too_big = event.model_copy(update={"value": 100.5, "event_time": now + timedelta(hours=1)})
    assert [violation.field for violation in violations(rules, too_big, now)] == ["value", "event_time"]
'''

_FILES = {
    "pyproject.toml": _PYPROJECT,
    "src/berg_$name/__init__.py": _INIT,
    "src/berg_$name/contracts.py": _CONTRACTS,
    "src/berg_$name/card_v1.yaml": _CARD,
    "src/berg_$name/rules.py": _RULES,
    "src/berg_$name/features.py": _FEATURES,
    "src/berg_$name/use_case.py": _USE_CASE,
    "tests/test_${name}_use_case.py": _TEST,
}


def scaffold_use_case(name: str, usecases_dir: Path) -> list[Path]:
    """Write the skeleton of use case ``name`` under ``usecases_dir/<name>``; the files written, in order.

    Raises:
        ScaffoldError: ``name`` is not lower-case letters, digits and underscores starting with a letter
            (it becomes the package ``berg_<name>``), or ``usecases_dir/<name>`` exists already.
    """
    if not _NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a use-case name: use lower-case letters, digits and underscores, starting with a "
            "letter, at most 31 characters (it becomes the package berg_<name>)"
        )
    root = usecases_dir / name
    if root.exists():
        raise ScaffoldError(f"{root} exists already; choose another name or remove it")
    values = {"name": name, "dist": name.replace("_", "-")}
    written = []
    for relative, template in _FILES.items():
        path = root / Template(relative).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values), encoding="utf-8")
        written.append(path)
    return written
