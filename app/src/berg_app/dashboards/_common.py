"""What every Berg dashboard shares: the ``${datasource}`` variable, label variables, panels and PromQL helpers.

A dashboard module lists its rows of panels and hands them to :func:`assemble`::

    assemble(
        uid="berg-example",
        title="Berg / Example",
        description="What it shows.",
        variables=[label_variable("service", "Service", "berg_consumer_records_total")],
        rows=[Row("Kafka", [timeseries("Records consumed /s", "...", [Query(rate("berg_consumer_records_total"))])])],
    )

Every panel and every query reads the Prometheus data source chosen in the ``${datasource}`` variable,
never a hard-coded data source uid, so the same JSON works in any Grafana.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import heatmap as heatmap_builders
from grafana_foundation_sdk.builders import prometheus as prometheus_builders
from grafana_foundation_sdk.builders import stat as stat_builders
from grafana_foundation_sdk.builders import table as table_builders
from grafana_foundation_sdk.builders import timeseries as timeseries_builders
from grafana_foundation_sdk.cog import builder as cog_builder
from grafana_foundation_sdk.cog import variants as cog_variants
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import heatmap as heatmap_models
from grafana_foundation_sdk.models import prometheus as prometheus_models

__all__ = [
    "DATASOURCE",
    "RATE_INTERVAL",
    "TAG",
    "Query",
    "Row",
    "assemble",
    "heatmap",
    "increase",
    "label_variable",
    "quantile",
    "rate",
    "stat",
    "table",
    "timeseries",
]

DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="${datasource}")
"""The Prometheus data source picked in the dashboard's ``datasource`` variable."""

RATE_INTERVAL = "$__rate_interval"
"""Grafana's range for ``rate()``: at least four scrape intervals, so a rate never falls between two samples."""

TAG = "berg"
"""The tag every Berg dashboard carries; the dashboards' link menu lists the dashboards with this tag."""

_PANEL_HEIGHT = 8
_STAT_HEIGHT = 4


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel.

    Attributes:
        expr: the expression; it may use ``$__rate_interval``, ``$__range`` and the dashboard's variables.
        legend: Grafana's legend format, e.g. ``{{service}} {{topic}}``.
        instant: evaluate at the end of the range only (stats and tables).
        table: return a table (one row per series, labels as columns) instead of time series.
    """

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right and wrapped at the grid's 24 columns."""

    title: str
    panels: Sequence[cog_builder.Builder[dashboard_models.Panel]]


def rate(metric: str, *, by: Sequence[str] = (), where: str = "") -> str:
    """``sum by (<by>) (rate(<metric>{<where>}[$__rate_interval]))``: a counter's per-second rate."""
    return _sum(f"rate({metric}{_selector(where)}[{RATE_INTERVAL}])", by)


def increase(metric: str, *, by: Sequence[str] = (), where: str = "", window: str = RATE_INTERVAL) -> str:
    """``sum by (<by>) (increase(<metric>{<where>}[<window>]))``: how much a counter grew over the window."""
    return _sum(f"increase({metric}{_selector(where)}[{window}])", by)


def quantile(q: float, histogram: str, *, by: Sequence[str] = (), where: str = "") -> str:
    """The ``q`` quantile of a histogram (its base name, without ``_bucket``) over ``$__rate_interval``."""
    buckets = rate(f"{histogram}_bucket", by=[*by, "le"], where=where)
    return f"histogram_quantile({q}, {buckets})"


def _sum(inner: str, by: Sequence[str]) -> str:
    return f"sum by ({', '.join(by)}) ({inner})" if by else f"sum({inner})"


def _selector(where: str) -> str:
    return f"{{{where}}}" if where else ""


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    """The ``datasource`` variable: which Prometheus every panel reads."""
    return dashboard_builders.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(
    name: str, label: str, metric: str, *, where: str = "", description: str = ""
) -> dashboard_builders.QueryVariable:
    """A multi-value variable over the values of label ``name`` on ``metric``, "All" (every value) by default.

    Queries use it as a regex matcher (``name=~"$name"``), so "All" (``.*``) and several values both work.
    """
    variable = (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}{_selector(where)}, {name})")
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(dashboard_models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )
    return variable.description(description) if description else variable


def _target(query: Query, index: int) -> prometheus_builders.Dataquery:
    target = (
        prometheus_builders.Dataquery()
        .datasource(DATASOURCE)
        .expr(query.expr)
        .legend_format(query.legend or "__auto")
        .ref_id(chr(ord("A") + index))
    )
    if query.instant:
        target.instant()
    else:
        target.range()
    if query.table:
        target.format(prometheus_models.PromQueryFormat.TABLE)
    return target


def _targets(queries: Sequence[Query]) -> list[cog_builder.Builder[cog_variants.Dataquery]]:
    return [_target(query, index) for index, query in enumerate(queries)]


def _thresholds(steps: Sequence[tuple[float, str]]) -> dashboard_builders.ThresholdsConfig:
    base = dashboard_models.Threshold(value=None, color="green")
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(dashboard_models.ThresholdsMode.ABSOLUTE)
        .steps([base, *(dashboard_models.Threshold(value=value, color=color) for value, color in steps)])
    )


def timeseries(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str,
    width: int = 12,
    height: int = _PANEL_HEIGHT,
    bars: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    threshold: float | None = None,
    no_value: str = "",
) -> timeseries_builders.Panel:
    """A time series panel; ``threshold`` draws a dashed red line at an alert's threshold.

    Args:
        title: the panel's title, unique within its dashboard.
        description: what the panel shows and how to read it (the panel's info tooltip).
        queries: the expressions, one series set each.
        unit: Grafana's unit id (``s``, ``percentunit``, ``currencyEUR``, ``short``...).
        width: columns out of 24.
        height: grid rows.
        bars: draw bars (counts of rare events) instead of lines.
        minimum: the y axis' lower bound.
        maximum: the y axis' upper bound.
        threshold: the alert rule's threshold, drawn as a line.
        no_value: what to show when the queries return nothing (and why that can be normal).
    """
    panel = (
        timeseries_builders.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .unit(unit)
        .span(width)
        .height(height)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common_models.TooltipDisplayMode.MULTI)
            .sort(common_models.SortOrder.DESCENDING)
        )
        .fill_opacity(10)
    )
    if bars:
        panel.draw_style(common_models.GraphDrawStyle.BARS).fill_opacity(80)
    if minimum is not None:
        panel.min(minimum)
    if maximum is not None:
        panel.max(maximum)
    if threshold is not None:
        panel.thresholds(_thresholds([(threshold, "red")])).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common_models.GraphTresholdsStyleMode.DASHED)
        )
    if no_value:
        panel.no_value(no_value)
    return panel


def stat(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    unit: str,
    width: int = 6,
    height: int = _STAT_HEIGHT,
    mappings: Sequence[tuple[float, str, str]] = (),
    thresholds: Sequence[tuple[float, str]] = (),
    no_value: str = "",
) -> stat_builders.Panel:
    """A single-value panel showing the last value of each series.

    Args:
        title: the panel's title, unique within its dashboard.
        description: what the value means.
        queries: the expressions, usually one instant query.
        unit: Grafana's unit id.
        width: columns out of 24.
        height: grid rows.
        mappings: ``(value, text, color)``: show ``text`` in ``color`` instead of the number ``value``.
        thresholds: ``(value, color)`` steps above a green base.
        no_value: what to show when the queries return nothing.
    """
    panel = (
        stat_builders.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .unit(unit)
        .span(width)
        .height(height)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .color_mode(common_models.BigValueColorMode.VALUE)
        .text_mode(common_models.BigValueTextMode.AUTO)
        .thresholds(_thresholds(thresholds))
    )
    if mappings:
        panel.mappings(
            [
                dashboard_models.ValueMap(
                    options={_number(value): dashboard_models.ValueMappingResult(text=text, color=color)}
                )
                for value, text, color in mappings
            ]
        )
    if no_value:
        panel.no_value(no_value)
    return panel


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def table(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    hidden_columns: Sequence[str] = ("Time", "Value", "__name__"),
    width: int = 12,
    height: int = _PANEL_HEIGHT,
) -> table_builders.Panel:
    """A table of the series' labels (one row per series), from instant table queries."""
    organize = dashboard_models.DataTransformerConfig(
        id_val="organize", options={"excludeByName": dict.fromkeys(hidden_columns, True)}
    )
    return (
        table_builders.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))
        .span(width)
        .height(height)
        .show_header(True)
        .with_transformation(organize)
    )


def heatmap(
    title: str, description: str, query: Query, *, unit: str, width: int = 12, height: int = _PANEL_HEIGHT
) -> heatmap_builders.Panel:
    """A heatmap of a histogram's buckets: ``query`` sums the buckets by ``le`` (its legend is ``{{le}}``)."""
    target = _target(query, 0).format(prometheus_models.PromQueryFormat.HEATMAP)
    return (
        heatmap_builders.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets([target])
        .span(width)
        .height(height)
        .calculate(False)
        .color(
            heatmap_builders.HeatmapColorOptions()
            .mode(heatmap_models.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(heatmap_models.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            .steps(64)
        )
        .y_axis(heatmap_builders.YAxisConfig().unit(unit))
        .rows_frame(heatmap_builders.RowsHeatmapOptions().layout(common_models.HeatmapCellLayout.LE))
        .show_legend()
        .show_tooltip()
    )


def assemble(
    *,
    uid: str,
    title: str,
    description: str,
    tags: Sequence[str] = (),
    variables: Sequence[cog_builder.Builder[dashboard_models.VariableModel]] = (),
    rows: Sequence[Row],
) -> dashboard_models.Dashboard:
    """Build a dashboard: the datasource variable first, then ``variables``, then ``rows`` numbered top to bottom.

    Panel ids run 1, 2, ... over rows and panels in layout order, so they are stable while the layout is.
    """
    builder = (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG, *tags])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .annotations([])
        .link(
            dashboard_builders.DashboardLink("Berg dashboards")
            .type(dashboard_models.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
        .with_variable(datasource_variable())
    )
    for variable in variables:
        builder.with_variable(variable)
    for row in rows:
        builder.with_row(dashboard_builders.Row(row.title))
        for panel in row.panels:
            builder.with_panel(panel)
    built = builder.build()
    for number, built_panel in enumerate(built.panels or [], start=1):
        built_panel.id_val = number
    return built
