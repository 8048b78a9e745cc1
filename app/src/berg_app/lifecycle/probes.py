"""What the demo asks the running stack: the controller's API, Prometheus, Alertmanager's silences,
serving's version.

Thin HTTP wrappers; every call is bounded by a timeout and raises
:class:`StackQueryError` with what to look at when the answer is not what the
API promises.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = [
    "AlertmanagerClient",
    "ControllerClient",
    "PrometheusClient",
    "StackQueryError",
    "served_version",
    "shadow_predictions_served",
]


class StackQueryError(RuntimeError):
    """A component answered with an error or nonsense."""


class ControllerClient:
    """The retraining controller's runs and triggers API (bearer token from the stack's token file)."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        self._client = httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {token}"}, timeout=timeout_s)

    def _json(self, response: httpx.Response) -> Any:
        if response.is_error:
            raise StackQueryError(
                f"controller {response.request.url.path} answered {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    def start_run(self, model: str, reason: str) -> dict[str, Any]:
        """``POST /runs``; the run, or the active one when the policy refuses a second (409)."""
        response = self._client.post("/runs", json={"model": model, "reason": reason})
        if response.status_code == 409:
            detail = response.json().get("detail", {})
            active = detail.get("active_run") if isinstance(detail, dict) else None
            if isinstance(active, dict):
                return active
            if isinstance(active, str):
                return self.run(active)
        body: dict[str, Any] = self._json(response)
        return body

    def run(self, run_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._json(self._client.get(f"/runs/{run_id}"))
        return body

    def runs(self, model: str) -> list[dict[str, Any]]:
        body = self._json(self._client.get("/runs", params={"model": model, "limit": 100}))
        return list(body if isinstance(body, list) else body.get("runs", []))

    def triggers(self, model: str) -> list[dict[str, Any]]:
        body = self._json(self._client.get("/triggers", params={"model": model, "limit": 1000}))
        return list(body if isinstance(body, list) else body.get("triggers", []))

    def close(self) -> None:
        self._client.close()


class PrometheusClient:
    """Instant and range queries against Prometheus' HTTP API."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s)

    def _data(self, path: str, params: dict[str, str | float]) -> list[dict[str, Any]]:
        body = self._client.get(path, params=params).json()
        if body.get("status") != "success":
            raise StackQueryError(f"Prometheus {path} {params}: {body}")
        return list(body["data"]["result"])

    def query(self, expression: str) -> list[dict[str, Any]]:
        return self._data("/api/v1/query", {"query": expression})

    def query_range(self, expression: str, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
        return self._data("/api/v1/query_range", {"query": expression, "start": start, "end": end, "step": step_s})

    def close(self) -> None:
        self._client.close()


class AlertmanagerClient:
    """Silences through Alertmanager's v2 API: alerts still fire in Prometheus and reach Alertmanager,
    which holds back their notifications until the silence ends."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=timeout_s)

    def silence(self, labels: dict[str, str | Sequence[str]], duration: timedelta, comment: str) -> str:
        """Silence alerts whose labels match (a sequence: any of these values); the silence's id.

        Raises:
            StackQueryError: Alertmanager refused it.
        """
        now = datetime.now(UTC)
        matchers = [
            {"name": name, "value": value, "isRegex": False, "isEqual": True}
            if isinstance(value, str)
            else {"name": name, "value": "|".join(value), "isRegex": True, "isEqual": True}
            for name, value in labels.items()
        ]
        body = {
            "matchers": matchers,
            "startsAt": now.isoformat(),
            "endsAt": (now + duration).isoformat(),
            "createdBy": "berg demo",
            "comment": comment,
        }
        response = self._client.post("/api/v2/silences", json=body)
        if response.is_error:
            raise StackQueryError(f"Alertmanager refused the silence: {response.status_code} {response.text[:300]}")
        return str(response.json()["silenceID"])

    def expire(self, silence_id: str) -> None:
        """End a silence now (an expired one stays expired)."""
        response = self._client.delete(f"/api/v2/silence/{silence_id}")
        if response.is_error:
            raise StackQueryError(f"Alertmanager did not expire silence {silence_id}: {response.status_code}")

    def active_silences(self) -> list[dict[str, Any]]:
        response = self._client.get("/api/v2/silences")
        if response.is_error:
            raise StackQueryError(f"Alertmanager /api/v2/silences answered {response.status_code}")
        return [s for s in response.json() if s.get("status", {}).get("state") == "active"]

    def close(self) -> None:
        self._client.close()


def _serving_samples(serving_url: str) -> list[Sample] | None:
    """The samples of serving's ``/metrics`` (None when it does not answer)."""
    try:
        text = httpx.get(f"{serving_url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def served_version(serving_url: str) -> str | None:
    """The version serving reports in ``berg_serving_model_info`` (None before its first model)."""
    for sample in _serving_samples(serving_url) or ():
        if sample.name == "berg_serving_model_info":
            return sample.labels.get("version")
    return None


def shadow_predictions_served(serving_url: str) -> float | None:
    """Shadow predictions serving has sent so far, all shadow versions together
    (``berg_serving_shadow_predictions_total``); None when serving does not answer."""
    samples = _serving_samples(serving_url)
    if samples is None:
        return None
    return sum(float(sample.value) for sample in samples if sample.name == "berg_serving_shadow_predictions_total")
