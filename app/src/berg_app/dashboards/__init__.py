"""Berg's Grafana dashboards as code, built with the Grafana Foundation SDK.

One module per dashboard (:mod:`~berg_app.dashboards.data_plane`, :mod:`~berg_app.dashboards.features`,
:mod:`~berg_app.dashboards.serving`, :mod:`~berg_app.dashboards.model_health`, :mod:`~berg_app.dashboards.retraining`),
each with a ``dashboard()`` function; ``berg dashboards`` writes them as JSON into ``helm/berg/dashboards``,
which the Helm chart ships as ConfigMaps for Grafana's dashboard sidecar::

    from berg_app.dashboards import panel_queries, write_dashboards

    write_dashboards(Path("helm/berg/dashboards"))
    for query in panel_queries():
        print(query, query.resolved({"model": ".*"}))

The metric names come from ``docs/metrics.md`` and the services' ``metrics.py``.
"""

from berg_app.dashboards._generate import (
    DASHBOARDS,
    DEFAULT_FOLDER,
    EXAMPLE_VALUES,
    PanelQuery,
    StaleFile,
    build_dashboards,
    panel_queries,
    render,
    rendered_files,
    resolve,
    stale_files,
    write_dashboards,
)

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
