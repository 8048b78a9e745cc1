"""The Grafana dashboards as code: committed JSON, PromQL that parses, metrics someone exports, one data source."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from berg_app import cli
from berg_app.dashboards import (
    DASHBOARDS,
    DEFAULT_FOLDER,
    PanelQuery,
    model_health,
    panel_queries,
    rendered_files,
    serving,
    stale_files,
    write_dashboards,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RULES = ROOT / "app" / "src" / "berg_app" / "stack" / "resources" / "prometheus" / "berg.rules.yml"

_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_info")
_NOT_METRICS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
}


@cache
def dashboards() -> dict[str, dict[str, Any]]:
    """``<uid>.json`` -> the dashboard as Grafana reads it."""
    return {name: json.loads(text) for name, text in rendered_files().items()}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's panels, rows excluded."""
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside strings, matchers, ranges and clauses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        if match.group(2) is None and match.group(1).lower() not in _NOT_METRICS:
            names.add(match.group(1))
    return names


def base_name(metric: str) -> str:
    for suffix in _SUFFIXES:
        if metric.endswith(suffix):
            return metric.removesuffix(suffix)
    return metric


@cache
def catalogued_names() -> frozenset[str]:
    """Metric names in docs/metrics.md, and those the services' and library's code registers."""
    names = set(re.findall(r"`(berg_\w+)`", (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")))
    dashboards_source = ROOT / "app" / "src" / "berg_app" / "dashboards"
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "services").glob("*/src/**/*.py")]
    for source in sources:
        if dashboards_source not in source.parents:
            names.update(re.findall(r"[\"'](berg_[a-z0-9_]+)[\"']", source.read_text(encoding="utf-8")))
    return frozenset(names)


def test_committed_json_is_what_the_code_generates() -> None:
    stale = stale_files(ROOT / DEFAULT_FOLDER)
    assert not stale, (
        f"{', '.join(f'{file.name} ({file.why})' for file in stale)} in {DEFAULT_FOLDER}: "
        "run `uv run berg dashboards` and commit the result"
    )


def test_rendering_is_deterministic() -> None:
    assert rendered_files() == rendered_files()


def test_uids_titles_and_tags() -> None:
    uids = [dashboard["uid"] for dashboard in dashboards().values()]
    titles = [dashboard["title"] for dashboard in dashboards().values()]
    assert len(uids) == len(set(uids)) == len(DASHBOARDS) == 5
    assert len(titles) == len(set(titles))
    for name, dashboard in dashboards().items():
        assert name == f"{dashboard['uid']}.json"
        assert re.fullmatch(r"berg-[a-z0-9-]{1,35}", dashboard["uid"]), dashboard["uid"]
        assert "berg" in dashboard["tags"], name
        assert "id" not in dashboard, f"{name}: Grafana assigns the numeric id"


def test_panel_ids_are_unique_and_every_panel_has_queries() -> None:
    for name, dashboard in dashboards().items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids {sorted(ids)}"
        assert all(isinstance(i, int) and i > 0 for i in ids), f"{name}: {ids}"
        titles = [panel["title"] for panel in panels(dashboard)]
        assert len(titles) == len(set(titles)), f"{name}: duplicate panel titles"
        for panel in panels(dashboard):
            targets = panel.get("targets") or []
            assert targets, f"{name} / {panel['title']}: no query"
            assert all(target["expr"].strip() for target in targets), f"{name} / {panel['title']}: empty query"
            ref_ids = [target["refId"] for target in targets]
            assert len(ref_ids) == len(set(ref_ids)), f"{name} / {panel['title']}: duplicate refIds"
            assert panel.get("options") is not None, f"{name} / {panel['title']}: no panel options"


def test_every_datasource_is_the_variable() -> None:
    for name, dashboard in dashboards().items():
        variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in panels(dashboard):
            assert panel["datasource"] == DATASOURCE, f"{name} / {panel['title']}"
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE, f"{name} / {panel['title']} / {target['refId']}"
        for node in walk(dashboard):
            if "datasource" in node:
                assert node["datasource"] == DATASOURCE, f"{name}: hard-coded data source {node['datasource']}"
        uids = {node["uid"] for node in walk(dashboard) if "uid" in node}
        assert uids <= {dashboard["uid"], "${datasource}"}, f"{name}: hard-coded uids {uids}"


def test_panel_queries_list_every_target() -> None:
    queries = panel_queries()
    targets = sum(len(panel["targets"]) for dashboard in dashboards().values() for panel in panels(dashboard))
    assert len(queries) == targets
    for query in queries:
        assert "$" not in query.resolved(), query
    assert queries[0].resolved({"service": ".*"}).count('service=~".*"') == 1


def test_every_query_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run scripts/bootstrap.sh (it installs the Debian package prometheus)")
    queries = {str(query): query for query in panel_queries()}
    assert len(queries) == len(panel_queries()), "two queries share a dashboard / panel / refId"
    groups = [
        {"name": name, "rules": [{"record": f"berg_dashboard_query_{number}", "expr": query.resolved()}]}
        for number, (name, query) in enumerate(queries.items())
    ]
    rules = tmp_path / "dashboards.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    checked = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    output = checked.stdout + checked.stderr
    failing = [f"{name}: {query.expr}" for name, query in queries.items() if f'"{name}"' in output]
    assert checked.returncode == 0, "PromQL that does not parse:\n" + "\n".join(failing) + "\n\n" + output


def test_every_metric_is_catalogued_or_exported() -> None:
    unknown: list[str] = []
    for query in panel_queries():
        names = metric_names(query.resolved())
        assert names, f"{query}: reads no metric ({query.expr})"
        unknown += [
            f"{query}: {metric}"
            for metric in sorted(names)
            if metric not in catalogued_names() and base_name(metric) not in catalogued_names()
        ]
    assert not unknown, "metrics in neither docs/metrics.md nor any service's code:\n" + "\n".join(unknown)


def test_every_variable_reads_a_catalogued_metric() -> None:
    for name, dashboard in dashboards().items():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            found = re.fullmatch(r"label_values\((\w+)(?:\{.*\})?, (\w+)\)", variable["query"])
            assert found, f"{name} / ${variable['name']}: {variable['query']}"
            assert found.group(2) == variable["name"], f"{name} / ${variable['name']}"
            assert base_name(found.group(1)) in catalogued_names() or found.group(1) in catalogued_names(), (
                f"{name} / ${variable['name']} reads {found.group(1)}, which no one exports"
            )


def test_metric_names_skip_functions_labels_and_clauses() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (service, le) (rate(a_bucket{service=~"x|y"}[5m]))) '
        "/ on (service) group_left max without (instance) (b) and c offset 5m > bool 1e-09"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}


@pytest.mark.parametrize(
    ("alerts", "threshold", "dashboard_uid", "panel_titles"),
    [
        (
            ["FeatureDriftHigh", "PredictionDriftHigh"],
            model_health.PSI_ALERT_THRESHOLD,
            model_health.UID,
            ["Feature PSI", "Prediction PSI"],
        ),
        (
            ["ModelQualityDegraded"],
            model_health.PR_AUC_DROP_ALERT_THRESHOLD,
            model_health.UID,
            ["PR-AUC drop from reference"],
        ),
        (["ServingErrorRateHigh"], serving.ERROR_RATIO_ALERT_THRESHOLD, serving.UID, ["Error ratio"]),
        (["ServingLatencyHigh"], serving.LATENCY_P99_ALERT_THRESHOLD_S, serving.UID, ["Latency: total"]),
    ],
)
def test_threshold_lines_match_the_alert_rules(
    alerts: list[str], threshold: float, dashboard_uid: str, panel_titles: list[str]
) -> None:
    rules = {
        rule["alert"]: rule["expr"]
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    for alert in alerts:
        assert alert in rules, f"{alert} is not in {RULES.name}: update the dashboards' threshold lines"
        # The threshold ends the comparison (an `unless` or `and` may follow it on the next line).
        assert re.search(rf">=?\s*{re.escape(str(threshold))}(?:\s|$)", rules[alert].strip()), (alert, rules[alert])
    by_title = {panel["title"]: panel for panel in panels(dashboards()[f"{dashboard_uid}.json"])}
    for title in panel_titles:
        defaults = by_title[title]["fieldConfig"]["defaults"]
        assert threshold in [step["value"] for step in defaults["thresholds"]["steps"]], title
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "dashed", title


def test_berg_dashboards_writes_then_check_names_stale_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "console", Console(width=250, color_system=None))
    folder = tmp_path / "dashboards"
    runner = CliRunner()

    assert runner.invoke(cli.app, ["dashboards", str(folder), "--check"]).exit_code == 1
    written = runner.invoke(cli.app, ["dashboards", str(folder)])
    assert written.exit_code == 0, written.output
    assert sorted(path.name for path in folder.iterdir()) == sorted(rendered_files())
    assert runner.invoke(cli.app, ["dashboards", str(folder), "--check"]).exit_code == 0
    assert write_dashboards(folder) == [], "an up-to-date file is not rewritten"

    (folder / "berg-serving.json").write_text("{}", encoding="utf-8")
    (folder / "berg-old.json").write_text("{}", encoding="utf-8")
    checked = runner.invoke(cli.app, ["dashboards", str(folder), "--check"])
    assert checked.exit_code == 1
    assert "berg-serving.json (differs)" in checked.output
    assert "berg-old.json (not generated)" in checked.output
    assert "uv run berg dashboards" in checked.output


def test_panel_query_names_its_dashboard_and_panel() -> None:
    query = PanelQuery("berg-x", "Berg / X", "Panel", "B", 'sum(rate(m{model=~"$model"}[$__rate_interval]))', False)
    assert str(query) == "Berg / X / Panel / B"
    assert query.resolved() == 'sum(rate(m{model=~"my-model"}[5m]))'
