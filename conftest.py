"""Loaded before any test module.

- prometheus_client is imported before Feast can switch it to multiprocess mode (see
  ``berg.features``), whatever order the test modules are collected in.
- ``tests`` is the repository's shared test package: imported here first, so a run of one service's
  tests alone (``pytest services/controller/tests``) does not take that folder for it.
"""

import prometheus_client.values  # noqa: F401

import tests  # noqa: F401
