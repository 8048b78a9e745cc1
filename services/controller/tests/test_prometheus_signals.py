"""The Prometheus reads of the rollout over a fake transport: queries, parsing, and every failure a retry cures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from berg_controller.prometheus import PrometheusClient, PrometheusUnavailable
from berg_controller.rollout import ShadowObservation
from berg_controller.signals import PrometheusRolloutSignals
from berg_controller.watch import WatchReadings

pytestmark = pytest.mark.unit


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [0, v]} for m, v in series]},
    }


def client(answer: Any) -> tuple[PrometheusClient, list[str]]:
    queries: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        queries.append(query)
        return answer(query) if callable(answer) else answer

    return PrometheusClient("http://prometheus:9090", 1.0, transport=httpx.MockTransport(handler)), queries


def test_shadow_observations_pair_counts_and_pr_auc_by_champion_and_shadow() -> None:
    pair = {"champion_version": "v0001", "shadow_version": "v0002"}

    def answer(query: str) -> httpx.Response:
        if "shadow_predictions" in query:
            return httpx.Response(200, json=vector((pair, "150"), ({**pair, "champion_version": "v0000"}, "9")))
        if "shadow_labelled" in query:
            return httpx.Response(200, json=vector((pair, "20")))
        return httpx.Response(
            200, json=vector(({**pair, "role": "champion"}, "0.8"), ({**pair, "role": "shadow"}, "0.81"))
        )

    prometheus, queries = client(answer)

    seen = PrometheusRolloutSignals(prometheus).shadow_observations('fr"aud')

    assert seen == [
        ShadowObservation("v0000", "v0002", 9, 0, None, None),
        ShadowObservation("v0001", "v0002", 150, 20, 0.8, 0.81),
    ]
    assert 'model="fr\\"aud"' in queries[0]


def test_watch_readings_read_alerts_psi_and_quality_drop() -> None:
    def answer(query: str) -> httpx.Response:
        if query.startswith("ALERTS"):
            return httpx.Response(200, json=vector(({"alertname": "ServingLatencyHigh"}, "1")))
        if "prediction_psi" in query:
            return httpx.Response(200, json=vector(({}, "0.3")))
        return httpx.Response(200, json=vector(({}, "NaN")))

    prometheus, queries = client(answer)

    promoted = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    readings = PrometheusRolloutSignals(prometheus).watch_readings("fraud", "v0002", promoted)

    assert readings == WatchReadings(firing_alerts=("ServingLatencyHigh",), prediction_psi=0.3, quality_drop=None)
    # Only alerts that became active after the promotion: one firing before it is not the new version's doing.
    (alerts,) = [query for query in queries if query.startswith("ALERTS")]
    assert "ALERTS_FOR_STATE{alertname=~" in alerts
    assert f"> {promoted.timestamp():.3f})" in alerts


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(503, text="down"),
        httpx.Response(200, text="not json"),
        httpx.Response(200, json={"status": "error", "error": "bad query"}),
        httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": []}}),
        httpx.Response(200, content=json.dumps({"status": "success"}).encode()),
    ],
)
def test_an_unusable_answer_is_unavailable_never_a_value(response: httpx.Response) -> None:
    prometheus, _ = client(response)

    with pytest.raises(PrometheusUnavailable):
        prometheus.query("up")


def test_an_unreachable_prometheus_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    prometheus = PrometheusClient("http://prometheus:9090", 1.0, transport=httpx.MockTransport(refuse))

    with pytest.raises(PrometheusUnavailable, match="connection refused"):
        PrometheusRolloutSignals(prometheus).watch_readings("fraud", "v0002", datetime.now(UTC))
