"""The demo's live traffic hurries while the shadow stage needs predictions, and only then."""

from __future__ import annotations

from berg_app.lifecycle.shadow_feed import ShadowFeed


class _Stream:
    """Records what the feed asked of the stream, and plays serving's counter."""

    def __init__(self, sent: float | None) -> None:
        self.sent = sent
        self.calls: list[str] = []

    def feed(self, needed: int) -> ShadowFeed:
        feed = ShadowFeed(
            needed=needed,
            sent=lambda: self.sent,
            hurry=lambda: self.calls.append("hurry"),
            resume=lambda: self.calls.append("resume"),
        )
        feed.start()
        return feed


def test_hurries_in_shadow_until_serving_sent_what_the_stage_needs() -> None:
    stream = _Stream(sent=0)
    feed = stream.feed(needed=200)
    feed("candidate")
    assert stream.calls == []
    feed("shadow")
    feed("shadow")
    stream.sent = 199
    feed("shadow")
    assert stream.calls == ["hurry"]  # once, not at every look
    assert feed.hurrying
    stream.sent = 200
    feed("shadow")
    assert stream.calls == ["hurry", "resume"]
    feed("shadow")
    feed("promoted")
    assert stream.calls == ["hurry", "resume"]


def test_resumes_its_pace_when_the_stage_ends_short_of_predictions() -> None:
    stream = _Stream(sent=0)
    feed = stream.feed(needed=200)
    feed("shadow")
    stream.sent = 10
    feed("rejected")
    assert stream.calls == ["hurry", "resume"]
    assert not feed.hurrying


def test_counts_only_the_predictions_sent_since_it_started() -> None:
    stream = _Stream(sent=500)  # an earlier shadow's
    feed = stream.feed(needed=200)
    stream.sent = 650
    feed("shadow")
    assert stream.calls == ["hurry"]
    stream.sent = 700
    feed("shadow")
    assert stream.calls == ["hurry", "resume"]


def test_a_serving_that_does_not_answer_changes_nothing() -> None:
    stream = _Stream(sent=None)
    feed = stream.feed(needed=200)
    feed("shadow")
    assert stream.calls == []  # not hurrying: no reading says the stage is short
    stream.sent = 0
    feed("shadow")
    stream.sent = None
    feed("shadow")
    assert stream.calls == ["hurry"]  # still hurrying: no reading says it has enough
    feed("promoted")
    assert stream.calls == ["hurry", "resume"]
