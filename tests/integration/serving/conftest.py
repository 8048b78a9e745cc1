"""Fixtures of the serving tests: a simulated feature store, a registry of models trained on it, servers.

One world serves the session: 60 days of simulated traffic through the features
service's handler into Feast (``tests/feature_world.py``), the pipeline's own
``build_dataset_step`` on it, and three small XGBoost models trained on that
dataset, registered as ``v0001`` (promoted), ``v0002`` and ``v0003``. Each test
module copies the registry when it moves aliases, and starts its servers as child
processes (``python -m berg_serving``) on free ports, reading the world's Feast.

The clicks use case has a world of its own (:class:`ClicksWorld`): its Feast definitions applied to an
empty store (its features then come from the impression itself and the defaults) and three boosters
trained on synthetic rows of its feature columns, registered the same way.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import pandas as pd
import pytest

from berg.registry import Lineage, ModelRegistry, VersionMetadata
from tests.feature_world import FeatureWorld, simulated_feature_store
from tests.fraud_schema import FEATURE_SERVICE
from tests.helpers import free_port
from tests.processes import ServiceProcess
from tests.use_cases import impression

MODEL = "fraud"


class ServedWorld(Protocol):
    """What a serving process is started over: the variables that point it at its feature store and use case."""

    @property
    def environment(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class ServingWorld:
    """The feature store, a template registry and transactions to score just after the simulated history."""

    world: FeatureWorld
    registry_template: Path
    feature_columns: tuple[str, ...]
    recent: pd.DataFrame
    """Transactions of the last simulated day: users and merchants the online store knows."""
    scoring_time: datetime

    @property
    def environment(self) -> dict[str, str]:
        return self.world.environment

    def registry(self, destination: Path) -> Path:
        """A copy of the registry (``v0001`` in production) that a test may change."""
        shutil.copytree(self.registry_template, destination)
        return destination

    def transactions(self, count: int, *, seed: int = 0, unknown: int = 0) -> list[dict[str, Any]]:
        """Scoring requests: ``count`` (at least one) by known users at known merchants, then ``unknown`` by
        users the online store has never seen."""
        chosen = random.Random(seed)
        rows = [self.recent.iloc[chosen.randrange(len(self.recent))] for _ in range(count)]
        fields = [
            {
                "event_id": str(uuid.UUID(int=chosen.getrandbits(128), version=4)),
                "event_time": (self.scoring_time + timedelta(seconds=index)).isoformat(),
                "user_id": str(row["user_id"]),
                "merchant_id": str(row["merchant_id"]),
                "amount": round(float(row["amount"]) * chosen.uniform(0.5, 3.0), 2),
                "currency": "EUR",
                "merchant_category": str(row["merchant_category"]),
                "channel": str(row["channel"]),
                "country": str(row["country"]),
            }
            for index, row in enumerate(rows)
        ]
        for index in range(unknown):
            fields.append(
                {**fields[index % len(fields)], "event_id": str(uuid.uuid4()), "user_id": f"stranger-{index}"}
            )
        return fields


def _register_boosters(
    model: str,
    x: Any,
    y: Any,
    features: tuple[str, ...],
    lineage: Lineage,
    registry: ModelRegistry,
    staging: Path,
    **params: float,
) -> None:
    """Three small XGBoost models on ``(x, y)``, registered as ``v0001`` (promoted), ``v0002`` and ``v0003``."""
    import xgboost as xgb

    for index, (depth, threshold) in enumerate(((3, 0.5), (4, 0.45), (2, 0.55))):
        booster = xgb.train(
            {"objective": "binary:logistic", "max_depth": depth, "nthread": 1, "seed": index, **params},
            xgb.DMatrix(x, label=y),
            num_boost_round=20,
        )
        folder = staging / f"model-{index}"
        folder.mkdir(parents=True)
        (folder / "model.bst").write_bytes(bytes(booster.save_raw(raw_format="ubj")))
        metadata = VersionMetadata(lineage=lineage, params={"features": list(features), "threshold": threshold})
        registry.register(model, folder, metadata)
    registry.promote(model, "v0001", reason="the first champion")


def _train_and_register(dataset: Path, registry: ModelRegistry, staging: Path) -> tuple[str, ...]:
    import numpy as np

    from berg_pipelines.runtime.frames import DatasetInfo, feature_matrix, read_frame

    info = DatasetInfo.read(dataset)
    train = read_frame(dataset / "train.parquet")
    y = train[info.label_column].to_numpy()
    lineage = Lineage(
        data_start=datetime.fromisoformat(info.window_start),
        data_end=datetime.fromisoformat(info.window_end),
        feature_service=info.feature_service,
        pipeline_run_id="serving-tests",
        code_version="test",
    )
    x = feature_matrix(train, info.feature_columns)
    weight = float(np.sum(y == 0) / max(1, np.sum(y == 1)))
    _register_boosters(MODEL, x, y, info.feature_columns, lineage, registry, staging, scale_pos_weight=weight)
    return info.feature_columns


@pytest.fixture(scope="session")
def serving_world(tmp_path_factory: pytest.TempPathFactory) -> ServingWorld:
    from berg_pipelines.steps import PipelineSettings, build_dataset_step

    world = simulated_feature_store(tmp_path_factory.mktemp("serving-world"), days=60)
    dataset = tmp_path_factory.mktemp("serving-dataset")
    build_dataset_step(
        PipelineSettings(offline_root=world.offline_root, store=world.store_config),
        dataset,
        window_days=20.0,
        feature_service=FEATURE_SERVICE,
    )
    template = tmp_path_factory.mktemp("serving-registry") / "registry"
    columns = _train_and_register(dataset, ModelRegistry(template), tmp_path_factory.mktemp("serving-models"))
    recent = world.label_store.read("transactions", start=world.end - timedelta(days=1))
    return ServingWorld(world, template, columns, recent, world.end + timedelta(minutes=1))


@dataclass(frozen=True)
class ClicksWorld:
    """The clicks use case's Feast store (definitions applied, no rows) and a template registry of boosters over
    its feature columns; impressions to score."""

    state_dir: Path
    registry_template: Path
    scoring_time: datetime

    @property
    def environment(self) -> dict[str, str]:
        return {"BERG_STATE_DIR": str(self.state_dir), "BERG_USE_CASE": "clicks"}

    def registry(self, destination: Path) -> Path:
        """A copy of the registry (``v0001`` in production) that a test may change."""
        shutil.copytree(self.registry_template, destination)
        return destination

    def impressions(self, count: int, *, seed: int = 0) -> list[dict[str, Any]]:
        """Scoring requests: ``count`` impressions (JSON fields), a second apart from :attr:`scoring_time`."""
        chosen = random.Random(seed)
        events = [impression(chosen.randrange(10_000), self.scoring_time + timedelta(seconds=n)) for n in range(count)]
        return [event.model_dump(mode="json", exclude={"schema_version"}) for event in events]


def _train_clicks_and_register(features: tuple[str, ...], registry: ModelRegistry, staging: Path) -> None:
    """Three boosters over ``features`` on synthetic rows whose click rate rises with the bid and falls with the
    slot (both come from the impression itself, so live scores vary), registered as the clicks model."""
    from berg_clicks.use_case import clicks

    rng = np.random.default_rng(7)
    rows = 4000
    x = rng.normal(size=(rows, len(features)))
    bid, slot = features.index("bid"), features.index("slot")
    x[:, bid] = rng.uniform(0.2, 1.2, rows)
    x[:, slot] = rng.integers(0, 4, rows)
    odds = -3.0 + 2.0 * x[:, bid] - 0.4 * x[:, slot]
    y = (rng.random(rows) < 1 / (1 + np.exp(-odds))).astype(np.float32)
    lineage = Lineage(
        data_start=datetime(2026, 1, 1, tzinfo=UTC),
        data_end=datetime(2026, 2, 1, tzinfo=UTC),
        feature_service=clicks().features.service,
        pipeline_run_id="serving-tests",
        code_version="test",
    )
    _register_boosters("clicks", x.astype(np.float32), y, features, lineage, registry, staging)


@pytest.fixture(scope="session")
def clicks_world(tmp_path_factory: pytest.TempPathFactory) -> ClicksWorld:
    from berg.features.store import close_store, open_store, prepare_store
    from berg.features.store_config import FeatureStoreConfig
    from berg_clicks.use_case import clicks
    from berg_serving.features import FeatureAssembler

    features = clicks().features
    state_dir = tmp_path_factory.mktemp("clicks-world")
    store = open_store(FeatureStoreConfig.embedded(state_dir))
    try:
        prepare_store(store, features, str(state_dir / "feast" / "offline"))
    finally:
        close_store(store)
    columns = FeatureAssembler(features).servable
    template = tmp_path_factory.mktemp("clicks-registry") / "registry"
    _train_clicks_and_register(columns, ModelRegistry(template), tmp_path_factory.mktemp("clicks-models"))
    return ClicksWorld(state_dir, template, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))


@dataclass(frozen=True)
class ServedCase:
    """What one installed use case brings to a serving test: its world, a registry to change, events to score."""

    use_case: str
    """The use case (``BERG_USE_CASE``), and the model's name."""
    world: ServedWorld
    registry: Callable[[Path], Path]
    """A copy of the use case's registry at the given path: ``v0001`` in production, ``v0002`` another booster."""
    events: Callable[[int, int], list[dict[str, Any]]]
    """``(count, seed)``: that many scoring requests' events (V1 ``instances``), as JSON fields; the last one by
    an entity the online store does not know (the clicks world's store knows nobody)."""


def _fraud_case(request: pytest.FixtureRequest) -> ServedCase:
    world: ServingWorld = request.getfixturevalue("serving_world")
    # The last event by a user the online store has never seen: scored (and shadowed) with defaults too.
    return ServedCase(
        "fraud", world, world.registry, lambda count, seed: world.transactions(count - 1, seed=seed, unknown=1)
    )


def _clicks_case(request: pytest.FixtureRequest) -> ServedCase:
    world: ClicksWorld = request.getfixturevalue("clicks_world")
    return ServedCase("clicks", world, world.registry, lambda count, seed: world.impressions(count, seed=seed))


_CASES = {"fraud": _fraud_case, "clicks": _clicks_case}


@pytest.fixture(scope="module", params=list(_CASES))
def served_case(request: pytest.FixtureRequest) -> ServedCase:
    """Each installed use case in turn, for a module's tests; only the chosen one's world is built."""
    return _CASES[request.param](request)


class ServingProcess(ServiceProcess):
    """``python -m berg_serving`` in a shape, with REST and gRPC on free ports, over the world's Feast."""

    def __init__(
        self, shape: str, world: ServedWorld, registry: Path, log_dir: Path, settings: Mapping[str, str]
    ) -> None:
        self.grpc_port = free_port()
        defaults = {
            "SHAPE": shape,
            "REGISTRY_URI": str(registry),
            "GRPC__PORT": str(self.grpc_port),
            "LOGGING__JSON_FORMAT": "false",
            "PREDICTION_LOG__ENABLED": "false",
            "DRAIN_DELAY_S": "0.2",
            "GRACE_PERIOD_S": "10",
            "POLL_INTERVAL_S": "0.2",
        }
        super().__init__(
            "berg_serving",
            "BERG_SERVING_",
            {**defaults, **settings},
            log_dir,
            f"serving-{shape}",
            environment=world.environment,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, timeout_s: float = 400) -> None:
        # Only bounds a hang: importing KServe, Feast and XGBoost alone took 72 s on a machine loaded to 18.
        super().wait_ready(timeout_s)
        if not self.ready():
            raise AssertionError(f"{self.name} did not become ready:\n{self.log_tail()}")

    def version_info(self) -> str | None:
        """The version the server reports in ``berg_serving_model_info``."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(httpx.get(f"{self.url}/metrics", timeout=5).text):
            for sample in family.samples:
                if sample.name == "berg_serving_model_info":
                    return sample.labels.get("version")
        return None


def create_topics(bootstrap: str, names: Mapping[str, str]) -> dict[str, str]:
    """Create each topic (one partition) on the session's Kafka; ``names`` by what they are for, returned."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="berg-test-admin")
    try:
        admin.create_topics([NewTopic(name, 1, 1) for name in names.values()])
    finally:
        admin.close()
    return dict(names)


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``start_server(shape, world, registry, **settings)``: started and ready; stopped at the module's end."""
    started: list[ServingProcess] = []
    log_dir = tmp_path_factory.mktemp("serving-logs")

    def start(shape: str, world: ServedWorld, registry: Path, wait: bool = True, **settings: str) -> ServingProcess:
        server = ServingProcess(shape, world, registry, log_dir, settings)
        server.start()
        started.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in started:
        if server.alive():
            code = server.stop(timeout_s=30)
            assert code == 0, f"{server.name} exited with {code}:\n{server.log_tail()}"
