"""Prometheus and Alertmanager configs for the local stack, generated into the state directory.

Berg services register themselves for scraping by dropping a file into the
scrape-targets folder (:func:`register_scrape_target`); Prometheus watches it,
so no restart or reload is needed. The alert rules ship with the package
(``resources/prometheus/berg.rules.yml``) and are copied into the rules folder
(:func:`install_alert_rules`). Alertmanager sends the retraining alerts to the
controller's webhook with a bearer token read from a file that the stack
generates once (:func:`ensure_controller_token`); the controller is given the
same file (``BERG_CONTROLLER_WEBHOOK_TOKEN_FILE``).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from berg.contracts.alerts import RETRAINING_ALERTS, ROLLBACK_ALERT
from berg_app.stack.layout import StateLayout
from berg_app.stack.settings import StackSettings

__all__ = [
    "ALERT_RULES_FILE",
    "BERG_SCRAPE_JOB",
    "CONTROLLER_RECEIVER",
    "CONTROLLER_TOKEN_FILE_ENV",
    "DEFAULT_RECEIVER",
    "ONCALL_RECEIVER",
    "RETRAINING_ALERTS",
    "ROLLBACK_ALERT",
    "alert_rules",
    "alertmanager_config",
    "controller_webhook_url",
    "ensure_controller_token",
    "install_alert_rules",
    "prometheus_config",
    "register_scrape_target",
    "unregister_scrape_target",
    "write_yaml",
]

BERG_SCRAPE_JOB = "berg"

ALERT_RULES_FILE = "berg.rules.yml"
"""Name of Berg's rule file, in the package and in the stack's rules folder."""


CONTROLLER_RECEIVER = "controller"
DEFAULT_RECEIVER = "default"
ONCALL_RECEIVER = "on-call"
"""Where alerts for a person go (``ModelRolledBack``); the local stack gives it no integration, a deployment
adds its e-mail, chat or pager."""

CONTROLLER_TOKEN_FILE_ENV = "BERG_CONTROLLER_WEBHOOK_TOKEN_FILE"  # noqa: S105 (a variable name, not a secret)
"""Variable that gives the controller the path of the webhook's bearer-token file."""


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


def alertmanager_config(settings: StackSettings, layout: StateLayout) -> dict[str, Any]:
    """Alertmanager config: retraining alerts to the controller's webhook, a rollback to the on-call person,
    the rest to an empty receiver.

    Alerts are grouped by alert name and model. The controller is sent resolved
    alerts too, with the bearer token of :func:`ensure_controller_token` (read
    from the file at each request). Its route re-sends a still-firing group
    every hour, so a trigger the controller refused (cooldown, a run in
    progress) is offered again.
    """
    group_by = ["alertname", "model"]
    retraining = "|".join(RETRAINING_ALERTS)
    return {
        "route": {
            "receiver": DEFAULT_RECEIVER,
            "group_by": group_by,
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "4h",
            "routes": [
                # First, and it stops there: a rollback must never reach the controller (retraining on it
                # would train on the same data again).
                {
                    "receiver": ONCALL_RECEIVER,
                    "matchers": [f'alertname="{ROLLBACK_ALERT}"'],
                    "group_by": list(group_by),
                },
                {
                    "receiver": CONTROLLER_RECEIVER,
                    "matchers": [f'alertname=~"{retraining}"'],
                    "group_by": list(group_by),
                    "group_wait": "10s",
                    "group_interval": "30s",
                    "repeat_interval": "1h",
                },
            ],
        },
        "receivers": [
            {"name": DEFAULT_RECEIVER},
            {"name": ONCALL_RECEIVER},
            {
                "name": CONTROLLER_RECEIVER,
                "webhook_configs": [
                    {
                        "url": controller_webhook_url(settings),
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": str(layout.controller_token)}
                        },
                    }
                ],
            },
        ],
    }


def controller_webhook_url(settings: StackSettings) -> str:
    """Where Alertmanager posts the retraining alerts: the controller's ``/alerts``."""
    return f"http://{settings.host}:{settings.ports.controller}/alerts"


def ensure_controller_token(layout: StateLayout) -> Path:
    """Create the webhook's bearer-token file once (mode 0600, random); later calls reuse it.

    Alertmanager reads it through ``credentials_file`` and the controller through
    ``BERG_CONTROLLER_WEBHOOK_TOKEN_FILE``, so the token is never on a command
    line or in a generated config.
    """
    path = layout.controller_token
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    if path.exists() and path.read_text().strip():
        path.chmod(0o600)
        return path
    path.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    try:
        # A link never replaces an existing file: if another `berg up` got there first, its token stands.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path


def alert_rules() -> Traversable:
    """Berg's rule file as shipped in the package."""
    return resources.files("berg_app.stack").joinpath(f"resources/prometheus/{ALERT_RULES_FILE}")


def install_alert_rules(layout: StateLayout) -> Path:
    """Copy Berg's rule file into the rules folder the stack's Prometheus loads (atomically)."""
    path = layout.rules / ALERT_RULES_FILE
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(alert_rules().read_bytes())
    os.replace(temporary, path)
    return path


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
