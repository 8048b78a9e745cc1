"""The training pipeline: dataset, validation, training and baseline, evaluation, gate, registration."""

# No `from __future__ import annotations`: KFP reads the signature's types at compile time.
from kfp import dsl

from berg.features.recompute import DEFAULT_SAMPLE_SIZE
from berg_pipelines.components import (
    build_dataset,
    evaluate,
    gate,
    register,
    train,
    train_baseline,
    validate_dataset,
)

__all__ = ["PIPELINE_NAME", "training"]

PIPELINE_NAME = "berg-training"


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Berg: build a point-in-time training set from Feast, validate it, train XGBoost and the card's "
    "baseline, evaluate against the production champion on the latest window, and promote only a winner.",
)
def training(
    offline_root: str,
    registry_uri: str,
    model_name: str,
    feast_profile: str = "feature_store.yaml",
    card_path: str = "",
    window_days: float = 30.0,
    window_end: str = "",
    feature_service: str = "",
    params_json: str = "{}",
    dask_scheduler: str = "",
    code_version: str = "dev",
    recompute_sample: int = DEFAULT_SAMPLE_SIZE,
    rollout_policy: str = "",
) -> None:
    dataset = build_dataset(
        offline_root=offline_root,
        feast_profile=feast_profile,
        card_path=card_path,
        window_days=window_days,
        window_end=window_end,
        feature_service=feature_service,
        recompute_sample=recompute_sample,
    )
    checked = validate_dataset(dataset=dataset.outputs["dataset"])
    model = train(dataset=dataset.outputs["dataset"], params_json=params_json, dask_scheduler=dask_scheduler).after(
        checked
    )
    baseline = train_baseline(offline_root=offline_root, card_path=card_path, dataset=dataset.outputs["dataset"]).after(
        checked
    )
    evaluation = evaluate(
        offline_root=offline_root,
        card_path=card_path,
        registry_uri=registry_uri,
        model_name=model_name,
        dataset=dataset.outputs["dataset"],
        model=model.outputs["model"],
        baseline=baseline.outputs["baseline"],
    )
    decision = gate(card_path=card_path, evaluation=evaluation.outputs["evaluation"])
    registration = {
        "card_path": card_path,
        "registry_uri": registry_uri,
        "model_name": model_name,
        "code_version": code_version,
        # The deployment's policy (the controller passes its own); empty: the step's BERG_ROLLOUT_POLICY or the card's.
        "rollout_policy": rollout_policy,
        "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        # Also passed in: each branch checks it, because kfp.local (2.16) runs both branches of an If/Else.
        "promote": decision.outputs["promote"],
        "reason": decision.outputs["reason"],
        "dataset": dataset.outputs["dataset"],
        "model": model.outputs["model"],
        "evaluation": evaluation.outputs["evaluation"],
    }
    with dsl.If(decision.outputs["promote"] == True, name="challenger-wins"):  # noqa: E712 -- a KFP condition
        register(branch="promote", **registration).set_display_name("register-and-promote")
    with dsl.Else(name="challenger-loses"):
        register(branch="reject", **registration).set_display_name("record-rejection")
