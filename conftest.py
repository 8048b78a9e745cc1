"""Loaded before any test module.

- prometheus_client is imported before Feast can switch it to multiprocess mode (see
  ``berg.features``), whatever order the test modules are collected in.
- ``tests`` is the repository's shared test package: imported here first, so a run of one service's
  tests alone (``pytest services/controller/tests``) does not take that folder for it.
- ``BERG_USE_CASE`` is ``fraud`` unless the run sets it: the workspace installs two use cases (fraud and
  clicks), so "the only one installed" names none, and the stacks, services and pipeline runs the tests
  start read this one name (as ``make test`` and ``make demo`` export it). A test of the selection itself
  unsets it (``tests.use_cases.installed``).
"""

import os

import prometheus_client.values  # noqa: F401

import tests  # noqa: F401

os.environ.setdefault("BERG_USE_CASE", "fraud")
