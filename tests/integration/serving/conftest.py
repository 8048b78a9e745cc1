"""Fixtures of the serving tests: a simulated feature store, a registry of models trained on it, servers.

One world serves the session: 60 days of simulated traffic through the features
service's handler into Feast (``tests/feature_world.py``), the pipeline's own
``build_dataset_step`` on it, and three small XGBoost models trained on that
dataset, registered as ``v0001`` (promoted), ``v0002`` and ``v0003``. Each test
module copies the registry when it moves aliases, and starts its servers as child
processes (``python -m berg_serving``) on free ports, reading the world's Feast.
"""

from __future__ import annotations

import random
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from berg.registry import Lineage, ModelRegistry, VersionMetadata
from tests.feature_world import FeatureWorld, simulated_feature_store
from tests.fraud_schema import FEATURE_SERVICE
from tests.helpers import free_port
from tests.processes import ServiceProcess

MODEL = "fraud"


@dataclass(frozen=True)
class ServingWorld:
    """The feature store, a template registry and transactions to score just after the simulated history."""

    world: FeatureWorld
    registry_template: Path
    feature_columns: tuple[str, ...]
    recent: pd.DataFrame
    """Transactions of the last simulated day: users and merchants the online store knows."""
    scoring_time: datetime

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


def _train_and_register(dataset: Path, registry: ModelRegistry, staging: Path) -> tuple[str, ...]:
    import numpy as np
    import xgboost as xgb

    from berg_pipelines.runtime.frames import DatasetInfo, feature_matrix, read_frame

    info = DatasetInfo.read(dataset)
    train = read_frame(dataset / "train.parquet")
    x = feature_matrix(train, info.feature_columns)
    y = train[info.label_column].to_numpy()
    weight = float(np.sum(y == 0) / max(1, np.sum(y == 1)))
    for index, (depth, threshold) in enumerate(((3, 0.5), (4, 0.45), (2, 0.55))):
        booster = xgb.train(
            {
                "objective": "binary:logistic",
                "max_depth": depth,
                "nthread": 1,
                "scale_pos_weight": weight,
                "seed": index,
            },
            xgb.DMatrix(x, label=y),
            num_boost_round=20,
        )
        folder = staging / f"model-{index}"
        folder.mkdir(parents=True)
        (folder / "model.bst").write_bytes(bytes(booster.save_raw(raw_format="ubj")))
        metadata = VersionMetadata(
            lineage=Lineage(
                data_start=datetime.fromisoformat(info.window_start),
                data_end=datetime.fromisoformat(info.window_end),
                feature_service=info.feature_service,
                pipeline_run_id="serving-tests",
                code_version="test",
            ),
            params={"features": list(info.feature_columns), "threshold": threshold},
        )
        registry.register(MODEL, folder, metadata)
    registry.promote(MODEL, "v0001", reason="the first champion")
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


class ServingProcess(ServiceProcess):
    """``python -m berg_serving`` in a shape, with REST and gRPC on free ports, over the world's Feast."""

    def __init__(
        self, shape: str, world: ServingWorld, registry: Path, log_dir: Path, settings: Mapping[str, str]
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
            environment=world.world.environment,
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

    def start(shape: str, world: ServingWorld, registry: Path, wait: bool = True, **settings: str) -> ServingProcess:
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
