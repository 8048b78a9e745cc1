"""The generative process: card transactions, their delayed labels and malformed records, in event-time order.

Arrivals are a Poisson process in event time. Legitimate payments come from
each user at their daily rate, concentrated in their active hours (thinning: a
candidate outside the window is kept with a low probability). Fraud episodes
come at a rate per pattern chosen so that each pattern's transactions make up
its share of all transactions. An episode plans a burst of transactions; a
transaction, once emitted, schedules its label. Planned transactions and
pending labels wait in one heap ordered by event time, so the stream is
ordered by event time; the heap holds at most the labels due within the
chargeback window (60 days by default) and the rest of the bursts in flight.

Every random choice comes from one of four generators seeded from the
simulation's seed and a name (population, traffic, labels, malformed), so the
same configuration gives the same bytes, and enabling malformed records leaves
the traffic that is not replaced unchanged. Event time is independent of wall
time.

Example:
    >>> config = SimulationConfig(start=datetime(2025, 1, 1, tzinfo=UTC), seed=7)
    >>> for event in bounded(simulate(config), max_scored=1_000):
    ...     producer.send(event.topic, key=event.key, value=event.value, headers=list(event.headers))
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from berg.kafka.producer import encode_event
from berg.simulator.traffic import MALFORMED_CLASS_HEADER, SCENARIO_HEADER, EventTruth, SimulatedEvent
from berg_fraud.contracts import LabelSource, LabelV1, TransactionV1
from berg_fraud.simulator.labels import LabelPolicy, chargeback_delay_s, review_delay_s
from berg_fraud.simulator.malformed import MALFORMED_CLASSES, MalformedOptions
from berg_fraud.simulator.patterns import FRAUD_PATTERNS
from berg_fraud.simulator.planned import FraudPattern, PlannedTransaction, random_event_id
from berg_fraud.simulator.profiles import Population, make_population
from berg_fraud.simulator.scenarios import BASELINE_PARAMS, ProcessParams, Scenario, make_scenario
from berg_fraud.simulator.spending import MerchantPicker, plan_legitimate
from berg_fraud.topics import LABELS_RAW, TRANSACTIONS_RAW

__all__ = ["SimulationConfig", "Simulator", "simulate"]

_DAY_S = 86_400.0
_HOUR_S = 3_600.0


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """Everything that determines a simulated stream; the same config gives the same bytes."""

    start: datetime
    """Event time at which the process starts (timezone-aware)."""
    scenario: Scenario = field(default_factory=lambda: make_scenario("baseline"))
    seed: int = 7
    users: int = 500
    merchants: int = 100
    labels: LabelPolicy = field(default_factory=LabelPolicy)
    malformed: MalformedOptions = field(default_factory=MalformedOptions)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.users < 1 or self.merchants < 1:
            raise ValueError(f"users and merchants must be at least 1, got {self.users} and {self.merchants}")


@dataclass(frozen=True, slots=True)
class _Rates:
    """Candidate arrival rates (per second) of one phase."""

    legitimate: float
    episodes: tuple[tuple[FraudPattern, float], ...]

    @property
    def total(self) -> float:
        return self.legitimate + sum(rate for _, rate in self.episodes)


@dataclass(frozen=True, slots=True)
class _PendingLabel:
    at_s: float
    transaction: PlannedTransaction
    source: LabelSource


class Simulator:
    """One configured process. :meth:`events` can be iterated any number of times, always the same."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.population: Population = make_population(config.users, config.merchants, self._rng("population"))
        self._merchant_picker = MerchantPicker(self.population)
        self._cumulative_peaks = list(itertools.accumulate(u.peak_rate_per_s for u in self.population.users))
        self._start_epoch_s = config.start.timestamp()
        onset = config.scenario.onset
        self._onset_s = None if onset is None else (onset - config.start).total_seconds()
        self._rates_before = self._rates(BASELINE_PARAMS)
        self._rates_after = self._rates(config.scenario.after_onset)

    def _rng(self, purpose: str) -> random.Random:
        # A str seed is hashed with SHA-512, the same in every process (unlike hash()).
        return random.Random(f"berg.simulator:{self.config.seed}:{purpose}")  # noqa: S311 -- synthetic data

    def expected_transactions_per_day(self, params: ProcessParams = BASELINE_PARAMS) -> float:
        """Expected transaction records per day (legitimate and fraud) while ``params`` are in force."""
        return self.population.legitimate_daily_rate / (1.0 - sum(params.fraud_shares.values()))

    def expected_span(self, transactions: int, params: ProcessParams = BASELINE_PARAMS) -> timedelta:
        """Expected event-time span of ``transactions`` transaction records."""
        return timedelta(days=transactions / self.expected_transactions_per_day(params))

    def _rates(self, params: ProcessParams) -> _Rates:
        per_day = self.expected_transactions_per_day(params)
        episodes = tuple(
            (pattern, share * per_day / FRAUD_PATTERNS[pattern].mean_transactions / _DAY_S)
            for pattern, share in params.fraud_shares.items()
            if share > 0
        )
        return _Rates(self._cumulative_peaks[-1], episodes)

    def _time(self, at_s: float) -> datetime:
        return self.config.start + timedelta(milliseconds=round(at_s * 1_000))

    def _hour(self, at_s: float) -> int:
        return int((self._start_epoch_s + at_s) // _HOUR_S) % 24

    def events(self) -> Iterator[SimulatedEvent]:
        """The endless stream in event-time order; cut it with :func:`~berg_app.simulator.bounds.bounded`."""
        traffic, labels, malformed = self._rng("traffic"), self._rng("labels"), self._rng("malformed")
        pending: list[tuple[float, int, PlannedTransaction | _PendingLabel]] = []
        order = itertools.count()
        now_s = 0.0
        while True:
            rates = self._rates_after if self._onset_s is not None and now_s >= self._onset_s else self._rates_before
            next_s = now_s + traffic.expovariate(rates.total)
            if (
                self._onset_s is not None
                and now_s < self._onset_s <= next_s
                and self._rates_after != self._rates_before
            ):
                # The rate changes at the onset; arrivals are memoryless, so restart the clock there.
                now_s = self._onset_s
                continue
            while pending and pending[0][0] <= next_s:
                _, _, item = heapq.heappop(pending)
                if isinstance(item, _PendingLabel):
                    yield self._label_event(item, labels)
                    continue
                event, label = self._transaction_event(item, labels, malformed)
                yield event
                if label is not None:
                    heapq.heappush(pending, (label.at_s, next(order), label))
            now_s = next_s
            for planned in self._arrival(now_s, rates, traffic):
                heapq.heappush(pending, (planned.at_s, next(order), planned))

    def _arrival(self, at_s: float, rates: _Rates, rng: random.Random) -> list[PlannedTransaction]:
        """What one candidate arrival becomes: a legitimate payment, nothing (thinned out), or a fraud episode."""
        pick = rng.random() * rates.total
        if pick < rates.legitimate:
            index = min(bisect.bisect_right(self._cumulative_peaks, pick), len(self.population.users) - 1)
            user = self.population.users[index]
            if rng.random() >= user.acceptance_at(self._hour(at_s)):
                return []
            params = self.config.scenario.params_at(self._time(at_s))
            return [
                plan_legitimate(
                    at_s,
                    user,
                    self._merchant_picker,
                    rng,
                    amount_multiplier=params.amount_multiplier,
                    card_not_present_shift=params.card_not_present_shift,
                )
            ]
        pick -= rates.legitimate
        pattern = rates.episodes[-1][0]
        for candidate, rate in rates.episodes:
            if pick < rate:
                pattern = candidate
                break
            pick -= rate
        victim = rng.choice(self.population.users)
        return FRAUD_PATTERNS[pattern].plan(at_s, victim, self.population, rng)

    def _transaction_event(
        self, planned: PlannedTransaction, labels: random.Random, malformed: random.Random
    ) -> tuple[SimulatedEvent, _PendingLabel | None]:
        event_time = self._time(planned.at_s)
        scenario = self.config.scenario.in_force_at(event_time)
        params = self.config.scenario.params_at(event_time)
        transaction = TransactionV1(
            event_id=planned.event_id,
            event_time=event_time,
            user_id=planned.user.user_id,
            merchant_id=planned.merchant.merchant_id,
            amount=planned.amount,
            merchant_category=planned.merchant.category.code,
            channel=planned.channel,
            country=planned.country,
        )
        key = planned.user.user_id.encode("utf-8")
        scenario_header = (SCENARIO_HEADER, scenario.encode("utf-8"))
        if params.malformed_share > 0 and malformed.random() < params.malformed_share:
            name = _weighted_choice(params.malformed_mix, malformed)
            truth = EventTruth(scenario, str(planned.event_id), planned.is_fraud, planned.pattern, malformed_class=name)
            value = MALFORMED_CLASSES[name].corrupt(transaction, self.config.malformed)
            headers = (scenario_header, (MALFORMED_CLASS_HEADER, name.encode("utf-8")))
            return SimulatedEvent(TRANSACTIONS_RAW, key, value, headers, event_time, "malformed", truth), None

        label: _PendingLabel | None = None
        if planned.is_fraud:
            delay_s = chargeback_delay_s(labels, self.config.labels, params.chargeback_delay_multiplier)
            if delay_s is not None:
                label = _PendingLabel(planned.at_s + delay_s, planned, "chargeback")
        else:
            delay_s = review_delay_s(labels, self.config.labels)
            if delay_s is not None:
                label = _PendingLabel(planned.at_s + delay_s, planned, "manual_review")
        truth = EventTruth(
            scenario,
            str(planned.event_id),
            planned.is_fraud,
            planned.pattern,
            label_due=None if label is None else self._time(label.at_s),
        )
        event = SimulatedEvent(
            TRANSACTIONS_RAW, key, encode_event(transaction), (scenario_header,), event_time, "scored", truth
        )
        return event, label

    def _label_event(self, pending: _PendingLabel, rng: random.Random) -> SimulatedEvent:
        event_time = self._time(pending.at_s)
        scenario = self.config.scenario.in_force_at(event_time)
        planned = pending.transaction
        label = LabelV1(
            event_id=random_event_id(rng),
            event_time=event_time,
            transaction_event_id=planned.event_id,
            user_id=planned.user.user_id,
            is_fraud=planned.is_fraud,
            source=pending.source,
        )
        truth = EventTruth(scenario, str(planned.event_id), planned.is_fraud, planned.pattern)
        return SimulatedEvent(
            LABELS_RAW,
            planned.user.user_id.encode("utf-8"),
            encode_event(label),
            ((SCENARIO_HEADER, scenario.encode("utf-8")),),
            event_time,
            "label",
            truth,
        )


def _weighted_choice(weights: Mapping[str, float], rng: random.Random) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[name] for name in names])[0]


def simulate(config: SimulationConfig) -> Iterator[SimulatedEvent]:
    """The endless simulated stream of ``config``, in event-time order."""
    return Simulator(config).events()
