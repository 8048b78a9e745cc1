"""A small client of Prometheus' instant-query API: label sets and values, or :class:`PrometheusUnavailable`.

Example:
    >>> with PrometheusClient("http://127.0.0.1:9090", timeout_s=5) as prometheus:
    ...     prometheus.query('max(berg_monitoring_prediction_psi{model="m"})')
    [Sample(labels={}, value=0.03)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import TracebackType

import httpx

__all__ = ["PrometheusClient", "PrometheusUnavailable", "Sample", "label_matcher"]


class PrometheusUnavailable(Exception):
    """Prometheus did not answer a query usefully; the caller tries again later (never decides on a guess)."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and its value (finite only)."""

    labels: dict[str, str]
    value: float


def label_matcher(value: str) -> str:
    """``value`` quoted for a PromQL label matcher (``model="..."``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class PrometheusClient:
    """Instant queries against ``url``'s ``/api/v1/query``."""

    def __init__(self, url: str, timeout_s: float, *, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, transport=transport)

    def query(self, expression: str) -> list[Sample]:
        """The instant vector ``expression`` evaluates to now; series whose value is NaN or infinite are left out.

        Raises:
            PrometheusUnavailable: no answer, an error status, or a body that is not a vector.
        """
        try:
            response = self._client.get("/api/v1/query", params={"query": expression})
            response.raise_for_status()
            body = response.json()
            if body.get("status") != "success" or body["data"]["resultType"] != "vector":
                raise PrometheusUnavailable(f"query {expression!r} answered {body.get('error') or body['data']}")
            samples = [Sample(dict(series["metric"]), float(series["value"][1])) for series in body["data"]["result"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as error:
            raise PrometheusUnavailable(f"query {expression!r} failed: {error}") from error
        return [sample for sample in samples if math.isfinite(sample.value)]

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
