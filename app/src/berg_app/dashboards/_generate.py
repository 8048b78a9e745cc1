"""Render every dashboard to JSON, write the files the Helm chart ships, and list every panel's queries."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel
from grafana_foundation_sdk.models.prometheus import Dataquery

from berg_app.dashboards import data_plane, features, model_health, retraining, serving

__all__ = [
    "DASHBOARDS",
    "DEFAULT_FOLDER",
    "EXAMPLE_VALUES",
    "PanelQuery",
    "StaleFile",
    "build_dashboards",
    "panel_queries",
    "render",
    "rendered_files",
    "resolve",
    "stale_files",
    "write_dashboards",
]

DASHBOARDS: tuple[Callable[[], Dashboard], ...] = (
    data_plane.dashboard,
    features.dashboard,
    serving.dashboard,
    model_health.dashboard,
    retraining.dashboard,
)
"""Every Berg dashboard, in the order the docs list them."""

DEFAULT_FOLDER = Path("helm/berg/dashboards")
"""Where the Helm chart reads the dashboards' JSON from (relative to the repository root)."""

EXAMPLE_VALUES: Mapping[str, str] = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "service": "ingestion",
    "model": "my-model",
    "version": "v0001",
}
"""A value for every variable the queries use, so an expression can be parsed or run outside Grafana."""

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def build_dashboards() -> list[Dashboard]:
    """Every dashboard, built."""
    return [build() for build in DASHBOARDS]


def render(dashboard: Dashboard) -> str:
    """The dashboard as Grafana JSON: keys sorted, indented, ending in a newline (the same bytes every time)."""
    return json.dumps(dashboard, cls=JSONEncoder, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def rendered_files() -> dict[str, str]:
    """``<uid>.json`` -> its JSON, for every dashboard."""
    return {f"{dashboard.uid}.json": render(dashboard) for dashboard in build_dashboards()}


def write_dashboards(folder: Path) -> list[Path]:
    """Write every dashboard's JSON into ``folder`` (created if needed).

    Returns:
        The files whose content changed (files already up to date are not rewritten).
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_files().items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


@dataclass(frozen=True)
class StaleFile:
    """A dashboard file in the folder that differs from what the code generates."""

    name: str
    why: str
    """``differs``, ``missing``, or ``not generated`` (a JSON file no dashboard module makes)."""


def stale_files(folder: Path) -> list[StaleFile]:
    """The files of ``folder`` that ``write_dashboards(folder)`` would change, and JSON files no dashboard makes."""
    expected = rendered_files()
    stale = []
    for name, text in expected.items():
        path = folder / name
        if not path.is_file():
            stale.append(StaleFile(name, "missing"))
        elif path.read_text(encoding="utf-8") != text:
            stale.append(StaleFile(name, "differs"))
    if folder.is_dir():
        stale += [
            StaleFile(path.name, "not generated") for path in sorted(folder.glob("*.json")) if path.name not in expected
        ]
    return stale


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel: what a test runs against Prometheus to see that the panel has data."""

    dashboard: str
    """The dashboard's uid."""
    dashboard_title: str
    panel: str
    """The panel's title."""
    ref_id: str
    expr: str
    """The PromQL as Grafana sends it, with ``$variables`` (see :func:`resolve`)."""
    instant: bool

    def resolved(self, values: Mapping[str, str] | None = None) -> str:
        """The expression with every variable replaced (see :func:`resolve`)."""
        return resolve(self.expr, values)

    def __str__(self) -> str:
        return f"{self.dashboard_title} / {self.panel} / {self.ref_id}"


def resolve(expr: str, values: Mapping[str, str] | None = None) -> str:
    """Replace Grafana's ``$variables`` in ``expr``: ``values`` first, then :data:`EXAMPLE_VALUES`.

    ``resolve(expr, {"model": ".*"})`` matches every model, as the "All" option does.

    Raises:
        KeyError: a variable has no value.
    """
    merged = {**EXAMPLE_VALUES, **(values or {})}
    return _VARIABLE.sub(lambda match: merged[match.group(1) or match.group(2)], expr)


def panel_queries() -> list[PanelQuery]:
    """Every Prometheus query of every panel of every dashboard, in layout order."""
    return [
        PanelQuery(
            dashboard=dashboard.uid or "",
            dashboard_title=dashboard.title or "",
            panel=panel.title or "",
            ref_id=target.ref_id or "",
            expr=target.expr,
            instant=bool(target.instant),
        )
        for dashboard in build_dashboards()
        for panel in _panels(dashboard)
        for target in panel.targets or []
        if isinstance(target, Dataquery)
    ]


def _panels(dashboard: Dashboard) -> Iterator[Panel]:
    for panel in dashboard.panels or []:
        if isinstance(panel, Panel):
            yield panel
