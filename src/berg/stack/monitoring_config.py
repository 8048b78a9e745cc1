"""Prometheus and Alertmanager configs for the local stack, generated into the state directory.

Berg services register themselves for scraping by dropping a file into the
scrape-targets folder (:func:`register_scrape_target`); Prometheus watches it,
so no restart or reload is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from berg.stack.layout import StateLayout
from berg.stack.settings import StackSettings

__all__ = [
    "BERG_SCRAPE_JOB",
    "alertmanager_config",
    "prometheus_config",
    "register_scrape_target",
    "unregister_scrape_target",
    "write_yaml",
]

BERG_SCRAPE_JOB = "berg"


def prometheus_config(settings: StackSettings, layout: StateLayout) -> dict[str, Any]:
    """Prometheus config: itself, Alertmanager, and every registered Berg service."""
    interval = f"{settings.scrape_interval_s}s"
    host, ports = settings.host, settings.ports
    return {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            "external_labels": {"berg_stack": "local"},
        },
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"{host}:{ports.alertmanager}"]}]}]},
        "rule_files": [str(layout.rules / "*.yml")],
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"{host}:{ports.prometheus}"]}]},
            {"job_name": "alertmanager", "static_configs": [{"targets": [f"{host}:{ports.alertmanager}"]}]},
            {
                "job_name": BERG_SCRAPE_JOB,
                "file_sd_configs": [{"files": [str(layout.scrape_targets / "*.json")], "refresh_interval": "5s"}],
            },
        ],
    }


def alertmanager_config() -> dict[str, Any]:
    """Alertmanager config: alerts grouped by alert name and model.

    Nothing consumes alerts yet, so the single receiver is empty; the
    retraining controller's webhook becomes a route here when it exists.
    """
    return {
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "model"],
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "4h",
        },
        "receivers": [{"name": "default"}],
    }


def write_yaml(path: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` as YAML atomically (readers never see half a file)."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(yaml.safe_dump(dict(document), sort_keys=False))
    os.replace(temporary, path)
    return path


def register_scrape_target(layout: StateLayout, service: str, address: str, labels: Mapping[str, str]) -> Path:
    """Ask the stack's Prometheus to scrape ``address`` (``host:port``) as ``service``.

    The file is replaced atomically, so Prometheus never reads a partial one.
    """
    path = layout.scrape_targets / f"{service}.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps([{"targets": [address], "labels": {"service": service, **labels}}]))
    os.replace(temporary, path)
    return path


def unregister_scrape_target(layout: StateLayout, service: str) -> None:
    """Stop scraping ``service``."""
    (layout.scrape_targets / f"{service}.json").unlink(missing_ok=True)
