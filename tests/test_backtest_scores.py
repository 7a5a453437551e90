"""Scores, PIT, Diebold-Mariano, the model confidence set and the plots: against quadrature, scipy, statistics
computed by hand here, and arch's MCS."""

from __future__ import annotations

import math
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from bayesvol.backtest import (
    DrawsPredictive,
    NormalPredictive,
    StudentTPredictive,
    crps,
    diebold_mariano,
    log_score,
    mixture_log_score,
    model_confidence_set,
    newey_west_lag,
    pit,
    plot_pit,
    plot_var,
)


def crps_by_quadrature(cdf, y):
    """CRPS = int (F(x) - 1{y <= x})^2 dx, split at the observation."""
    below = integrate.quad(lambda x: cdf(x) ** 2, -np.inf, y, limit=200)[0]
    above = integrate.quad(lambda x: (1.0 - cdf(x)) ** 2, y, np.inf, limit=200)[0]
    return below + above


@pytest.mark.parametrize("y", [-3.0, -0.4, 0.0, 1.3, 4.0])
def test_normal_crps_against_quadrature(y):
    loc, scale = 0.2, 1.5
    expected = crps_by_quadrature(lambda x: stats.norm.cdf(x, loc, scale), y)
    assert crps(NormalPredictive(loc, scale), y) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("df", [3.0, 6.0])
@pytest.mark.parametrize("y", [-2.5, 0.3, 3.0])
def test_student_t_crps_against_quadrature(df, y):
    loc, scale = -0.1, 1.2
    c = scale * math.sqrt((df - 2) / df)
    expected = crps_by_quadrature(lambda x: stats.t.cdf(x, df, loc, c), y)
    assert crps(StudentTPredictive(df, loc, scale), y) == pytest.approx(expected, rel=1e-6)


def test_draws_crps_is_the_crps_of_the_empirical_distribution():
    x = np.array([0.3, -1.2, 2.0, 0.7, -0.1])
    for y in (-2.0, 0.5, 3.0):
        # Written out: the double sums of the energy form, 1/S^2 and the fair 1/(S(S-1)).
        first = sum(abs(xi - y) for xi in x) / len(x)
        pairs = sum(abs(xi - xj) for xi in x for xj in x)
        assert crps(x, y) == pytest.approx(first - 0.5 * pairs / len(x) ** 2, rel=1e-12)
        assert crps(x, y, fair=True) == pytest.approx(first - 0.5 * pairs / (len(x) * (len(x) - 1)), rel=1e-12)
        # The integral of the squared difference of the step CDF and the step at y.
        ecdf = lambda t: np.mean(x <= t)  # noqa: E731
        points = np.sort(np.append(x, y))
        integral = sum((ecdf(a) - float(y <= a)) ** 2 * (b - a) for a, b in zip(points[:-1], points[1:], strict=True))
        assert crps(x, y) == pytest.approx(integral, rel=1e-12)


def test_sample_crps_against_the_closed_form_within_monte_carlo_error():
    rng = np.random.default_rng(0)
    num_draws, n = 2000, 200
    scale = np.exp(rng.normal(0.0, 0.3, n))
    y = scale * rng.standard_normal(n)
    draws = scale * rng.standard_normal((num_draws, n))
    exact = crps(NormalPredictive(0.0, scale), y)
    sampled = crps(draws, y, fair=True)
    # Per observation the estimator's error is O(scale / sqrt(S)); the mean over n has error O(1/sqrt(n S)).
    assert np.max(np.abs(sampled - exact) / scale) < 5.0 / math.sqrt(num_draws)
    assert abs(np.mean(sampled - exact)) < 5.0 * np.mean(scale) / math.sqrt(n * num_draws) * 2.0


def test_log_scores_against_scipy():
    y = np.array([-1.0, 0.2, 2.5])
    np.testing.assert_allclose(log_score(NormalPredictive(0.1, [1.0, 2.0, 0.5]), y),
                               stats.norm.logpdf(y, 0.1, [1.0, 2.0, 0.5]), rtol=1e-12)
    df, scale = 4.0, 1.3
    c = scale * math.sqrt((df - 2) / df)
    np.testing.assert_allclose(log_score(StudentTPredictive(df, 0.0, scale), y), stats.t.logpdf(y, df, 0.0, c),
                               rtol=1e-12)


def test_draws_log_score_is_a_gaussian_kernel_density_with_silverman_bandwidth():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(400)
    sd = x.std(ddof=1)
    iqr = np.subtract(*np.quantile(x, [0.75, 0.25]))
    h = 0.9 * min(sd, iqr / 1.34) * len(x) ** (-0.2)
    kde = stats.gaussian_kde(x, bw_method=h / sd)
    for y in (-1.5, 0.0, 0.8):
        assert log_score(x, y) == pytest.approx(float(np.log(kde(y)[0])), rel=1e-10)


def test_mixture_log_score_is_the_log_of_the_mean_density():
    densities = np.array([[0.1, 0.5], [0.3, 0.2], [0.2, 0.05]])
    np.testing.assert_allclose(mixture_log_score(np.log(densities)), np.log(densities.mean(axis=0)), rtol=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        mixture_log_score(np.array([[np.nan, 0.0]]))


def test_pit_values():
    y = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(pit(NormalPredictive(0.0, 2.0), y), stats.norm.cdf(y / 2.0), rtol=1e-12)
    draws = np.array([[-2.0, -1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 2.0, 5.0], [2.0, 3.0, 6.0]])
    np.testing.assert_allclose(pit(draws, y), [0.25, 0.25, 0.25])
    rng = np.random.default_rng(20)
    sd = np.exp(rng.normal(0.0, 0.5, 2000))
    u = pit(StudentTPredictive(5.0, 0.0, sd), sd * rng.standard_t(5, 2000) * math.sqrt(3 / 5))
    assert stats.kstest(u, "uniform").pvalue > 0.01


# --- Diebold-Mariano ------------------------------------------------------------------------------------------


def dm_by_hand(a, b, lag):
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean = sum(d) / n
    gammas = [sum((d[t] - mean) * (d[t - k] - mean) for t in range(k, n)) / n for k in range(lag + 1)]
    omega = gammas[0] + 2.0 * sum((1.0 - k / (lag + 1)) * gammas[k] for k in range(1, lag + 1))
    return mean / math.sqrt(omega / n)


def test_diebold_mariano_against_a_hand_computed_statistic():
    rng = np.random.default_rng(3)
    a = rng.standard_normal(40) ** 2
    b = 0.8 * rng.standard_normal(40) ** 2
    for lag in (0, 1, 3):
        result = diebold_mariano(a, b, lag=lag)
        expected = dm_by_hand(a, b, lag)
        assert result.statistic == pytest.approx(expected, rel=1e-12)
        assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(expected)), rel=1e-12)
    default = diebold_mariano(a, b)
    assert default.details["lag"] == newey_west_lag(40) == math.floor(4 * 0.4 ** (2 / 9))
    assert diebold_mariano(a, b, lag=2, alternative="greater").p_value == pytest.approx(
        stats.norm.sf(dm_by_hand(a, b, 2)))
    assert diebold_mariano(a, b, lag=2, alternative="less").p_value == pytest.approx(
        stats.norm.cdf(dm_by_hand(a, b, 2)))


def test_diebold_mariano_small_sample_correction():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(30) ** 2, rng.standard_normal(30) ** 2
    n, h = 30, 2
    result = diebold_mariano(a, b, lag=1, horizon=h, small_sample=True)
    expected = dm_by_hand(a, b, 1) * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(expected), n - 1), rel=1e-10)
    assert result.null == "t(29)"


def test_diebold_mariano_size_and_power():
    rng = np.random.default_rng(5)
    reps, n = 1000, 300
    equal = [diebold_mariano(*rng.standard_normal((2, n)) ** 2).p_value for _ in range(reps)]
    rate = np.mean(np.array(equal) < 0.05)
    half = 3.5 * math.sqrt(0.05 * 0.95 / reps)
    assert 0.05 - half - 0.01 < rate < 0.05 + half + 0.01
    worse = [diebold_mariano(*(rng.standard_normal((2, n)) * [[1.0], [0.8]]) ** 2).p_value for _ in range(200)]
    assert np.mean(np.array(worse) < 0.05) > 0.8


def test_diebold_mariano_refuses_bad_input():
    with pytest.raises(ValueError, match="lengths differ"):
        diebold_mariano(np.ones(20), np.ones(21))
    with pytest.raises(ValueError, match="zero variance"):
        diebold_mariano(np.arange(20.0), np.arange(20.0) + 1.0)
    with pytest.raises(ValueError, match="at least"):
        diebold_mariano(np.ones(5), np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        diebold_mariano(np.append(np.ones(19), np.nan), np.zeros(20))


# --- model confidence set -------------------------------------------------------------------------------------


def test_model_confidence_set_is_arch_mcs():
    from arch.bootstrap import MCS

    rng = np.random.default_rng(6)
    e = rng.standard_normal((400, 3))
    losses = pd.DataFrame({"a": e[:, 0] ** 2, "b": 1.05 * e[:, 1] ** 2, "c": (e[:, 2] + 0.8) ** 2})
    result = model_confidence_set(losses, size=0.1, reps=300, seed=4)
    reference = MCS(losses, 0.1, reps=300, seed=4)
    reference.compute()
    assert result.included == list(reference.included) and result.excluded == list(reference.excluded)
    np.testing.assert_allclose(result.p_values[reference.pvalues.index], reference.pvalues.iloc[:, 0])
    assert "c" in result.excluded
    table = result.table()
    assert list(table.columns) == ["mean_loss", "p_value", "included"]
    assert set(table.index[table["included"]]) == set(result.included)
    assert "MCSResult" in repr(result)
    as_dict = model_confidence_set(dict(losses.items()), size=0.1, reps=300, seed=4)
    assert as_dict.included == result.included


def test_model_confidence_set_errors(monkeypatch):
    with pytest.raises(ValueError, match="at least 2 models"):
        model_confidence_set(pd.DataFrame({"a": np.ones(50)}))
    with pytest.raises(ValueError, match="same length"):
        model_confidence_set({"a": np.ones(50), "b": np.ones(49)})
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        model_confidence_set(np.ones((50, 2)), size=1.0)
    monkeypatch.setitem(sys.modules, "arch.bootstrap", None)
    with pytest.raises(ImportError, match="needs the 'arch' package"):
        model_confidence_set(np.ones((50, 2)))


# --- plots ----------------------------------------------------------------------------------------------------


def test_plot_var_marks_the_exceedances():
    rng = np.random.default_rng(7)
    returns = pd.Series(rng.standard_normal(300), index=pd.bdate_range("2022-01-03", periods=300))
    var = np.full(300, 1.645)
    ax = plot_var(returns, var, es=2.06, level=0.05, title="normal VaR")
    hits = int(np.sum(returns.to_numpy() < -1.645))
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["returns", "VaR 5%", "ES 5%", f"exceedances ({hits} of 300)"]
    assert len(ax.collections[0].get_offsets()) == hits
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="lengths differ"):
        plot_var(returns, var[:10])


def test_plot_pit_draws_a_histogram_with_a_band():
    rng = np.random.default_rng(8)
    fig, ax = plt.subplots()
    out = plot_pit(pit(DrawsPredictive(rng.standard_normal((500, 400))), rng.standard_normal(400)), bins=8, ax=ax)
    assert out is ax and len(ax.containers[0]) == 8
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        plot_pit([0.5, 1.5])
