"""The population: users' spending profiles and merchants' categories."""

from __future__ import annotations

import random

import pytest

from berg_fraud.simulator.profiles import KNOWN_MERCHANT_CATEGORIES, MERCHANT_CATEGORY_SPECS, make_population

pytestmark = pytest.mark.unit


def test_known_categories_are_distinct_four_digit_codes() -> None:
    assert len(KNOWN_MERCHANT_CATEGORIES) == len(MERCHANT_CATEGORY_SPECS)
    assert all(len(code) == 4 and code.isdigit() for code in KNOWN_MERCHANT_CATEGORIES)


def test_enough_merchants_cover_every_category_and_risk_level() -> None:
    population = make_population(200, len(MERCHANT_CATEGORY_SPECS), random.Random(1))
    assert {m.category.code for m in population.merchants} == KNOWN_MERCHANT_CATEGORIES
    assert {m.risk for m in population.merchants} == {"low", "medium", "high"}
    assert len({u.user_id for u in population.users}) == 200


def test_users_are_active_in_their_window_and_seldom_outside() -> None:
    for user in make_population(100, 5, random.Random(2)).users:
        active = [hour for hour in range(24) if user.is_active_at(hour)]
        assert len(active) == user.active_hours
        assert user.acceptance_at(active[0]) == 1.0
        assert 0 < user.card_not_present_propensity < 1
        assert 5 <= user.amount_level <= 500
        # Over a day, the peak rate thinned by the window adds up to the daily rate.
        day = sum(user.peak_rate_per_s * 3_600 * user.acceptance_at(hour) for hour in range(24))
        assert day == pytest.approx(user.daily_rate)


def test_a_population_needs_someone() -> None:
    with pytest.raises(ValueError, match="at least one"):
        make_population(0, 1, random.Random(1))


def test_the_simulator_has_a_spec_for_every_category_berg_knows() -> None:
    from berg_fraud.reference import MERCHANT_CATEGORIES

    assert {spec.code: spec.name for spec in MERCHANT_CATEGORY_SPECS} == dict(MERCHANT_CATEGORIES)
