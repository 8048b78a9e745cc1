"""Loaded before any test module: prometheus_client is imported before Feast can switch it to
multiprocess mode (see ``berg.features``), whatever order the test modules are collected in."""

import prometheus_client.values  # noqa: F401
