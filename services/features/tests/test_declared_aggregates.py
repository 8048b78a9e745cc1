"""Any declared view is computed exactly: streaming rows equal the declaration read literally, whatever the order.

The views are drawn too (functions, windows, fields), over events of another domain than the
fraud case's: numbers, categories and a second key, so nothing here leans on fraud's names.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg.features.aggregation import AggregationView, WindowedAggregate
from berg_features.aggregates import HOUR, SECOND, Outcome, WindowAggregator, WindowEvent, WindowRow, rescan_row
from tests.feature_oracle import arrive_shuffled, assert_rows_equal, declared_oracle, oracle_accepts

pytestmark = pytest.mark.unit

LATENESS = HOUR
WINDOWS = (timedelta(minutes=30), timedelta(hours=1), timedelta(hours=6), timedelta(days=2))


@st.composite
def aggregates(draw: st.DrawFn, index: int) -> WindowedAggregate:
    function = draw(st.sampled_from(["count", "sum", "mean", "max", "distinct", "share"]))
    window = draw(st.sampled_from(WINDOWS))
    name = f"f{index}_{function}"
    if function == "count":
        return WindowedAggregate(name, "count", window)
    if function in ("sum", "mean", "max"):
        return WindowedAggregate(name, function, window, field=draw(st.sampled_from(["bid", "dwell"])))
    if function == "distinct":
        return WindowedAggregate(name, "distinct", window, field=draw(st.sampled_from(["campaign", "device"])))
    return WindowedAggregate(name, "share", window, field="device", value=draw(st.sampled_from(["mobile", "tv"])))


@st.composite
def views(draw: st.DrawFn) -> AggregationView:
    count = draw(st.integers(1, 6))
    return AggregationView(
        "viewer_aggregates", "viewer", "as_of_unix", tuple(draw(aggregates(i)) for i in range(count))
    )


@st.composite
def arrivals(draw: st.DrawFn) -> list[WindowEvent]:
    count = draw(st.integers(1, 50))
    events, clock = [], 0
    for index in range(count):
        clock += draw(st.sampled_from([0, SECOND, 10 * 60 * SECOND, HOUR, 5 * HOUR, 30 * HOUR]))
        values = {
            "bid": draw(st.floats(0.001, 1e6, allow_nan=False)),
            "dwell": draw(st.floats(-50, 50, allow_nan=False)),
            "campaign": draw(st.sampled_from(["c1", "c2", "c3"])),
            "device": draw(st.sampled_from(["mobile", "desktop", "tv"])),
        }
        events.append(WindowEvent(clock, f"i{index}", draw(st.sampled_from(["v1", "v2"])), values))
    return arrive_shuffled(draw, events, reach=3, replays=5)


@settings(max_examples=200, deadline=None)
@given(views(), arrivals(), st.integers(1, 8))
def test_every_declared_aggregate_equals_the_declaration_read_literally(
    view: AggregationView, stream: list[WindowEvent], batch: int
) -> None:
    aggregator = WindowAggregator(view, LATENESS)
    emitted: dict[tuple[str, int], WindowRow] = {}
    outcomes = []
    for start in range(0, len(stream), batch):
        outcomes += [aggregator.accept(event).outcome for event in stream[start : start + batch]]
        emitted |= {(row.key, row.at_us): row for row in aggregator.flush()}
    accepted = oracle_accepts(stream, LATENESS)
    assert outcomes.count(Outcome.ACCEPTED) == len(accepted)
    assert set(emitted) == {(event.key, event.event_us) for event in accepted}
    names = set(view.feature_names)
    for (key, at_us), row in emitted.items():
        expected = declared_oracle(view, accepted, key, at_us)
        assert_rows_equal(row.features, expected, f"{key}@{at_us}", names=names)
        mine = sorted(event for event in accepted if event.key == key)
        assert_rows_equal(rescan_row(view, mine, at_us).features, expected, "rescan", names=names)


def test_a_view_that_cannot_be_computed_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="count takes no field"):
        WindowedAggregate("n", "count", timedelta(hours=1), field="bid")
    with pytest.raises(ValueError, match="share takes the value"):
        WindowedAggregate("s", "share", timedelta(hours=1), field="device")
    with pytest.raises(ValueError, match="window must be positive"):
        WindowedAggregate("m", "max", timedelta(0), field="bid")
    one = WindowedAggregate("n", "count", timedelta(hours=1))
    with pytest.raises(ValueError, match=r"feature name\(s\) \['n'\] declared twice"):
        AggregationView("v", "viewer", "as_of", (one, one))
    with pytest.raises(ValueError, match="declares no aggregate"):
        AggregationView("v", "viewer", "as_of", ())
