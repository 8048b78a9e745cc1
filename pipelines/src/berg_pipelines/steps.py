"""One function per pipeline step, over plain paths and values: what each KFP component calls.

The components (``components.py``) are thin: they hand their artifact paths and
parameters to these functions and log what comes back into KFP's metric
artifacts. Everything here runs (and is tested) without KFP.

Each step runs in a fresh process, and Feast, Great Expectations, scikit-learn and
XGBoost each take seconds to import here: so a step imports only what it uses,
inside its function.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berg.features.recompute import DEFAULT_SAMPLE_SIZE
from berg.problem.card import ProblemCard, RolloutSpec, load_problem_card
from berg.settings import RolloutOverrides, UseCaseSelection, load_settings
from berg.usecase import UseCase, resolve_use_case
from berg_pipelines.runtime.frames import DatasetInfo, read_frame

if TYPE_CHECKING:
    import xgboost as xgb

    from berg.features.label_store import LabelStore
    from berg.features.store_config import FeatureStoreConfig
    from berg_pipelines.runtime.baseline import BaselineModel
    from berg_pipelines.runtime.evaluate import EvaluationReport
    from berg_pipelines.runtime.gate import Decision
    from berg_pipelines.runtime.validate import DatasetRules

__all__ = [
    "PipelineSettings",
    "baseline_step",
    "build_dataset_step",
    "challenger_roc",
    "evaluate_step",
    "gate_step",
    "register_step",
    "train_step",
    "validate_step",
]

log = logging.getLogger(__name__)

MODEL_FILE = "model.bst"
BASELINE_FILE = "baseline.json"
EVALUATION_FILE = "evaluation.json"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class PipelineSettings:
    """Where the pipeline reads and writes; pipeline parameters (empty string: the default)."""

    offline_root: str
    feast_profile: str = "feature_store.yaml"
    card_path: str = ""
    use_case: str = ""
    """The use case's name; empty: ``BERG_USE_CASE``, else the only one installed (:meth:`resolve_use_case`)."""
    store: FeatureStoreConfig | None = None
    """The feature store to read; None (a step's process): from its environment, see :meth:`feature_store`."""
    recompute_sample: int = DEFAULT_SAMPLE_SIZE
    """Training rows the dataset step recomputes from the label store (``berg.features.recompute``: 90 catches a
    leak touching 5% of rows with 99% probability)."""
    rollout_policy: str = ""
    """The run's rollout policy (``offline``, ``shadow+approval``, ...); empty: ``BERG_ROLLOUT_POLICY``, else the
    card's."""

    def resolve_use_case(self) -> UseCase:
        """The use case named ``use_case``; empty: the step process's ``BERG_USE_CASE``, else the only one installed.

        The components pass no name: a step runs in the environment of whoever launched the run (the
        controller's, which names the stack's use case), and ``BERG_USE_CASE`` is one name for every process.
        """
        return resolve_use_case(self.use_case or load_settings(UseCaseSelection).use_case)

    def card(self) -> ProblemCard:
        """The card at ``card_path``, else the use case's own."""
        if self.card_path:
            return load_problem_card(Path(self.card_path))
        return self.resolve_use_case().card

    def rollout(self) -> RolloutSpec:
        """The card's rollout with this step process's ``BERG_ROLLOUT_*`` overrides (the launcher's environment).

        Raises:
            SettingsError: a ``BERG_ROLLOUT_*`` variable is invalid (the message names it).
        """
        rollout = load_settings(RolloutOverrides).apply(self.card().rollout)
        if self.rollout_policy:
            chosen = RolloutSpec.model_validate({"policy": self.rollout_policy})
            return rollout.model_copy(update={"policy": chosen.policy})
        return rollout

    def labels(self) -> LabelStore:
        from berg.features.label_store import LabelStore

        use_case = self.resolve_use_case()
        return LabelStore(f"{self.offline_root.rstrip('/')}/label_store", use_case.scored, use_case.labels)

    def feature_store(self) -> FeatureStoreConfig:
        """The store to read: ``feast_profile`` with the variables of this step's process (``BERG_STATE_DIR``,
        ``BERG_FEAST_*``, ``BERG_FEATURE_REPO``: the pod's, or those `berg pipeline run` hands kfp.local's steps).

        A step is a process of its own: this is where it starts, so its settings are read here.
        """
        if self.store is not None:
            return self.store
        from berg.features.settings import FeatureStoreSettings
        from berg.settings import load_settings

        return load_settings(FeatureStoreSettings).store_config(self.feast_profile)


def build_dataset_step(
    settings: PipelineSettings, output: Path, *, window_days: float, feature_service: str, window_end: str = ""
) -> DatasetInfo:
    from berg.features.store import close_store, open_store
    from berg_pipelines.runtime.dataset import DatasetWindow, build_dataset, label_complete_window

    card = settings.card()
    use_case = settings.resolve_use_case()
    labels = settings.labels()
    if window_end:
        end = datetime.fromisoformat(window_end)
        window = DatasetWindow(start=end - timedelta(days=window_days), end=end)
    else:
        window = label_complete_window(labels, card, window_days)
    store = open_store(settings.feature_store())
    try:
        return build_dataset(
            store,
            labels,
            card,
            use_case,
            window,
            output,
            feature_service=feature_service or use_case.features.service,
            recompute_sample=settings.recompute_sample,
        )
    finally:
        close_store(store)


def _splits(dataset: Path) -> dict[str, Any]:
    return {name: read_frame(dataset / f"{name}.parquet") for name in SPLITS}


def validate_step(dataset: Path, rules: DatasetRules | None = None) -> dict[str, int]:
    from berg_pipelines.runtime.validate import DatasetRules, validate_training_frame

    info = DatasetInfo.read(dataset)
    validate_training_frame(
        _splits(dataset), info.label_column, info.amount_column, info.feature_columns, rules or DatasetRules()
    )
    return dict(info.rows)


def train_step(dataset: Path, model_dir: Path, params_json: str, dask_scheduler: str = "") -> dict[str, float]:
    from berg_pipelines.runtime.train import TrainParams, train_model

    info = DatasetInfo.read(dataset)
    frames = _splits(dataset)
    params = TrainParams(**json.loads(params_json or "{}"))
    result = train_model(
        frames["train"],
        frames["validation"],
        info.feature_columns,
        info.label_column,
        params,
        dask_scheduler=dask_scheduler or None,
    )
    from berg_pipelines.runtime.model_io import save_booster

    model_dir.mkdir(parents=True, exist_ok=True)
    save_booster(result.booster, model_dir / MODEL_FILE)
    (model_dir / "train.json").write_text(
        json.dumps({"features": list(info.feature_columns), "params": result.params, "best": result.best_iteration})
    )
    return {
        "best_iteration": float(result.best_iteration),
        "scale_pos_weight": result.scale_pos_weight,
        "validation_pr_auc": result.validation_aucpr,
    }


def baseline_step(settings: PipelineSettings, dataset: Path, model_dir: Path) -> BaselineModel:
    from berg_pipelines.runtime.baseline import train_baseline

    info = DatasetInfo.read(dataset)
    baseline = train_baseline(settings.card().baseline, read_frame(dataset / "train.parquet"), info.label_column)
    model_dir.mkdir(parents=True, exist_ok=True)
    baseline.save(model_dir / BASELINE_FILE)
    return baseline


def _challenger(model_dir: Path) -> tuple[xgb.Booster, list[str]]:
    from berg_pipelines.runtime.model_io import load_booster

    booster = load_booster(model_dir / MODEL_FILE)
    features = json.loads((model_dir / "train.json").read_text())["features"]
    return booster, list(features)


def evaluate_step(
    settings: PipelineSettings,
    dataset: Path,
    model_dir: Path,
    baseline_dir: Path,
    registry_uri: str,
    model_name: str,
    evaluation_dir: Path,
    report_path: Path,
) -> EvaluationReport:
    """Challenger, baseline and the registry's production champion on the test window; the HTML report.

    Raises:
        IntegrityError: the champion's model file is not the one registered (changed after registration): the
            step fails rather than judge the challenger against a model nobody registered.
    """
    from berg.registry.registry import ModelRegistry
    from berg_pipelines.runtime.baseline import BaselineModel
    from berg_pipelines.runtime.evaluate import EvaluationReport, booster_scorer, evaluate_model
    from berg_pipelines.runtime.gate import decide
    from berg_pipelines.runtime.model_io import booster_from_bytes
    from berg_pipelines.runtime.report import render_report
    from berg_pipelines.runtime.review import features_to_review

    card = settings.card()
    info = DatasetInfo.read(dataset)
    frames = _splits(dataset)
    validation, test = frames["validation"], frames["test"]
    booster, features = _challenger(model_dir)
    challenger = booster_scorer(booster, features)
    baseline = BaselineModel.load(baseline_dir / BASELINE_FILE)
    amount = info.amount_column
    report = EvaluationReport(
        card=card.ref,
        test_rows=len(test),
        test_positives=int(test[info.label_column].sum()),
        challenger=evaluate_model("challenger", challenger, card, validation, test, amount),
        baseline=evaluate_model(f"baseline ({baseline.kind})", baseline.predict, card, validation, test, amount),
    )
    scores = {"challenger": challenger(test), "baseline": baseline.predict(test)}
    registry = ModelRegistry(registry_uri) if registry_uri else None
    champion = registry.resolve(model_name, "production") if registry is not None else None
    champion_booster: xgb.Booster | None = None
    if registry is not None and champion is not None:
        champion_features = [str(name) for name in champion.params.get("features", [])]  # type: ignore[union-attr]
        missing = [name for name in champion_features if name not in test.columns]
        if missing:
            report.notes.append(
                f"champion {champion.version} needs features this dataset lacks ({missing}); it is not compared"
            )
        else:
            champion_booster = booster_from_bytes(registry.read_model_file(model_name, champion.version))
            champion_scorer = booster_scorer(champion_booster, champion_features)
            stored = champion.params.get("threshold")
            report.champion = evaluate_model(
                f"champion {champion.version}",
                champion_scorer,
                card,
                validation,
                test,
                amount,
                # At the threshold it serves with; re-chosen only for a champion registered without one.
                threshold=float(stored) if isinstance(stored, int | float) else None,
            )
            report.champion_version = champion.version
            scores[f"champion {champion.version}"] = champion_scorer(test)
    # Features for a person to review (too good alone, or jumped in importance since the champion).
    report.review = features_to_review(
        frames["train"], info.label_column, info.feature_columns, booster, champion_booster
    )
    if info.frozen_test:
        from berg_pipelines.runtime.holdout import frozen_holdout

        frozen = read_frame(dataset / info.frozen_test["file"])
        report.frozen_holdout = frozen_holdout(
            "challenger", challenger, card, report.challenger, frozen, amount, frozen_at=info.frozen_test["frozen_at"]
        )
    evaluation_dir.mkdir(parents=True, exist_ok=True)
    report.write(evaluation_dir / EVALUATION_FILE)
    decision = decide(card.promotion, report)
    report_path.write_text(
        render_report(
            card,
            report,
            decision,
            test[info.label_column].to_numpy(),
            scores,
            info.recompute,
            review=report.review,
            frozen_holdout=report.frozen_holdout,
        )
    )
    return report


def challenger_roc(dataset: Path, model_dir: Path) -> tuple[list[float], list[float], list[float]]:
    """The challenger's ROC curve on the test window, at most ~200 points (for the Kubeflow UI)."""
    from berg.problem.metrics import roc_curve
    from berg_pipelines.runtime.evaluate import booster_scorer

    info = DatasetInfo.read(dataset)
    test = read_frame(dataset / "test.parquet")
    booster, features = _challenger(model_dir)
    fpr, tpr, thresholds = roc_curve(test[info.label_column].to_numpy(), booster_scorer(booster, features)(test))
    step = max(1, len(fpr) // 200)
    keep = sorted({*range(0, len(fpr), step), len(fpr) - 1})
    return [fpr[i] for i in keep], [tpr[i] for i in keep], [thresholds[i] for i in keep]


def gate_step(settings: PipelineSettings, evaluation_dir: Path) -> Decision:
    from berg_pipelines.runtime.evaluate import EvaluationReport
    from berg_pipelines.runtime.gate import decide

    return decide(settings.card().promotion, EvaluationReport.read(evaluation_dir / EVALUATION_FILE))


def register_step(
    settings: PipelineSettings,
    dataset: Path,
    model_dir: Path,
    evaluation_dir: Path,
    registry_uri: str,
    model_name: str,
    *,
    run_id: str,
    code_version: str,
    promote: bool,
    reason: str,
) -> str:
    """Register the challenger with its reference profile, metrics and lineage; move ``production`` if promoted."""
    from berg.registry.metadata import Lineage, VersionMetadata
    from berg.registry.registry import ModelRegistry
    from berg_pipelines.runtime.evaluate import EvaluationReport, booster_scorer
    from berg_pipelines.runtime.profile import reference_profile

    info = DatasetInfo.read(dataset)
    frames = _splits(dataset)
    booster, features = _challenger(model_dir)
    report = EvaluationReport.read(evaluation_dir / EVALUATION_FILE)
    profile = reference_profile(
        frames["train"],
        features,
        booster_scorer(booster, features)(frames["test"]),
        watch_only=settings.resolve_use_case().features.watch_only(),
    )
    metrics = {
        key: float(value)
        for key, value in asdict(report.challenger).items()
        if isinstance(value, float) and math.isfinite(value)
    }
    # What it was compared with, for `berg models show` and the controller's history.
    for prefix, compared in (("baseline", report.baseline), ("champion", report.champion)):
        if compared is not None:
            for key in ("pr_auc", "expected_cost"):
                value = compared.metric(key)
                if math.isfinite(value):
                    metrics[f"{prefix}_{key}"] = float(value)
    registry = ModelRegistry(registry_uri)
    champion = registry.resolve(model_name, "production")
    metadata = VersionMetadata(
        metrics=metrics,
        reference_profile=profile,
        lineage=Lineage(
            data_start=datetime.fromisoformat(info.window_start),
            data_end=datetime.fromisoformat(info.window_end),
            feature_service=info.feature_service,
            pipeline_run_id=run_id or "local",
            code_version=code_version or _code_version(),
            parent_version=champion.version if champion else None,
        ),
        params={
            "features": list(features),
            "card": settings.card().ref,
            "threshold": report.challenger.threshold,
            "decision": reason,
        },
    )
    version = registry.register(
        model_name, {MODEL_FILE: model_dir / MODEL_FILE, EVALUATION_FILE: evaluation_dir / EVALUATION_FILE}, metadata
    )
    if promote:
        rollout = settings.rollout()
        if rollout.policy:
            # The gate is the first stage only: the controller takes it through the others.
            registry.record_rollout(
                model_name,
                version.version,
                "candidate",
                actor="pipeline",
                reason=reason,
                policy=rollout.policy_name,
                details={"run_id": run_id or "local"},
            )
            log.info(
                "%s %s passed the gate; a candidate under the %s policy: %s",
                model_name,
                version.version,
                rollout.policy_name,
                reason,
            )
        else:
            registry.promote(model_name, version.version, "production", reason=reason)
            log.info("promoted %s %s to production: %s", model_name, version.version, reason)
    return version.version


def _code_version() -> str:
    return os.environ.get("BERG_CODE_VERSION", "dev")
