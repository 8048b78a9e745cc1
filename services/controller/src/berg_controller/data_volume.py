"""Where the data-volume trigger's count comes from: an interface, and Prometheus behind it.

The monitoring exporter publishes ``berg_monitoring_new_labelled_rows{model}``:
labelled events newer than the production version's training window. The
controller either hears of it as the ``NewLabelledDataVolume`` alert (the
default, no source needed) or asks Prometheus itself (:class:`PrometheusDataVolume`).
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import httpx

__all__ = ["NEW_LABELLED_ROWS", "DataVolumeSource", "PrometheusDataVolume"]

log = logging.getLogger(__name__)

NEW_LABELLED_ROWS = "berg_monitoring_new_labelled_rows"


class DataVolumeSource(Protocol):
    """Counts new labelled rows per model."""

    def new_labelled_rows(self, model: str) -> int | None:
        """The count for ``model``, or None when it is unknown right now."""
        ...


class PrometheusDataVolume:
    """Asks Prometheus' query API for ``max(berg_monitoring_new_labelled_rows{model="<model>"})``."""

    def __init__(self, url: str, timeout_s: float, *, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, transport=transport)

    def new_labelled_rows(self, model: str) -> int | None:
        escaped = model.replace("\\", "\\\\").replace('"', '\\"')
        query = f'max({NEW_LABELLED_ROWS}{{model="{escaped}"}})'
        try:
            response = self._client.get("/api/v1/query", params={"query": query})
            response.raise_for_status()
            result = response.json()["data"]["result"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            log.warning("cannot read %s from Prometheus: %s", NEW_LABELLED_ROWS, error)
            return None
        if not result:
            return None
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        return int(value) if math.isfinite(value) else None

    def close(self) -> None:
        self._client.close()
