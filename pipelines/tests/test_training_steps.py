"""The training pipeline's steps, called directly (no KFP), on a real Feast store filled with simulated history.

One world (60 days of simulated traffic through the features service's handler)
serves the whole module: the dataset is built from it once, and each test copies
what it needs to break. What is checked is what the pipeline promises: temporal
splits with the latest window held out, a broken dataset or a leaky feature fails
the run with a message naming it, and the gate promotes a model that beats the
baseline and refuses one that does not beat the baseline or the champion.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs
import pytest
import xgboost as xgb
import yaml
from feast import FeatureService, FeatureView, Field, FileSource, PushSource
from feast.data_source import PushMode
from feast.types import Float64, Int64, String

from berg.features.dataset import describe_features
from berg.features.definitions import AS_OF_TAG, build_definitions
from berg.features.feature_set import ARRIVAL_TIME, DeclaredWindow, TrustedView
from berg.features.leakage import LeakageError
from berg.features.parquet_parts import SCHEMA_PART, write_part
from berg.features.recompute import RecomputeError, RecomputeResult, to_micros
from berg.features.recompute_check import UnprovenViewError
from berg.features.store import close_store, open_store
from berg.problem.metrics import average_precision, roc_auc
from berg.registry import IntegrityError
from berg.registry.registry import ModelRegistry
from berg_fraud.use_case import fraud, problem_card
from berg_pipelines.runtime import dataset as dataset_runtime
from berg_pipelines.runtime.evaluate import EvaluationReport, booster_scorer
from berg_pipelines.runtime.frames import DatasetInfo, read_frame, write_frame
from berg_pipelines.runtime.gate import Decision, decide
from berg_pipelines.runtime.model_io import load_booster
from berg_pipelines.runtime.validate import DatasetValidationError
from berg_pipelines.steps import (
    EVALUATION_FILE,
    MODEL_FILE,
    SPLITS,
    PipelineSettings,
    baseline_step,
    build_dataset_step,
    evaluate_step,
    gate_step,
    register_step,
    train_step,
    validate_step,
)
from tests.feature_world import FeatureWorld, simulated_feature_store
from tests.fraud_schema import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    FEATURE_SERVICE,
    FEATURES,
    MERCHANT_AS_OF,
    MERCHANT_KEY,
    MERCHANT_VIEW,
    ON_DEMAND_VIEW,
    REQUEST_EVENT_UNIX,
    USER_KEY,
    USER_VIEW,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "fraud"
WINDOW_DAYS = 30.0
"""The whole label-complete part of 60 simulated days (the card's label horizon is 30 days)."""
LEAKY_SERVICE = "fraud_model_leaky"
LEAK_VIEW = "planted_label_leak"
LEAK_FEATURE = "user_last_is_fraud"
LEAK_AS_OF = "planted_leak_as_of_unix"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> FeatureWorld:
    return simulated_feature_store(tmp_path_factory.mktemp("world"), days=60)


@pytest.fixture(scope="module")
def settings(world: FeatureWorld) -> PipelineSettings:
    """The world's store, as a step's process would read it from its environment."""
    return PipelineSettings(offline_root=world.offline_root, store=world.store_config)


@pytest.fixture(scope="module")
def dataset(settings: PipelineSettings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("dataset")
    build_dataset_step(settings, output, window_days=WINDOW_DAYS, feature_service=FEATURE_SERVICE)
    return output


@dataclass(frozen=True)
class Trained:
    model: Path
    baseline: Path
    metrics: dict[str, float]


def train(settings: PipelineSettings, dataset: Path, out: Path, *, dask_scheduler: str = "") -> Trained:
    metrics = train_step(dataset, out / "model", "{}", dask_scheduler)
    baseline_step(settings, dataset, out / "baseline")
    return Trained(out / "model", out / "baseline", metrics)


@pytest.fixture(scope="module")
def good(settings: PipelineSettings, dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The challenger trained on the real dataset, single process."""
    return train(settings, dataset, tmp_path_factory.mktemp("good"))


@dataclass(frozen=True)
class Evaluated:
    report: EvaluationReport
    directory: Path
    html: Path


def evaluate(settings: PipelineSettings, dataset: Path, trained: Trained, registry: str, out: Path) -> Evaluated:
    out.mkdir(parents=True, exist_ok=True)
    html = out / "report.html"
    report = evaluate_step(
        settings, dataset, trained.model, trained.baseline, registry, MODEL, out / "evaluation", html
    )
    return Evaluated(report, out / "evaluation", html)


def register(
    settings: PipelineSettings,
    dataset: Path,
    trained: Trained,
    evaluated: Evaluated,
    registry: str,
    decision: Decision,
    run_id: str,
) -> str:
    return register_step(
        settings,
        dataset,
        trained.model,
        evaluated.directory,
        registry,
        MODEL,
        run_id=run_id,
        code_version="test-sha",
        promote=decision.promote,
        reason=decision.summary,
    )


def test_dataset_holds_out_the_latest_window_with_both_classes_in_every_split(
    dataset: Path, world: FeatureWorld
) -> None:
    info = DatasetInfo.read(dataset)
    frames = {name: read_frame(dataset / f"{name}.parquet") for name in SPLITS}

    train, validation, test = (frames[name][EVENT_TIMESTAMP] for name in SPLITS)
    assert train.max() < validation.min() <= validation.max() < test.min()
    assert pd.Timestamp(info.split_times[0]) == validation.min()
    assert pd.Timestamp(info.split_times[1]) == test.min()
    window_start, window_end = datetime.fromisoformat(info.window_start), datetime.fromisoformat(info.window_end)
    assert window_end - window_start == timedelta(days=WINDOW_DAYS)
    assert window_start <= train.min()
    assert test.max() < window_end
    horizon = timedelta(days=problem_card().target.label_horizon_days)
    assert window_end <= world.end - horizon, "only transactions whose label horizon has passed"

    for name, frame in frames.items():
        labels = frame[info.label_column]
        assert set(labels.unique()) == {0, 1}, name
        assert (info.rows[name], info.positives[name]) == (len(frame), int(labels.sum())), name
        assert frame["event_id"].is_unique, name
    assert len(frames["train"]) > len(frames["validation"]) > 0
    ids = [set(frame["event_id"]) for frame in frames.values()]
    assert not (ids[0] & ids[1])
    assert not (ids[1] & ids[2])
    assert not (ids[0] & ids[2])

    store = open_store(world.store_config)
    try:
        service = store.get_feature_service(FEATURE_SERVICE)
    finally:
        close_store(store)
    served = [feature.name for projection in service.feature_view_projections for feature in projection.features]
    assert info.feature_service == FEATURE_SERVICE
    assert list(info.feature_columns) == [*served, "amount"]
    assert info.label_column == "is_fraud"
    assert info.label_column not in info.feature_columns
    for frame in frames.values():
        assert set(info.feature_columns) <= set(frame.columns)
    # The user and merchant features are filled for most rows (the simulated users are active).
    assert frames["test"]["tx_count_7d"].notna().mean() > 0.9
    assert frames["test"]["merchant_tx_count_24h"].notna().mean() > 0.9


def test_validate_passes_on_the_built_dataset(dataset: Path) -> None:
    assert validate_step(dataset) == DatasetInfo.read(dataset).rows


def _no_fraud(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(is_fraud=0)


def _mostly_missing(frame: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    frame = frame.copy()
    frame.loc[rng.random(len(frame)) < 0.9, "amount_mean_24h"] = np.nan
    return frame


@pytest.mark.parametrize(
    ("split", "breakage", "expectation"),
    [
        ("train", _no_fraud, "expect_column_mean_to_be_between(is_fraud)"),
        ("validation", _mostly_missing, "expect_column_proportion_of_non_null_values_to_be_between(amount_mean_24h)"),
    ],
    ids=["train-without-fraud", "validation-feature-90pct-null"],
)
def test_validate_fails_a_broken_dataset_naming_split_and_expectation(
    dataset: Path,
    tmp_path: Path,
    split: str,
    breakage: Callable[[pd.DataFrame], pd.DataFrame],
    expectation: str,
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    path = broken / f"{split}.parquet"
    write_frame(breakage(read_frame(path)), path)

    with pytest.raises(DatasetValidationError) as caught:
        validate_step(broken)
    message = str(caught.value)
    assert f"({split}: {expectation})" in message, message
    for other in set(SPLITS) - {split}:
        assert f"{other}:" not in message, message


def test_challenger_beats_the_baseline_and_is_promoted_with_lineage_and_profile(
    settings: PipelineSettings, dataset: Path, good: Trained, tmp_path: Path
) -> None:
    registry_uri = str(tmp_path / "registry")
    evaluated = evaluate(settings, dataset, good, registry_uri, tmp_path / "run")
    report = evaluated.report
    info = DatasetInfo.read(dataset)

    assert report.champion is None
    assert report.champion_version is None
    assert report.test_rows == info.rows["test"]
    assert report.test_positives == info.positives["test"]
    assert report.challenger.pr_auc > report.baseline.pr_auc + 0.1, (report.challenger, report.baseline)
    assert report.challenger.roc_auc > 0.9
    decision = gate_step(settings, evaluated.directory)
    assert decision == decide(settings.card().promotion, report)
    assert decision.promote, decision.summary
    assert "no production champion yet" in decision.reasons
    page = evaluated.html.read_text()
    assert "Promote" in page
    assert "Training data recomputed" in page
    assert "90 of" in page
    assert "0 mismatches" in page

    version = register(settings, dataset, good, evaluated, registry_uri, decision, run_id="run-good")
    registry = ModelRegistry(registry_uri)
    production = registry.resolve(MODEL, "production")
    assert production is not None
    assert production.version == version == "v0001"
    move = registry.alias(MODEL, "production")
    assert move is not None
    assert move.reason == decision.summary

    lineage = production.lineage
    assert lineage.data_start == datetime.fromisoformat(info.window_start)
    assert lineage.data_end == datetime.fromisoformat(info.window_end)
    assert lineage.feature_service == FEATURE_SERVICE
    assert lineage.pipeline_run_id == "run-good"
    assert lineage.code_version == "test-sha"
    assert lineage.parent_version is None

    profile: dict[str, Any] = production.reference_profile
    assert set(profile) == {"features", "prediction"}
    assert set(profile["features"]) == set(info.feature_columns)
    for name, binned in profile["features"].items():
        assert sum(binned["shares"]) + binned["missing_share"] == pytest.approx(1.0), name
        assert binned["count"] == info.rows["train"], name
        assert 0 < len(binned["sample"]) <= 1000, name
    assert profile["features"]["tx_count_7d"]["missing_share"] < 0.1
    prediction = profile["prediction"]
    assert prediction["count"] == info.rows["test"]
    assert len(prediction["edges"]) >= 5
    assert prediction["missing_share"] == 0.0

    assert production.metrics["pr_auc"] == pytest.approx(report.challenger.pr_auc)
    assert production.metrics["expected_cost"] == pytest.approx(report.challenger.expected_cost)
    assert production.params["features"] == list(info.feature_columns)
    assert production.params["threshold"] == pytest.approx(report.challenger.threshold)
    assert production.params["card"] == "fraud@v1"
    stored = registry.local_path(MODEL, version) / MODEL_FILE
    assert stored.read_bytes() == (good.model / MODEL_FILE).read_bytes()
    assert [file.path.rsplit("/", 1)[-1] for file in production.files] == [EVALUATION_FILE]


@pytest.mark.parametrize("policy", ["shadow", "approval", "shadow+approval"])
def test_under_a_rollout_policy_a_challenger_that_passes_the_gate_is_a_candidate_not_promoted(
    settings: PipelineSettings,
    dataset: Path,
    good: Trained,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
) -> None:
    monkeypatch.setenv("BERG_ROLLOUT_POLICY", policy)
    registry_uri = str(tmp_path / "registry")
    evaluated = evaluate(settings, dataset, good, registry_uri, tmp_path / "run")
    decision = gate_step(settings, evaluated.directory)
    assert decision.promote, decision.summary

    version = register(settings, dataset, good, evaluated, registry_uri, decision, run_id="run-candidate")

    registry = ModelRegistry(registry_uri)
    assert registry.alias(MODEL, "production") is None
    history = registry.rollout_history(MODEL, version)
    assert [(event.action, event.actor, event.policy) for event in history] == [("candidate", "pipeline", policy)]
    assert history[0].reason == decision.summary
    assert history[0].details == {"run_id": "run-candidate"}


def test_a_challenger_the_gate_refuses_is_never_a_candidate(
    settings: PipelineSettings, dataset: Path, good: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERG_ROLLOUT_POLICY", "approval")
    registry_uri = str(tmp_path / "registry")
    evaluated = evaluate(settings, dataset, good, registry_uri, tmp_path / "run")
    refused = Decision(False, ("refused for the test",))

    version = register(settings, dataset, good, evaluated, registry_uri, refused, run_id="run-refused")

    registry = ModelRegistry(registry_uri)
    assert registry.rollout_history(MODEL, version) == []
    assert registry.alias(MODEL, "production") is None


def _shuffled_labels(dataset: Path, output: Path) -> Path:
    shutil.copytree(dataset, output)
    rng = np.random.default_rng(2026)
    for split in ("train", "validation"):
        path = output / f"{split}.parquet"
        frame = read_frame(path)
        frame["is_fraud"] = rng.permutation(frame["is_fraud"].to_numpy())
        write_frame(frame, path)
    return output


def test_a_challenger_trained_on_corrupted_labels_is_not_promoted_over_the_champion(
    settings: PipelineSettings, dataset: Path, good: Trained, tmp_path: Path
) -> None:
    registry_uri = str(tmp_path / "registry")
    first = evaluate(settings, dataset, good, registry_uri, tmp_path / "first")
    champion = register(
        settings, dataset, good, first, registry_uri, gate_step(settings, first.directory), run_id="run-good"
    )
    assert ModelRegistry(registry_uri).resolve(MODEL, "production").version == champion  # type: ignore[union-attr]

    corrupted = _shuffled_labels(dataset, tmp_path / "corrupted")
    bad = train(settings, corrupted, tmp_path / "bad")
    evaluated = evaluate(settings, corrupted, bad, registry_uri, tmp_path / "second")
    report = evaluated.report
    assert report.champion is not None
    assert report.champion_version == champion
    assert report.champion.pr_auc == pytest.approx(first.report.challenger.pr_auc), "same model, same test window"
    assert report.challenger.pr_auc < report.champion.pr_auc - 0.1, (report.challenger, report.champion)

    decision = gate_step(settings, evaluated.directory)
    assert not decision.promote
    failed = [reason for reason in decision.reasons if "is not at least" in reason and f"champion {champion}" in reason]
    assert len(failed) == 1, decision.reasons
    assert "Do not promote" in evaluated.html.read_text()

    rejected = register(settings, corrupted, bad, evaluated, registry_uri, decision, run_id="run-bad")
    registry = ModelRegistry(registry_uri)
    assert [v.version for v in registry.versions(MODEL)] == [champion, rejected]
    production = registry.resolve(MODEL, "production")
    assert production is not None
    assert production.version == champion, "a rejected challenger must not be promoted"
    record = registry.get(MODEL, rejected)
    assert record.lineage.parent_version == champion
    assert str(record.params["decision"]).startswith("do not promote")
    assert [move.version for move in registry.history(MODEL, "production")] == [champion]


def test_a_champion_whose_model_file_changed_after_registration_fails_the_evaluation(
    settings: PipelineSettings, dataset: Path, good: Trained, tmp_path: Path
) -> None:
    registry_uri = str(tmp_path / "registry")
    first = evaluate(settings, dataset, good, registry_uri, tmp_path / "first")
    champion = register(
        settings, dataset, good, first, registry_uri, gate_step(settings, first.directory), run_id="run-good"
    )
    registry = ModelRegistry(registry_uri)
    features = [str(name) for name in registry.get(MODEL, champion).params["features"]]  # type: ignore[union-attr]
    # A working booster over the same columns, written where the registered one was: it would load and score.
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(200, len(features)))
    impostor = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "nthread": 1},
        xgb.DMatrix(rows, label=rows[:, 0] > 0, feature_names=features),
        num_boost_round=3,
    )
    (registry.local_path(MODEL, champion) / MODEL_FILE).write_bytes(bytes(impostor.save_raw(raw_format="ubj")))

    with pytest.raises(IntegrityError, match=rf"model/model\.bst of model '{MODEL}' {champion} at .* is not the file"):
        evaluate(settings, dataset, good, registry_uri, tmp_path / "second")
    assert not (tmp_path / "second" / "evaluation" / EVALUATION_FILE).exists(), "no evaluation against an impostor"


def test_a_model_that_does_not_beat_the_baseline_by_the_card_margin_is_not_promoted(
    world: FeatureWorld, dataset: Path, good: Trained, tmp_path: Path
) -> None:
    card = yaml.safe_load(resources.files("berg_fraud").joinpath("card_v1.yaml").read_text(encoding="utf-8"))
    card["promotion"]["min_lift_over_baseline"] = 0.99
    card_path = tmp_path / "fraud_strict.yaml"
    card_path.write_text(yaml.safe_dump(card))
    strict = PipelineSettings(offline_root=world.offline_root, card_path=str(card_path), store=world.store_config)
    assert strict.card().promotion.min_lift_over_baseline == 0.99

    evaluated = evaluate(strict, dataset, good, str(tmp_path / "registry"), tmp_path / "run")
    decision = gate_step(strict, evaluated.directory)
    assert not decision.promote
    assert evaluated.report.challenger.pr_auc < evaluated.report.baseline.pr_auc + 0.99
    assert len(decision.reasons) == 2
    assert "is not at least 0.9900 better than the baseline's" in decision.reasons[0]
    assert decision.reasons[1] == "no production champion yet"
    assert "Do not promote" in evaluated.html.read_text()


def _plant_label_leak(world: FeatureWorld) -> None:
    """A user view whose row at each transaction's time minus one second holds that transaction's label.

    Registered and seeded as ``berg.features.store.prepare_store`` does for Berg's own views (the source
    folder gets its schema part first), filled through its push source, served by ``fraud_model_leaky``:
    ``fraud_model_v1``'s features plus the planted one.
    """
    definitions = build_definitions(FEATURES, world.offline_root)
    source = FileSource(
        name=f"{LEAK_VIEW}_source",
        path=f"{world.offline_root}/{LEAK_VIEW}",
        timestamp_field=EVENT_TIMESTAMP,
        created_timestamp_column=CREATED_TIMESTAMP,
    )
    push = PushSource(name=f"{LEAK_VIEW}_push", batch_source=source)
    view = FeatureView(
        name=LEAK_VIEW,
        entities=[next(entity for entity in definitions.entities if entity.name == "user")],
        ttl=timedelta(days=1),
        schema=[
            Field(name=USER_KEY, dtype=String),
            Field(name=LEAK_FEATURE, dtype=Int64),
            Field(name=LEAK_AS_OF, dtype=Float64),
        ],
        source=push,
        online=False,
        tags={AS_OF_TAG: LEAK_AS_OF},
    )
    by_name = {**definitions.views, ON_DEMAND_VIEW: definitions.on_demand}
    service = FeatureService(
        name=LEAKY_SERVICE,
        features=[
            *(
                by_name[projection.name][[feature.name for feature in projection.features]]
                for projection in definitions.service.feature_view_projections
            ),
            view[[LEAK_FEATURE]],
        ],
    )

    labelled = world.label_store.labelled_events(
        world.start - timedelta(days=1),
        world.end,
        timedelta(days=problem_card().target.label_horizon_days),
        fraud().label_join,
    )
    stamps = pd.to_datetime(labelled["event_time"], utc=True) - pd.Timedelta(seconds=1)
    rows = pd.DataFrame(
        {
            USER_KEY: labelled["user_id"].astype(str),
            LEAK_FEATURE: labelled["is_fraud"].astype("int64"),
            LEAK_AS_OF: stamps.astype("int64") / 1e9,
            EVENT_TIMESTAMP: stamps,
            CREATED_TIMESTAMP: stamps,
        }
    )
    schema = pa.schema(
        [
            pa.field(USER_KEY, pa.string()),
            pa.field(LEAK_FEATURE, pa.int64()),
            pa.field(LEAK_AS_OF, pa.float64()),
            pa.field(EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC")),
            pa.field(CREATED_TIMESTAMP, pa.timestamp("us", tz="UTC")),
        ]
    )
    write_part(pyarrow.fs.LocalFileSystem(), f"{world.offline_root}/{LEAK_VIEW}", schema.empty_table(), SCHEMA_PART)
    store = open_store(world.store_config)
    try:
        store.apply([push, view, service])
        store.push(push.name, rows, to=PushMode.OFFLINE)
    finally:
        close_store(store)


def _plant_label_leak_once(world: FeatureWorld) -> None:
    """:func:`_plant_label_leak`, unless an earlier test of the module's world already did."""
    store = open_store(world.store_config)
    try:
        planted = LEAKY_SERVICE in {service.name for service in store.list_feature_services()}
    finally:
        close_store(store)
    if not planted:
        _plant_label_leak(world)


def test_a_planted_label_leak_fails_the_dataset_naming_the_feature(
    settings: PipelineSettings, world: FeatureWorld, tmp_path: Path
) -> None:
    _plant_label_leak_once(world)
    # The planted view names its as-of column in its tag, so nothing but the label leak is found.

    with pytest.raises(LeakageError) as caught:
        build_dataset_step(settings, tmp_path / "leaky", window_days=WINDOW_DAYS, feature_service=LEAKY_SERVICE)
    message = str(caught.value)
    assert f"feature {LEAK_FEATURE!r} (view {LEAK_VIEW!r})" in message, message
    findings = caught.value.report.findings
    assert [finding.subject for finding in findings] == [LEAK_FEATURE], message
    assert findings[0].kind in {"label_function", "label_separable"}
    assert LEAK_VIEW in caught.value.report.views_checked
    assert not (tmp_path / "leaky" / "train.parquet").exists(), "nothing is written for a leaky frame"


def test_the_clean_world_recomputes_every_sampled_value_of_every_view(dataset: Path) -> None:
    recompute = DatasetInfo.read(dataset).recompute
    assert recompute["rows_sampled"] == 90
    assert recompute["mismatches"] == 0
    compared = recompute["values_compared"]
    assert set(compared) == {USER_VIEW, MERCHANT_VIEW, ON_DEMAND_VIEW}
    # Every sampled row, every column of the view (the user view's as-of column too).
    assert compared[USER_VIEW] == 90 * len(FEATURES.streaming[0].features)
    assert compared[MERCHANT_VIEW] == 90 * len(FEATURES.snapshots[0].model_features)
    assert compared[ON_DEMAND_VIEW] == 90 * len(FEATURES.on_demand_features)
    assert recompute["trusted"] == {}


Leak = Callable[[Callable[..., pd.DataFrame], tuple[Any, ...], dict[str, Any], FeatureWorld], pd.DataFrame]


def test_a_view_the_use_case_neither_declares_nor_trusts_is_refused_as_unproven(
    settings: PipelineSettings, world: FeatureWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planted view again, its label leak unseen (the as-of and label tests skipped): with no declared producer
    the recompute cannot prove it, and says so; trusted by the use case, it passes and the report lists why."""
    _plant_label_leak_once(world)
    monkeypatch.setattr(dataset_runtime, "check_leakage", lambda *_args, **_kwargs: None)
    with pytest.raises(UnprovenViewError) as caught:
        build_dataset_step(settings, tmp_path / "unproven", window_days=WINDOW_DAYS, feature_service=LEAKY_SERVICE)
    assert f"view {LEAK_VIEW!r} is not declared" in str(caught.value)
    assert not (tmp_path / "unproven" / "train.parquet").exists()

    use_case = fraud()
    reason = "written by the test's own job, reviewed by hand"
    window = DeclaredWindow("labels", ARRIVAL_TIME, timedelta(days=30))
    trusting = dataclasses.replace(
        use_case,
        features=dataclasses.replace(use_case.features, trusted=(TrustedView(LEAK_VIEW, reason, (window,)),)),
    )
    monkeypatch.setattr(PipelineSettings, "resolve_use_case", lambda _self: trusting)
    build_dataset_step(settings, tmp_path / "trusted", window_days=WINDOW_DAYS, feature_service=LEAKY_SERVICE)
    assert DatasetInfo.read(tmp_path / "trusted").recompute["trusted"] == {LEAK_VIEW: reason}


def _joined_at_the_prediction_time(
    build: Callable[..., pd.DataFrame], args: tuple[Any, ...], kwargs: dict[str, Any], _: FeatureWorld
) -> pd.DataFrame:
    """The join made at the prediction time, not just before it: each row includes the transaction it predicts."""
    return build(*args, **{**kwargs, "strictly_before": False})


def _count_window_reaching_forward(
    build: Callable[..., pd.DataFrame], args: tuple[Any, ...], kwargs: dict[str, Any], world: FeatureWorld
) -> pd.DataFrame:
    """``tx_count_24h`` over the user's transactions from 24 hours before to 24 hours after the prediction."""
    frame = build(*args, **kwargs)
    scored = world.label_store.read(world.label_store.scored, columns=[USER_KEY])
    day = 86_400_000_000
    times = {user: to_micros(group["event_time"]) for user, group in scored.groupby(USER_KEY)}
    at_us = to_micros(frame[EVENT_TIMESTAMP])
    counts = [
        int(np.searchsorted(times[user], at + day) - np.searchsorted(times[user], at - day, side="right"))
        for user, at in zip(frame[USER_KEY], at_us, strict=True)
    ]
    frame["tx_count_24h"] = pd.array(counts, dtype="Int64")
    return frame


def _mean_from_the_next_row(
    build: Callable[..., pd.DataFrame], args: tuple[Any, ...], kwargs: dict[str, Any], _: FeatureWorld
) -> pd.DataFrame:
    """``amount_mean_7d`` taken from the user's next row (an off-by-one in a shift)."""
    frame = build(*args, **kwargs)
    order = frame.sort_values([EVENT_TIMESTAMP, "event_id"]).index
    shifted = frame.loc[order].groupby(USER_KEY)["amount_mean_7d"].shift(-1)
    frame["amount_mean_7d"] = shifted.reindex(frame.index)
    return frame


def _snapshot_counting_labels_after_it(
    build: Callable[..., pd.DataFrame], args: tuple[Any, ...], kwargs: dict[str, Any], world: FeatureWorld
) -> pd.DataFrame:
    """``merchant_labels_known_30d`` counting every label its transactions ever got, arrived after the snapshot too."""
    frame = build(*args, **kwargs)
    store = world.label_store
    scored = store.read(store.scored, columns=[MERCHANT_KEY])
    labelled = set(store.read(store.labels, columns=["transaction_event_id"])["transaction_event_id"])
    history = {
        merchant: (to_micros(group["event_time"]), group["event_id"].isin(labelled).to_numpy())
        for merchant, group in scored.groupby(MERCHANT_KEY)
    }
    window = 30 * 86_400_000_000
    counts: list[int | None] = []
    for merchant, snapshot in zip(frame[MERCHANT_KEY], frame[MERCHANT_AS_OF], strict=True):
        if pd.isna(snapshot):
            counts.append(None)
            continue
        at = round(float(snapshot) * 1e6)
        times, ever = history[merchant]
        inside = (times > at - window) & (times <= at)
        counts.append(int(ever[inside].sum()))
    frame["merchant_labels_known_30d"] = pd.array(counts, dtype="Int64")
    return frame


def _on_demand_reading_the_label(
    build: Callable[..., pd.DataFrame], args: tuple[Any, ...], kwargs: dict[str, Any], _: FeatureWorld
) -> pd.DataFrame:
    """``amount_to_user_mean_7d`` whose function also read the label (the entity frame carries it in training)."""
    frame = build(*args, **kwargs)
    frame["amount_to_user_mean_7d"] = frame["amount_to_user_mean_7d"] * (1 + frame["is_fraud"])
    return frame


@pytest.mark.parametrize(
    ("leak", "view", "feature", "sample"),
    [
        (_joined_at_the_prediction_time, USER_VIEW, "tx_count_1h", 90),
        (_count_window_reaching_forward, USER_VIEW, "tx_count_24h", 90),
        (_mean_from_the_next_row, USER_VIEW, "amount_mean_7d", 90),
        (_snapshot_counting_labels_after_it, MERCHANT_VIEW, "merchant_labels_known_30d", 90),
        # Only fraud rows leak (a few percent): this samples enough rows to hold some, whatever the share.
        (_on_demand_reading_the_label, ON_DEMAND_VIEW, "amount_to_user_mean_7d", 2000),
    ],
    ids=[
        "joined-at-prediction-time",
        "window-reaching-forward",
        "next-row-value",
        "snapshot-counts-labels-after-it",
        "on-demand-reads-label",
    ],
)
def test_a_planted_leak_fails_the_recompute_check_naming_view_and_feature(
    settings: PipelineSettings,
    world: FeatureWorld,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    leak: Leak,
    view: str,
    feature: str,
    sample: int,
) -> None:
    # What build_training_frame returns is what a careless producer would have pushed; the check only reads it.
    build = dataset_runtime.build_training_frame

    def leaky(*args: Any, **kwargs: Any) -> pd.DataFrame:
        return leak(build, args, kwargs, world)

    monkeypatch.setattr(dataset_runtime, "build_training_frame", leaky)
    with pytest.raises(RecomputeError) as caught:
        build_dataset_step(
            dataclasses.replace(settings, recompute_sample=sample),
            tmp_path / "leaky",
            window_days=WINDOW_DAYS,
            feature_service=FEATURE_SERVICE,
        )
    message = str(caught.value)
    assert f"view {view!r}, feature {feature!r}" in message, message
    assert feature in {finding.subject for finding in caught.value.report.findings}
    assert not (tmp_path / "leaky" / "train.parquet").exists(), "nothing is written for a leaky frame"


def test_distributed_training_on_dask_matches_the_single_process_model(
    dataset: Path, good: Trained, tmp_path: Path
) -> None:
    import distributed

    local_cluster: Any = distributed.LocalCluster  # untyped
    with local_cluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        metrics = train_step(dataset, tmp_path / "model", "{}", cluster.scheduler_address)

    info = DatasetInfo.read(dataset)
    test = read_frame(dataset / "test.parquet")
    y = test[info.label_column].to_numpy()

    def test_pr_auc(model_dir: Path) -> float:
        features = json.loads((model_dir / "train.json").read_text())["features"]
        assert features == list(info.feature_columns)
        return average_precision(y, booster_scorer(load_booster(model_dir / MODEL_FILE), features)(test))

    single, on_dask = test_pr_auc(good.model), test_pr_auc(tmp_path / "model")
    assert metrics["best_iteration"] >= 1
    assert metrics["scale_pos_weight"] == good.metrics["scale_pos_weight"]
    assert abs(on_dask - single) <= 0.05, (on_dask, single)


def test_the_label_complete_window_waits_for_labels_that_lag_behind(tmp_path: Path) -> None:
    """Labels come on their own topic; a window ends a horizon before the older of both streams' newest."""
    from datetime import UTC, datetime, timedelta

    from berg_pipelines.runtime.dataset import label_complete_window
    from tests.fraud_schema import fraud_label_store

    card = problem_card()
    horizon = timedelta(days=card.target.label_horizon_days)
    store = fraud_label_store(str(tmp_path / "labels"))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    store.append(
        "transactions",
        [
            {
                "event_id": f"t{day}",
                "event_time": t0 + timedelta(days=day),
                "user_id": "u",
                "merchant_id": "m",
                "amount": 10.0,
                "currency": "EUR",
                "merchant_category": "5411",
                "channel": "card_present",
                "country": "DE",
                "source_partition": 0,
                "source_offset": day,
            }
            for day in range(60)
        ],
    )
    newest_transaction = t0 + timedelta(days=59)
    assert label_complete_window(store, card, 7).end == newest_transaction - horizon
    newest_label = t0 + timedelta(days=50)
    store.append(
        "labels",
        [
            {
                "event_id": "l1",
                "event_time": newest_label,
                "transaction_event_id": "t40",
                "user_id": "u",
                "is_fraud": True,
                "source": "chargeback",
            }
        ],
    )
    window = label_complete_window(store, card, 7)
    assert window.end == newest_label - horizon
    assert window.start == window.end - timedelta(days=7)


PARTIAL_LEAK = "planted_partial_leak"


def _partial_leak(dataset: Path, output: Path, *, leak_share: float = 0.65) -> Path:
    """``dataset`` plus a feature equal to the label (with noise) on ``leak_share`` of the rows, noise elsewhere.

    It models a leak the recompute check cannot see: a field in the source data that was filled in after the
    event for some rows only (or a view the use case marks trusted), so its training values are what serving
    would have read, and its AUC alone (about 1 - (1 - leak_share)**2 / 2) stays under the failing 0.99.
    """
    shutil.copytree(dataset, output)
    rng = np.random.default_rng(7)
    for split in SPLITS:
        path = output / f"{split}.parquet"
        frame = read_frame(path)
        label = frame["is_fraud"].to_numpy().astype(float)
        leaked = rng.random(len(frame)) < leak_share
        frame[PARTIAL_LEAK] = np.where(leaked, label + rng.normal(0, 0.1, len(frame)), rng.random(len(frame)))
        write_frame(frame, path)
    # A field of the source data is the same whenever the store is read: the frozen test rows carry the test's.
    frozen = DatasetInfo.read(output).frozen_test
    if frozen:
        test = read_frame(output / "test.parquet")
        rows = read_frame(output / frozen["file"])
        rows[PARTIAL_LEAK] = test.set_index("event_id").loc[rows["event_id"], PARTIAL_LEAK].to_numpy()
        write_frame(rows, output / frozen["file"])
    raw = json.loads((output / "info.json").read_text())
    raw["feature_columns"] = [*raw["feature_columns"], PARTIAL_LEAK]
    (output / "info.json").write_text(json.dumps(raw, indent=2))
    return output


def test_a_planted_partial_leak_is_listed_for_review_in_the_evaluation_and_its_report(
    settings: PipelineSettings, dataset: Path, good: Trained, tmp_path: Path
) -> None:
    registry_uri = str(tmp_path / "registry")
    clean = evaluate(settings, dataset, good, registry_uri, tmp_path / "clean")
    # No clean feature reaches 0.90 alone (the strongest: about 0.84), and there is no champion yet.
    assert clean.report.review == []
    assert "None found" in clean.html.read_text()
    register(settings, dataset, good, clean, registry_uri, gate_step(settings, clean.directory), run_id="run-good")

    leaky = _partial_leak(dataset, tmp_path / "leaky")
    train_frame = read_frame(leaky / "train.parquet")
    auc = roc_auc(train_frame["is_fraud"].to_numpy(), train_frame[PARTIAL_LEAK].to_numpy())
    assert 0.90 <= auc < 0.99, f"the plant is a partial leak: AUC {auc:.4f} alone, under the failing 0.99"

    evaluated = evaluate(settings, leaky, train(settings, leaky, tmp_path / "trained"), registry_uri, tmp_path / "run")
    assert evaluated.report.champion_version is not None, "compared with the clean champion"
    written = EvaluationReport.read(evaluated.directory / EVALUATION_FILE).review
    assert written == evaluated.report.review
    listed = {(item["feature"], item["kind"]): item for item in written}
    assert listed[(PARTIAL_LEAK, "separable")]["value"] == pytest.approx(auc)
    # The champion never had the feature: it counts from 0, and the challenger leans on it.
    assert listed[(PARTIAL_LEAK, "importance_jump")]["value"] >= 0.10

    page = evaluated.html.read_text()
    assert "Features to review" in page
    assert PARTIAL_LEAK in page
    assert f"{auc:.4f}" in page

    # A report written before the review list existed still reads, with none.
    raw = json.loads((evaluated.directory / EVALUATION_FILE).read_text())
    del raw["review"]
    (tmp_path / "old.json").write_text(json.dumps(raw))
    assert EvaluationReport.read(tmp_path / "old.json").review == []


def test_the_frozen_test_rows_are_the_test_rows_with_every_stored_view_joined_before_the_test_window(
    dataset: Path, world: FeatureWorld
) -> None:
    info = DatasetInfo.read(dataset)
    test = read_frame(dataset / "test.parquet")
    frozen = read_frame(dataset / info.frozen_test["file"])
    test_from = pd.Timestamp(info.split_times[1])
    assert info.frozen_test == {
        "file": "test_frozen.parquet",
        "frozen_at": test_from.isoformat(),
        "rows": len(test),
        "of_split": "test",
    }
    assert "test_frozen" not in SPLITS

    # The same rows in the same order: ids, times, labels, amounts and the request's own event time.
    assert list(frozen.columns) == list(test.columns)
    for column in ("event_id", EVENT_TIMESTAMP, REQUEST_EVENT_UNIX, info.label_column, info.amount_column):
        pd.testing.assert_series_equal(frozen[column], test[column], check_names=True)
    assert (frozen["hour_of_day"] == test["hour_of_day"]).all(), "computed from the request, not frozen"

    store = open_store(world.store_config)
    try:
        layout = describe_features(store, FEATURE_SERVICE)
    finally:
        close_store(store)
    frozen_at = test_from.timestamp()
    stored = {view: columns for view, columns in layout.as_of.items() if view != ON_DEMAND_VIEW}
    assert set(stored) == {USER_VIEW, MERCHANT_VIEW}
    for view, as_of_columns in stored.items():
        for as_of in as_of_columns:
            stamps = frozen[as_of].dropna()
            assert len(stamps) > 0.5 * len(frozen), (view, as_of)
            assert (stamps < frozen_at).all(), f"{view}: a row stamped in the test window reached the frozen copy"
            assert (test[as_of].dropna() >= frozen_at).mean() > 0.5, f"{view}: the test split saw the window"
        features = [column for column, of in layout.features.items() if of == view]
        changed = (frozen[features].astype("float64") != test[features].astype("float64")).any(axis=1)
        assert changed.mean() > 0.5, f"{view}: the frozen copy was not rejoined ({changed.mean():.1%} rows differ)"


def test_the_clean_challenger_s_time_shifted_gap_is_reported_and_not_flagged(
    settings: PipelineSettings, dataset: Path, good: Trained, tmp_path: Path
) -> None:
    evaluated = evaluate(settings, dataset, good, str(tmp_path / "registry"), tmp_path / "run")
    report = evaluated.report
    holdout = report.frozen_holdout
    assert holdout is not None
    assert holdout["test"]["pr_auc"] == report.challenger.pr_auc
    assert holdout["test"]["expected_cost"] == report.challenger.expected_cost
    assert holdout["threshold"] == report.challenger.threshold == holdout["frozen_evaluation"]["threshold"]
    assert holdout["rows"] == report.test_rows
    assert holdout["frozen_at"] == DatasetInfo.read(dataset).split_times[1]
    # Staler features cost an honest model something, not what a leak costs (GAP_LIMIT's numbers: 0.34 here).
    assert 0.05 < holdout["pr_auc_gap"] <= holdout["limit"], holdout
    assert not holdout["flagged"]
    assert EvaluationReport.read(evaluated.directory / EVALUATION_FILE).frozen_holdout == holdout
    page = evaluated.html.read_text()
    assert "Time-shifted holdout" in page
    assert "Not flagged" in page


def test_a_label_planted_in_a_view_opens_a_flagged_time_shifted_gap(
    settings: PipelineSettings, world: FeatureWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The label written back into a user view a second before each transaction (``_plant_label_leak``), with the
    leakage and recompute checks bypassed (they fail this dataset): the test split holds each row's own label, the
    frozen copy only labels from before the test window."""
    _plant_label_leak_once(world)
    monkeypatch.setattr(dataset_runtime, "check_leakage", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(
        dataset_runtime,
        "check_recompute",
        lambda frame, *_args, **_kwargs: RecomputeResult(rows=len(frame), rows_sampled=0, seed=0, compared={}),
    )
    leaky = tmp_path / "leaky"
    build_dataset_step(settings, leaky, window_days=WINDOW_DAYS, feature_service=LEAKY_SERVICE)
    assert LEAK_FEATURE in DatasetInfo.read(leaky).feature_columns

    evaluated = evaluate(settings, leaky, train(settings, leaky, tmp_path), str(tmp_path / "registry"), tmp_path)
    holdout = evaluated.report.frozen_holdout
    assert holdout is not None
    assert holdout["test"]["pr_auc"] > 0.95, holdout
    assert holdout["pr_auc_gap"] > holdout["limit"], holdout
    assert holdout["flagged"]
    assert holdout["frozen"]["expected_cost"] > holdout["test"]["expected_cost"]
    assert "<strong>Flagged:</strong>" in evaluated.html.read_text()
