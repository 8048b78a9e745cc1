"""The pipeline's components: thin typed specs over :mod:`berg_pipelines.steps`.

In the style of Google Cloud Pipeline Components: each component's body imports
one step function and hands it its artifact paths and parameters, then logs what
comes back into KFP's ``Metrics`` / ``ClassificationMetrics`` / ``HTML`` artifacts.
All run in one training image (``TRAINING_IMAGE``, built from ``pipelines/Dockerfile``)
with Berg installed; nothing is pip-installed at run time (``install_kfp_package=False``,
no ``packages_to_install``). Imports are inside the bodies because KFP ships each
body as source text.
"""

# No `from __future__ import annotations`: KFP reads these signatures' types at compile time.
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

__all__ = [
    "TRAINING_IMAGE",
    "build_dataset",
    "evaluate",
    "gate",
    "register",
    "train",
    "train_baseline",
    "validate_dataset",
]

TRAINING_IMAGE = "ghcr.io/berg-ml/berg-training:0.1.0"


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def build_dataset(
    offline_root: str,
    feast_profile: str,
    card_path: str,
    window_days: float,
    window_end: str,
    feature_service: str,
    recompute_sample: int,
    dataset: Output[Dataset],
    summary: Output[Metrics],
) -> None:
    """Labelled events in a window -> Feast point-in-time features -> train/validation/test; leakage fails."""
    from pathlib import Path

    from berg_pipelines.steps import PipelineSettings, build_dataset_step

    info = build_dataset_step(
        PipelineSettings(offline_root, feast_profile, card_path, recompute_sample=recompute_sample),
        Path(dataset.path),
        window_days=window_days,
        feature_service=feature_service,
        window_end=window_end,
    )
    for split, rows in info.rows.items():
        summary.log_metric(f"{split}_rows", rows)
        summary.log_metric(f"{split}_positives", info.positives[split])
    summary.log_metric("recompute_rows_sampled", info.recompute["rows_sampled"])
    summary.log_metric("recompute_values_compared", sum(info.recompute["values_compared"].values()))
    summary.log_metric("recompute_mismatches", info.recompute["mismatches"])
    dataset.metadata.update({"window_start": info.window_start, "window_end": info.window_end})


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def validate_dataset(dataset: Input[Dataset]) -> int:
    """The training frame's Great Expectations suite; a broken dataset fails the run. Returns the training rows."""
    from pathlib import Path

    from berg_pipelines.steps import validate_step

    return validate_step(Path(dataset.path))["train"]


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def train(
    dataset: Input[Dataset], params_json: str, dask_scheduler: str, model: Output[Model], metrics: Output[Metrics]
) -> None:
    """XGBoost hist with early stopping on validation; distributed on Dask when a scheduler is given."""
    from pathlib import Path

    from berg_pipelines.steps import train_step

    for name, value in train_step(Path(dataset.path), Path(model.path), params_json, dask_scheduler).items():
        metrics.log_metric(name, value)
    model.metadata["framework"] = "xgboost"


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def train_baseline(offline_root: str, card_path: str, dataset: Input[Dataset], baseline: Output[Model]) -> None:
    """The problem card's baseline model on the same split."""
    from pathlib import Path

    from berg_pipelines.steps import PipelineSettings, baseline_step

    model = baseline_step(PipelineSettings(offline_root, card_path=card_path), Path(dataset.path), Path(baseline.path))
    baseline.metadata["kind"] = model.kind


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def evaluate(
    offline_root: str,
    card_path: str,
    registry_uri: str,
    model_name: str,
    dataset: Input[Dataset],
    model: Input[Model],
    baseline: Input[Model],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
) -> None:
    """Challenger, baseline and the production champion on the test window: KFP metrics and an HTML report."""
    from pathlib import Path

    from berg_pipelines.steps import PipelineSettings, challenger_roc, evaluate_step

    result = evaluate_step(
        PipelineSettings(offline_root, card_path=card_path),
        Path(dataset.path),
        Path(model.path),
        Path(baseline.path),
        registry_uri,
        model_name,
        Path(evaluation.path),
        Path(report.path),
    )
    models = [result.challenger, result.baseline] + ([result.champion] if result.champion else [])
    for evaluated in models:
        prefix = evaluated.name.split(" ")[0]
        for name in ("pr_auc", "roc_auc", "precision", "recall", "expected_cost", "threshold"):
            value = evaluated.metric(name)
            if value == value:  # KFP metrics refuse NaN
                metrics.log_metric(f"{prefix}_{name}", value)
    confusion = result.challenger.confusion
    classification.log_confusion_matrix(
        ["negative", "positive"],
        [
            [confusion["true_negatives"], confusion["false_positives"]],
            [confusion["false_negatives"], confusion["true_positives"]],
        ],
    )
    fpr, tpr, thresholds = challenger_roc(Path(dataset.path), Path(model.path))
    classification.log_roc_curve(fpr, tpr, thresholds)


# KFP reads the inline NamedTuple (the body ships as source text, so no module-level type can be named).
# fmt: off
@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def gate(card_path: str, evaluation: Input[Artifact]) -> NamedTuple("GateOutputs", [("promote", bool), ("reason", str)]):  # type: ignore[valid-type]  # noqa: E501
    """The card's promotion rule over the evaluation: promote, and why (not)."""
    from collections import namedtuple
    from pathlib import Path

    from berg_pipelines.steps import PipelineSettings, gate_step

    decision = gate_step(PipelineSettings("", card_path=card_path), Path(evaluation.path))
    GateOutputs = namedtuple("GateOutputs", ["promote", "reason"])
    return GateOutputs(decision.promote, decision.summary)
# fmt: on


@dsl.component(base_image=TRAINING_IMAGE, install_kfp_package=False)
def register(
    card_path: str,
    registry_uri: str,
    model_name: str,
    code_version: str,
    rollout_policy: str,
    run_id: str,
    branch: str,
    promote: bool,
    reason: str,
    dataset: Input[Dataset],
    model: Input[Model],
    evaluation: Input[Artifact],
) -> str:
    """Register the challenger (reference profile, metrics, lineage, the gate's reason); on the ``promote``
    branch also move ``production`` to it. A loser stays in the registry, unpromoted: the record of why not."""
    from pathlib import Path

    from berg_pipelines.steps import PipelineSettings, register_step

    if (branch == "promote") != promote:
        # Only reached where the runner ignores dsl.If/Else (kfp.local 2.16 runs both branches).
        return ""
    return register_step(
        PipelineSettings("", card_path=card_path, rollout_policy=rollout_policy),
        Path(dataset.path),
        Path(model.path),
        Path(evaluation.path),
        registry_uri,
        model_name,
        run_id=run_id,
        code_version=code_version,
        promote=promote,
        reason=reason,
    )
