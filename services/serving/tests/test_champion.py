"""Loading a registry version, and the watcher that swaps on an alias move: checked, warmed, atomic, resilient."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from services.serving.tests.helpers import register, tiny_booster, wait_for

from berg.observability.health import ReadinessChecks
from berg.registry import MODEL_FILE, IntegrityError, ModelRegistry
from berg_serving.champion import Champion, ChampionError, ChampionSlot, ChampionWatcher, load_champion
from berg_serving.metrics import ServingMetrics
from berg_serving.runner import assemble
from berg_serving.settings import ServingSettings

pytestmark = pytest.mark.unit

FEATURES = ["amount", "tx_count_1h", "merchant_fraud_rate_30d"]


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


def test_load_reads_order_threshold_and_predicts_like_the_booster(registry: ModelRegistry, tmp_path: Path) -> None:
    version = register(registry, tmp_path / "m", FEATURES, threshold=0.3, seed=4)
    champion = load_champion(registry, "fraud", version)
    assert (champion.version, champion.features, champion.threshold) == (version, tuple(FEATURES), 0.3)
    rows = np.array([[1.0, np.nan, 0.2], [3.0, 1.0, 0.0]], dtype=np.float32)
    expected = tiny_booster(FEATURES, seed=4).inplace_predict(rows)
    np.testing.assert_allclose(champion.predict(rows), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"threshold": 0.5}, "no params['features']"),
        ({"features": FEATURES}, "no params['threshold']"),
        ({"features": FEATURES, "threshold": 1.5}, "no params['threshold'] in [0, 1]"),
        ({"features": FEATURES[:2], "threshold": 0.5}, "the booster reads 3 columns, its metadata names 2"),
    ],
)
def test_unservable_metadata_is_refused(registry: ModelRegistry, tmp_path: Path, params: dict, message: str) -> None:
    model = bytes(tiny_booster(FEATURES).save_raw(raw_format="ubj"))
    version = register(registry, tmp_path / "m", FEATURES, model_bytes=model, params=params)
    with pytest.raises(ChampionError) as refused:
        load_champion(registry, "fraud", version)
    assert message in str(refused.value)


def test_a_file_that_is_not_a_model_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    version = register(registry, tmp_path / "m", FEATURES, model_bytes=b"not a model")
    with pytest.raises(ChampionError, match="is not an XGBoost model"):
        load_champion(registry, "fraud", version)


def swap_model_file(registry: ModelRegistry, version: str, model: bytes) -> bytes:
    """Overwrite a registered version's model.bst in place, as a writer of the registry's storage could;
    returns the bytes it held."""
    path = registry.local_path("fraud", version) / MODEL_FILE
    registered = path.read_bytes()
    path.write_bytes(model)
    return registered


def test_a_model_file_changed_after_registration_is_refused(registry: ModelRegistry, tmp_path: Path) -> None:
    version = register(registry, tmp_path / "m", FEATURES, seed=1)
    # A working booster of the same shape: only the recorded digest tells it from the registered one.
    impostor = bytes(tiny_booster(FEATURES, seed=9).save_raw(raw_format="ubj"))
    registered = swap_model_file(registry, version, impostor)

    with pytest.raises(IntegrityError) as refused:
        load_champion(registry, "fraud", version)
    assert hashlib.sha256(registered).hexdigest() in str(refused.value)
    assert hashlib.sha256(impostor).hexdigest() in str(refused.value)


def watcher(
    registry: ModelRegistry, slot: ChampionSlot, metrics: CollectorRegistry, **kwargs: object
) -> ChampionWatcher:
    watch = ServingMetrics.register(metrics).champion_watch
    return ChampionWatcher(registry, "fraud", "production", slot, 0.01, watch, **kwargs)  # type: ignore[arg-type]


def test_the_watcher_follows_the_alias(registry: ModelRegistry, tmp_path: Path) -> None:
    metrics = CollectorRegistry()
    slot = ChampionSlot()
    follow = watcher(registry, slot, metrics)
    assert not follow.poll()  # nothing registered yet
    first = register(registry, tmp_path / "a", FEATURES, seed=1)
    second = register(registry, tmp_path / "b", FEATURES, seed=2, threshold=0.2)
    registry.promote("fraud", first)
    assert follow.poll()
    held = slot.current
    assert held is not None
    assert held.version == first
    registry.promote("fraud", second)
    assert follow.poll()
    assert (slot.current.version, slot.current.threshold) == (second, 0.2)
    assert held.version == first  # a request holding the old champion keeps it whole
    assert metrics.get_sample_value("berg_serving_model_swaps_total") == 2
    assert (
        metrics.get_sample_value("berg_serving_model_info", {"model": "fraud", "version": second, "threshold": "0.2"})
        == 1
    )


def test_a_broken_version_leaves_the_old_one_serving_and_is_retried_later(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    metrics = CollectorRegistry()
    slot = ChampionSlot()
    follow = watcher(registry, slot, metrics)
    good = register(registry, tmp_path / "a", FEATURES)
    broken = register(registry, tmp_path / "b", FEATURES, model_bytes=b"garbage")
    registry.promote("fraud", good)
    follow.poll()
    registry.promote("fraud", broken)
    assert not follow.poll()
    assert not follow.poll()  # backing off: not loaded again at once
    assert slot.current is not None
    assert slot.current.version == good
    assert metrics.get_sample_value("berg_serving_model_load_failures_total") == 1


def test_a_check_can_refuse_a_champion(registry: ModelRegistry, tmp_path: Path) -> None:
    def refuse(champion: Champion) -> None:
        raise ChampionError(f"{champion.version} needs features the transformer does not make")

    slot = ChampionSlot()
    follow = watcher(registry, slot, CollectorRegistry(), check=refuse)
    registry.promote("fraud", register(registry, tmp_path / "a", FEATURES))
    assert not follow.poll()
    assert slot.current is None


def test_the_watcher_thread_swaps_and_stops(registry: ModelRegistry, tmp_path: Path) -> None:

    slot = ChampionSlot()
    follow = watcher(registry, slot, CollectorRegistry())
    follow.start()
    try:
        registry.promote("fraud", register(registry, tmp_path / "a", FEATURES))
        wait_for(lambda: slot.current is not None, 120, "the first version to be loaded")
    finally:
        follow.stop()


def test_a_tampered_version_is_not_swapped_in_and_the_refusal_is_counted_and_logged(
    registry: ModelRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = CollectorRegistry()
    slot = ChampionSlot()
    follow = watcher(registry, slot, metrics)
    good = register(registry, tmp_path / "a", FEATURES, seed=1)
    tampered = register(registry, tmp_path / "b", FEATURES, seed=2)
    registered = swap_model_file(registry, tampered, bytes(tiny_booster(FEATURES, seed=9).save_raw(raw_format="ubj")))
    registry.promote("fraud", good)
    assert follow.poll()

    registry.promote("fraud", tampered)
    with caplog.at_level(logging.ERROR, logger="berg_serving.champion"):
        assert not follow.poll()

    assert slot.current is not None
    assert slot.current.version == good
    assert metrics.get_sample_value("berg_serving_model_integrity_failures_total") == 1
    assert metrics.get_sample_value("berg_serving_model_load_failures_total") == 1
    assert metrics.get_sample_value("berg_serving_model_swaps_total") == 1
    (logged,) = [record.getMessage() for record in caplog.records]
    assert f"cannot serve fraud {tampered}" in logged
    assert "changed after registration" in logged
    assert f"still serving {good}" in logged

    # Once the registered file is back, the retry serves it.
    swap_model_file(registry, tampered, registered)
    wait_for(follow.poll, 120, "the restored version to be served")
    assert slot.current.version == tampered
    assert metrics.get_sample_value("berg_serving_model_integrity_failures_total") >= 1


def test_a_server_whose_only_champion_is_tampered_starts_not_ready(
    registry: ModelRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    version = register(registry, tmp_path / "a", FEATURES)
    swap_model_file(registry, version, bytes(tiny_booster(FEATURES, seed=9).save_raw(raw_format="ubj")))
    registry.promote("fraud", version)
    metrics = CollectorRegistry()
    settings = ServingSettings(registry_uri=registry.root_uri, poll_interval_s=3600)

    # The predictor shape reads only the registry; the rest is the transformer's.
    with caplog.at_level(logging.ERROR, logger="berg_serving.champion"):
        assembly = assemble(
            settings,
            "predictor",
            ServingMetrics.register(metrics),
            None,  # type: ignore[arg-type]
            [],
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
            model_name="fraud",
            prediction_key="event_id",
        )
    try:
        readiness = ReadinessChecks()
        readiness.add("model", assembly.model.is_ready)  # as the server registers it
        result = readiness.run()
        assert not result.ready
        assert result.checks["model"] is False
        assert metrics.get_sample_value("berg_serving_model_integrity_failures_total") == 1
        assert any(
            "changed after registration" in record.getMessage() and "nothing is served" in record.getMessage()
            for record in caplog.records
        )
    finally:
        asyncio.run(assembly.close(1.0))
