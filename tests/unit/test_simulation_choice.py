"""The simulator's choice model, true-preference model, arm parsing and per-round metrics."""
from __future__ import annotations

import numpy as np
import pytest

from harness.simulation.choice import NO_CHOICE, ChoiceModel
from harness.simulation.loop import Arm
from harness.simulation.preferences import TruePreferences, encode_ids, fit_preferences, load_or_fit, rmse
from harness.simulation.round_metrics import jaccard_overlap, round_summary, sample_pairs

N = 40_000   # simulated users per statistical check: standard errors well below the tolerances


# --- choice model ----------------------------------------------------------------------------
def test_examination_follows_the_documented_position_bias():
    log = ChoiceModel(position_bias="log").examination(4)
    assert np.allclose(log, [1.0, 1 / np.log2(3), 0.5, 1 / np.log2(5)])
    cascade = ChoiceModel(position_bias="cascade", stop=0.2).examination(3)
    assert np.allclose(cascade, [1.0, 0.8, 0.64])
    assert np.allclose(ChoiceModel(position_bias="none").examination(3), 1.0)


@pytest.mark.parametrize("bias", ["log", "cascade"])
def test_drawn_examination_matches_its_marginals(bias):
    model = ChoiceModel(position_bias=bias, stop=0.2)
    examined = model.examine(N, 10, np.random.default_rng(1))
    assert np.allclose(examined.mean(axis=0), model.examination(10), atol=0.015)
    if bias == "cascade":   # top-down: nobody examines rank r+1 without rank r
        assert not (examined[:, 1:] & ~examined[:, :-1]).any()


def test_equal_utilities_favour_the_top_of_the_list():
    model = ChoiceModel(sensitivity=1.0, outside_utility=-50.0)   # outside option never wins
    picks = model.choose(np.full((N, 5), 3.0), np.random.default_rng(2))
    share = np.bincount(picks, minlength=5) / N
    assert share[0] > share[1] > share[2] > share[3] > share[4] > 0
    # Exact expectation: average over examined sets of 1/|examined| for each examined rank.
    e = model.examination(5)
    rng = np.random.default_rng(3)
    sets = rng.random((200_000, 5)) < e
    expected = (sets / sets.sum(axis=1, keepdims=True)).mean(axis=0)
    assert np.allclose(share, expected, atol=0.01)


def test_without_position_bias_the_better_item_wins_by_the_logit():
    model = ChoiceModel(sensitivity=1.0, outside_utility=-50.0, position_bias="none")
    picks = model.choose(np.tile([3.0, 4.0], (N, 1)), np.random.default_rng(4))
    assert abs((picks == 1).mean() - np.e / (1 + np.e)) < 0.01


def test_the_outside_option_takes_users_from_poor_lists():
    model = ChoiceModel(sensitivity=1.0, outside_utility=3.5, position_bias="none")
    rng = np.random.default_rng(5)
    one_good = model.choose(np.full((N, 1), 3.5), rng)
    assert abs((one_good == NO_CHOICE).mean() - 0.5) < 0.01          # equal utility: a coin flip
    bad = model.choose(np.full((N, 3), 1.0), rng)
    good = model.choose(np.full((N, 3), 5.0), rng)
    assert (bad == NO_CHOICE).mean() > 0.8 > 0.1 > (good == NO_CHOICE).mean()
    p = model.probabilities(np.array([[1.0, 1.0, 1.0]]), np.ones((1, 3), bool))[0]
    assert np.isclose(p[-1], np.exp(3.5) / (np.exp(3.5) + 3 * np.e))


def test_padding_and_unexamined_items_are_never_chosen():
    model = ChoiceModel(outside_utility=0.0, position_bias="none")
    u = np.tile([5.0, np.nan, 4.0], (2000, 1))
    picks = model.choose(u, np.random.default_rng(6))
    assert 1 not in set(picks.tolist())
    p = model.probabilities(np.array([[5.0, 5.0]]), np.array([[True, False]]))[0]
    assert p[1] == 0.0 and np.isclose(p.sum(), 1.0)


def test_choices_are_deterministic_under_a_seed():
    model = ChoiceModel()
    u = np.random.default_rng(0).uniform(1, 5, (500, 10))
    a = model.choose(u, np.random.default_rng(42))
    b = model.choose(u, np.random.default_rng(42))
    c = model.choose(u, np.random.default_rng(43))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_invalid_choice_model_is_refused():
    with pytest.raises(ValueError):
        ChoiceModel(position_bias="sideways")
    with pytest.raises(ValueError):
        ChoiceModel(position_bias="cascade", stop=1.0)


# --- true preferences --------------------------------------------------------------------------
def test_preferences_beat_the_global_mean_on_held_out_ratings(ml100k):
    user_rows, item_rows, users, items = encode_ids(ml100k.user_ids, ml100k.item_ids)
    ratings = ml100k.values.astype(np.float64)
    test = np.random.default_rng(0).random(len(ratings)) < 0.1
    prefs = fit_preferences(user_rows[~test], item_rows[~test], ratings[~test], len(users), len(items),
                            dim=8, iterations=6, seed=0)
    baseline = float(np.sqrt(np.mean((ratings[test] - ratings[~test].mean()) ** 2)))
    held_out = rmse(prefs, user_rows[test], item_rows[test], ratings[test])
    assert held_out < 0.95 * baseline          # measured: ~0.92 against ~1.13
    assert prefs.utilities(np.array([0, 1])).min() >= 1.0 and prefs.utilities(np.array([0])).max() <= 5.0


def test_fit_is_seeded_and_cached(tmp_path, ml100k):
    small = ml100k.head(3000)
    a, path, cached = load_or_fit(small, tmp_path, dim=4, iterations=3, seed=7)
    b, path_again, cached_again = load_or_fit(small, tmp_path, dim=4, iterations=3, seed=7)
    assert not cached and cached_again and path == path_again
    assert np.array_equal(a.item_factors, b.item_factors) and a.item_ids == b.item_ids
    other, other_path, _ = load_or_fit(small, tmp_path, dim=4, iterations=3, seed=8)
    assert other_path != path and not np.allclose(other.item_factors, a.item_factors)
    assert isinstance(TruePreferences.load(path), TruePreferences)


# --- arms and per-round metrics ------------------------------------------------------------------
def test_arm_specs_parse_and_validate():
    assert Arm.parse("diverse:diversity=0.5,exploration=0.2") == Arm("diverse", 0.5, 0.2)
    assert Arm.parse("plain") == Arm("plain", 0.0, 0.0)
    assert Arm.parse("co:cooccurrence_weight=2.5") == Arm("co", 0.0, 0.0, 2.5)
    assert Arm.parse("plain").cooccurrence_weight is None         # serving's default
    for bad in ("x:diversity=2", "x:temperature=1", ":diversity=0", "a b:diversity=0", "x:diversity=lots",
                "x:cooccurrence_weight=-1", "x" * 33):
        with pytest.raises(ValueError):
            Arm.parse(bad)


def test_an_experiment_splits_the_simulated_users_by_the_contract():
    from types import SimpleNamespace

    from harness.simulation.experiment import experiment_spec, split_population
    from harness.simulation.loop import Population
    from streamrec.contracts.experiments import bucket

    population = object.__new__(Population)
    population.user_ids = [str(u) for u in range(300)]
    population.utilities = np.arange(300 * 4, dtype=float).reshape(300, 4)
    population.consumed = np.zeros((300, 4), dtype=bool)
    arms = [Arm("a", 0.0, 0.0), Arm("b", 1.0, 0.2), Arm("c", 0.5, 0.0, 0.0)]
    spec = experiment_spec("sim", arms)
    assert [a["share"] for a in spec["arms"]] == [1 / 3] * 3 and spec["arms"][2]["cooccurrence_weight"] == 0.0
    parts = split_population(population, "sim", arms)
    assert sorted(u for part in parts.values() for u in part.user_ids) == sorted(population.user_ids)
    for name, part in parts.items():
        expected = "abc"[min(2, int(bucket("sim", part.user_ids[0]) * 3))]
        assert name == expected
        rows = [int(u) for u in part.user_ids]
        assert np.array_equal(part.utilities, population.utilities[rows])
        part.consumed[:] = True                                   # each part consumes on its own
    assert not population.consumed.any()
    with pytest.raises(ValueError, match="got none"):
        split_population(SimpleNamespace(user_ids=["1"]), "sim", arms)


def test_jaccard_overlap_by_hand():
    lists = np.array([[0, 1, 2], [0, 1, 3], [4, 5, -1]])
    # pairs (0,1): |{0,1}| / |{0,1,2,3}| = 0.5; (0,2) and (1,2): 0
    assert np.isclose(jaccard_overlap(lists, 6), 0.5 / 3)
    assert np.isclose(jaccard_overlap(lists, 6, np.array([[0, 1]])), 0.5)
    assert jaccard_overlap(np.array([[1, 2], [2, 1]]), 3) == 1.0


def test_sampled_pairs_are_distinct_and_ordered():
    pairs = sample_pairs(100, 500, np.random.default_rng(0))
    assert len(pairs) == 500 and (pairs[:, 0] < pairs[:, 1]).all()
    assert len({tuple(p) for p in pairs.tolist()}) == 500


def test_round_summary_by_hand():
    lists = np.array([[0, 1], [0, 2]])
    utilities = np.array([[4.0, 2.0], [3.0, np.nan]])
    chosen = np.array([1, -1])
    s = round_summary(lists, utilities, chosen, n_items=4, oracle_utility=np.array([5.0, 4.0]))
    assert s["choice_rate"] == 0.5 and s["utility_chosen"] == 2.0 and s["utility_list"] == 3.0
    assert s["coverage"] == 0.75 and np.isclose(s["gini"], 0.375) and s["entropy"] == 1.5
    assert np.isclose(s["jaccard"], 1 / 3) and s["utility_oracle"] == 4.5
