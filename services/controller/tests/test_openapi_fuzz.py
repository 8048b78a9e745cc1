"""Schemathesis fuzzes the controller's served OpenAPI document, valid and invalid cases, with and without the
token: no case gets a 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from services.controller.tests.helpers import TOKEN, kill_fake_pipelines, running_controller, settings_for

pytestmark = pytest.mark.integration


def test_fuzzing_the_openapi_finds_no_5xx(tmp_path: Path) -> None:
    with running_controller(settings_for(tmp_path, models=["fraud", "churn"], cooldown_s=0)) as controller:
        schema = schemathesis.openapi.from_url(f"{controller.url}/openapi.json")
        cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE))

        @given(case=cases, authenticated=st.booleans())
        @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case: Any, authenticated: bool) -> None:
            headers = {"Authorization": f"Bearer {TOKEN}"} if authenticated else None
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        call()
        # The fuzzer got past authentication and validation too: alerts were stored and decided.
        assert controller.triggers() != []
        controller.wait_finished()
    kill_fake_pipelines(tmp_path / "starts.txt")
