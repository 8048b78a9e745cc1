"""Feast's own CLI accepts feature_repo/ as it is: apply, plan, materialize, serve (embedded profile)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from berg.features.definitions import source_schema
from berg.features.parquet_parts import write_part
from berg.features.store_config import checkout_feature_repo
from tests.fraud_schema import MERCHANT_AS_OF, MERCHANT_AVAILABLE, MERCHANT_FEATURES, MERCHANT_KEY, MERCHANT_VIEW
from tests.helpers import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FEAST = [sys.executable, "-m", "feast.cli.cli"]


def feast(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*FEAST, "-c", str(checkout_feature_repo()), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"feast {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def feast_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "BERG_STATE_DIR": str(tmp_path)}
    env.pop("BERG_FEAST_OFFLINE_ROOT", None)
    return env


def merchant_rows(at: datetime) -> pa.Table:
    schema = source_schema(MERCHANT_KEY, MERCHANT_FEATURES)
    return pa.Table.from_pylist(
        [
            {
                MERCHANT_KEY: f"m{i}",
                "merchant_tx_count_24h": 10 + i,
                "merchant_amount_mean_24h": 20.5 + i,
                "merchant_fraud_rate_30d": 0.01 * i,
                "merchant_labels_known_30d": i,
                MERCHANT_AS_OF: at.timestamp(),
                MERCHANT_AVAILABLE: at.timestamp(),
                "event_timestamp": at,
                "created_timestamp": at,
            }
            for i in range(3)
        ],
        schema=schema,
    )


def test_apply_plan_materialize_and_serve(feast_env: dict[str, str], tmp_path: Path) -> None:
    applied = feast(feast_env, "apply")
    assert "fraud_model_v1" in applied.stdout
    assert (tmp_path / "feast" / "registry.db").is_file(), "the SQLite registry lives under the state directory"

    planned = feast(feast_env, "plan")
    assert "No changes to registry" in planned.stdout

    listed = feast(feast_env, "feature-services", "list")
    assert "fraud_model_v1" in listed.stdout

    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    offline = tmp_path / "feast" / "offline" / MERCHANT_VIEW
    fs = pa.fs.LocalFileSystem()
    write_part(fs, str(offline), merchant_rows(at).schema.empty_table(), name="part-00000000-schema.parquet")
    write_part(fs, str(offline), merchant_rows(at))
    feast(
        feast_env,
        "materialize",
        (at - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        (at + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "--views",
        MERCHANT_VIEW,
    )

    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 -- handed to the child
    server = subprocess.Popen(
        [*FEAST, "-c", str(checkout_feature_repo()), "serve", "-h", "127.0.0.1", "-p", str(port), "--no-access-log"],
        env=feast_env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:

        def healthy() -> bool:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 300, "feast serve")
        response = httpx.post(
            f"http://127.0.0.1:{port}/get-online-features",
            json={
                "features": [f"{MERCHANT_VIEW}:merchant_tx_count_24h", f"{MERCHANT_VIEW}:merchant_fraud_rate_30d"],
                "entities": {MERCHANT_KEY: ["m1", "m2", "unknown"]},
            },
            timeout=30,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        names = body["metadata"]["feature_names"]
        values = {name: result["values"] for name, result in zip(names, body["results"], strict=True)}
        assert values["merchant_tx_count_24h"][:2] == [11, 12]
        assert values["merchant_fraud_rate_30d"][:2] == pytest.approx([0.01, 0.02])
        assert values["merchant_tx_count_24h"][2] is None, "an unknown merchant has no value"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=10)
        log.close()
