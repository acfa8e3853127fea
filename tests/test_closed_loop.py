"""The closed-loop allocator on a synthetic model whose errors compound per format."""
import numpy as np
import pytest

from sw.eval.closed_loop import MIN_FACTOR, closed_loop, fit_factors, format_sums
from sw.eval.knapsack import brute_force, solve

FORMATS = ["coarse", "mid", "fine"]
BITS = np.array([3.25, 4.25, 8.25])
TRUE = np.array([3.0, 1.2, 1.0])          # how much each format's one-at-a-time losses compound


def _problem(seed=0, L=11):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 2.0, size=L)
    loss = np.stack([base * 1.0, base * 0.3, base * 0.01], axis=1) * rng.uniform(0.5, 1.5, size=(L, 3))
    params = rng.integers(1, 5, size=L).astype(float) * 1000
    return loss, params


def _truth(loss):
    return lambda choice: float(format_sums(loss, np.asarray(choice)) @ TRUE)


def _uniform(loss):
    measure = _truth(loss)
    return {f: measure(np.full(loss.shape[0], k)) for k, f in enumerate(FORMATS)}


def test_fit_factors_recovers_the_compounding_of_uniform_measurements():
    loss, _ = _problem()
    sums = np.array([format_sums(loss, np.full(len(loss), k)) for k in range(3)])
    c = fit_factors(sums, sums @ TRUE)
    assert np.allclose(c, TRUE, rtol=1e-9)


def test_fit_factors_floor_and_unused_formats():
    c = fit_factors(np.array([[1.0, 0.0, 0.0]]), np.array([-0.5]))
    assert c[0] == pytest.approx(MIN_FACTOR) and c[1] == 1.0 and c[2] == 1.0


def test_fit_factors_shapes_are_checked():
    with pytest.raises(ValueError, match=r"sums must be \[K, F\] and measured \[K\]; got \(2, 3\) and \(3,\)"):
        fit_factors(np.ones((2, 3)), np.ones(3))


@pytest.mark.parametrize("budget_fmt", [0, 1])
def test_closed_loop_finds_the_true_optimum_and_never_loses_to_a_uniform_format(budget_fmt):
    loss, params = _problem()
    budget = float(BITS[budget_fmt])
    measure = _truth(loss)
    uni = _uniform(loss)
    res = closed_loop(loss, params, BITS, None, FORMATS, measure, uni, bits_budget=budget, max_iter=4)
    truth = brute_force(loss * TRUE[None, :], params, BITS, bits_budget=budget)
    assert res.best.measured == pytest.approx(truth.objective, rel=1e-12)
    best_uniform = min(d for f, d in uni.items() if BITS[FORMATS.index(f)] <= budget)
    assert res.best.measured <= best_uniform
    assert res.open_loop is not None and res.open_loop.iteration == 0
    assert np.array_equal(res.open_loop.choice, solve(loss, params, BITS, bits_budget=budget).choice)
    assert np.allclose(res.factors, TRUE, rtol=1e-6)


def test_the_open_loop_mixture_loses_here_and_the_loop_repairs_it():
    # at the mid format's bits the plain IP mixes coarse and fine layers and measures worse than uniform mid
    loss, params = _problem()
    uni = _uniform(loss)
    res = closed_loop(loss, params, BITS, None, FORMATS, _truth(loss), uni, bits_budget=float(BITS[1]))
    assert res.open_loop.measured > uni["mid"]
    assert res.best.kind == "ip" and res.best.iteration >= 1 and res.best.measured < uni["mid"]


def test_uniform_candidate_wins_when_no_mixture_is_measured_better():
    loss, params = _problem()
    uni = _uniform(loss)
    res = closed_loop(loss, params, BITS, None, FORMATS, lambda ch: 1e9, uni, bits_budget=float(BITS[1]))
    assert res.best.kind == "uniform" and res.best.label == "mid"
    assert res.stop in ("iteration 1 did not improve on the best mixture measured before it",
                        "iteration 1 repeats a measured mixture")


def test_closed_loop_bad_arguments():
    loss, params = _problem()
    with pytest.raises(ValueError, match=r"max_iter=0 must be a positive integer"):
        closed_loop(loss, params, BITS, None, FORMATS, _truth(loss), {}, bits_budget=4.0, max_iter=0)
    with pytest.raises(ValueError, match=r"uniform_delta names formats not in formats: int9"):
        closed_loop(loss, params, BITS, None, FORMATS, _truth(loss), {"int9": 1.0}, bits_budget=4.0)
