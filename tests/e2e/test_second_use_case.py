"""The second use case (ad click-through, ``usecases/clicks``) through the real local stack, selected by one setting.

Nothing in the platform names it: ``BERG_USE_CASE=clicks`` makes ``berg up`` create its topics and start every
service on its contracts, rules and features, and ``berg demo --use-case clicks`` plays its simulator. Its
traffic then goes through real Kafka, ingestion, validation (its GX rules) and the features service (its
streaming view per viewer and its campaign snapshots) into Feast.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.commands import berg, processes_mentioning

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _count(output: str, row: str) -> int:
    """The count in the demo's outcome table on the row that starts with ``row``."""
    found = re.search(rf"{re.escape(row)}\D*?(\d+)", output)
    assert found, f"no row {row!r} in the demo's output:\n{output}"
    return int(found.group(1))


@pytest.mark.timeout(3600)  # only bounds a hang: six services start, then a demo, on what may be a loaded machine
def test_clicks_traffic_goes_through_the_real_data_plane_into_feast(user_env: dict[str, str]) -> None:
    env = {**user_env, "BERG_USE_CASE": "clicks"}
    try:
        up = berg(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "impressions.raw" in up.stdout
        assert "transactions.raw" not in up.stdout

        demo = berg(
            env, "demo", "--story", "data-plane", "--use-case", "clicks", "--scored-events", "300",
            "--malformed-share", "0.1",
        )  # fmt: skip
        output = demo.stdout
        assert demo.returncode == 0, output + demo.stderr
        # Every valid impression and every label came out valid; every malformed record is a dead letter
        # with the stage its class names.
        sent = _count(output, "scored events sent to impressions.raw")
        assert sent > 0
        assert _count(output, "arrived on impressions.valid") == sent
        labels = _count(output, "labels sent to clicks.raw")
        assert labels > 0
        assert _count(output, "arrived on clicks.valid") == labels
        malformed = _count(output, "malformed records sent")
        dead = [int(n) for n in re.findall(r"in berg\.dlq: \w+ \(refused by \w+: \w+\)\D*?(\d+)", output)]
        assert malformed > 0
        assert sum(dead) == malformed
        assert "refused by ingestion: undecodable" in output
        assert "refused by validation: expectation_failed" in output
        # The features service aggregated the impressions per viewer, and the campaign snapshots
        # were built from the label store: the demo read both back from Feast's online store.
        assert "Feast online store: viewer (viewer_aggregates)" in output
        assert "Feast online store: campaign (campaign_aggregates)" in output
    finally:
        down = berg(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert processes_mentioning(env["BERG_STATE_DIR"]) == []
