"""VaR backtests on hit sequences: each statistic against its formula written out here, its null law against
scipy, size near nominal and power against a misspecified VaR in vectorised Monte Carlo runs with fixed seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesvol.backtest import (
    BacktestResult,
    backtest_table,
    christoffersen_independence,
    conditional_coverage,
    dynamic_quantile,
    exceedances,
    kupiec,
    traffic_light,
    var_backtest,
)
from bayesvol.backtest import coverage as cov

HITS = [0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
ISOLATED = [0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]


def plain_log(x):
    """log with 0 log 0 = 0 handled by the callers: only called on positive numbers."""
    return math.log(x)


def counts(hits):
    n00 = n01 = n10 = n11 = 0
    for previous, current in zip(hits[:-1], hits[1:], strict=True):
        if previous == 0 and current == 0:
            n00 += 1
        elif previous == 0 and current == 1:
            n01 += 1
        elif previous == 1 and current == 0:
            n10 += 1
        else:
            n11 += 1
    return n00, n01, n10, n11


def term(n, p):
    """n * log(p), zero when n is zero."""
    return 0.0 if n == 0 else n * plain_log(p)


# --- Kupiec ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.05, 0.1, 0.3])
def test_kupiec_against_its_formula_and_chi2_1(level):
    x, n = sum(HITS), len(HITS)  # 8 exceptions in 25
    rate = x / n
    expected = -2.0 * ((n - x) * math.log(1 - level) + x * math.log(level)
                       - (n - x) * math.log(1 - rate) - x * math.log(rate))
    result = kupiec(HITS, level)
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.p_value == pytest.approx(stats.chi2.sf(expected, 1), rel=1e-12)
    assert result.null == "chi2(1)"
    assert result.details["exceptions"] == 8 and result.details["observations"] == 25


def test_kupiec_with_no_exceptions_uses_zero_log_zero():
    n, level = 30, 0.05
    result = kupiec(np.zeros(n, dtype=bool), level)
    assert result.statistic == pytest.approx(-2.0 * n * math.log(1 - level), rel=1e-12)


def test_kupiec_accepts_booleans_and_a_series():
    as_bool = kupiec(np.array(HITS, dtype=bool), 0.1)
    as_series = kupiec(pd.Series(HITS, index=pd.date_range("2020-01-01", periods=len(HITS))), 0.1)
    assert as_bool.statistic == as_series.statistic == kupiec(HITS, 0.1).statistic


# --- Christoffersen -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hits", [HITS, ISOLATED], ids=["clustered", "isolated"])
def test_independence_against_its_formula_with_explicit_counts(hits):
    n00, n01, n10, n11 = counts(hits)
    pi01 = n01 / (n00 + n01)
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    log_null = term(n00 + n10, 1 - pi) + term(n01 + n11, pi)
    log_markov = term(n00, 1 - pi01) + term(n01, pi01) + term(n10, 1 - pi11) + term(n11, pi11)
    expected = -2.0 * (log_null - log_markov)
    result = christoffersen_independence(hits)
    assert result.statistic == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert result.p_value == pytest.approx(stats.chi2.sf(expected, 1), rel=1e-12)
    assert (result.details["n00"], result.details["n01"], result.details["n10"], result.details["n11"]) == (
        n00, n01, n10, n11)


def test_hand_counts_of_the_clustered_sequence():
    assert counts(HITS) == (12, 5, 4, 3)


@pytest.mark.parametrize("level", [0.05, 0.2])
def test_conditional_coverage_against_its_formula_and_chi2_2(level):
    n00, n01, n10, n11 = counts(HITS)
    pi01, pi11 = n01 / (n00 + n01), n11 / (n10 + n11)
    log_null = term(n00 + n10, 1 - level) + term(n01 + n11, level)
    log_markov = term(n00, 1 - pi01) + term(n01, pi01) + term(n10, 1 - pi11) + term(n11, pi11)
    expected = -2.0 * (log_null - log_markov)
    result = conditional_coverage(HITS, level)
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.p_value == pytest.approx(stats.chi2.sf(expected, 2), rel=1e-12)
    # The likelihood ratio on the transitions is LR_uc of hits 2..T plus LR_ind.
    lr_uc_tail = kupiec(HITS[1:], level).statistic
    assert expected == pytest.approx(lr_uc_tail + christoffersen_independence(HITS).statistic, rel=1e-12)


# --- dynamic quantile -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lags", [1, 2, 4])
def test_dynamic_quantile_against_least_squares_written_out(lags):
    rng = np.random.default_rng(5)
    level = 0.1
    hits = (rng.random(60) < 0.15).astype(int)
    var = 1.0 + rng.random(60)
    rows, regressand = [], []
    for t in range(lags, len(hits)):
        rows.append([1.0] + [hits[t - k] - level for k in range(1, lags + 1)] + [var[t]])
        regressand.append(hits[t] - level)
    x, y = np.array(rows), np.array(regressand)
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    expected = float(beta @ x.T @ x @ beta) / (level * (1 - level))
    result = dynamic_quantile(hits, level, var=var, lags=lags)
    assert result.statistic == pytest.approx(expected, rel=1e-9)
    assert result.null == f"chi2({lags + 2})"
    assert result.p_value == pytest.approx(stats.chi2.sf(expected, lags + 2), rel=1e-9)


def test_dynamic_quantile_without_var_and_with_a_constant_var_drops_a_degree_of_freedom():
    rng = np.random.default_rng(6)
    hits = (rng.random(200) < 0.05).astype(int)
    without = dynamic_quantile(hits, 0.05, lags=3)
    constant = dynamic_quantile(hits, 0.05, var=np.full(200, 1.65), lags=3)
    assert without.null == constant.null == "chi2(4)"
    assert constant.statistic == pytest.approx(without.statistic, rel=1e-8)


# --- traffic light --------------------------------------------------------------------------------------------


def binomial_cdf(x, n, p):
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(x + 1))


@pytest.mark.parametrize("exceptions", range(0, 16))
def test_traffic_light_zones_at_250_days_and_99_percent(exceptions):
    hits = np.zeros(250, dtype=int)
    hits[:exceptions] = 1
    result = traffic_light(hits, 0.01)
    zone = "green" if exceptions <= 4 else ("yellow" if exceptions <= 9 else "red")
    assert result.zone == result.decision == zone
    assert result.reject == (zone == "red")
    assert result.statistic == exceptions
    assert result.details["cumulative_probability"] == pytest.approx(binomial_cdf(exceptions, 250, 0.01), rel=1e-10)
    assert result.p_value == pytest.approx(1.0 - binomial_cdf(exceptions - 1, 250, 0.01), abs=1e-12)
    plus = {5: 0.40, 6: 0.50, 7: 0.65, 8: 0.75, 9: 0.85}
    assert result.details["plus_factor"] == (0.0 if exceptions <= 4 else plus.get(exceptions, 1.0))


def test_traffic_light_for_another_window_uses_the_binomial_thresholds():
    hits = np.zeros(500, dtype=int)
    hits[:9] = 1  # P(X <= 9) for Binomial(500, 0.01) is 0.968: yellow
    result = traffic_light(hits, 0.01)
    assert result.zone == "yellow" and "plus_factor" not in result.details


# --- tables ---------------------------------------------------------------------------------------------------


def test_result_table_and_repr():
    result = kupiec(HITS, 0.05)
    table = result.table()
    assert list(table.index) == ["Kupiec POF"]
    assert {"statistic", "p_value", "null", "decision", "exceptions"} <= set(table.columns)
    assert "Kupiec POF" in repr(result) and "p_value" in repr(result)
    assert isinstance(result, BacktestResult) and result.reject == (result.p_value < 0.05)
    both = backtest_table({"A": result, "B": kupiec(HITS, 0.3)})
    assert both.index.names == ["model", "test"] and len(both) == 2


def test_var_backtest_runs_every_test_on_returns_and_var():
    rng = np.random.default_rng(2)
    sd = np.exp(rng.normal(0.0, 0.3, 600))
    returns = sd * rng.standard_normal(600)
    var = -stats.norm.ppf(0.05) * sd
    table = var_backtest(returns, var, 0.05)
    hits = exceedances(returns, var)
    assert table.loc["Kupiec POF", "statistic"] == pytest.approx(kupiec(hits, 0.05).statistic)
    assert table.loc["Basel traffic light", "observations"] == 250
    assert table.loc["Engle-Manganelli DQ", "statistic"] == pytest.approx(
        dynamic_quantile(hits, 0.05, var=var).statistic)


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5])
def test_levels_outside_the_unit_interval_are_refused(level):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        kupiec(HITS, level)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        conditional_coverage(HITS, level)


def test_bad_hits_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        kupiec([0, 1, np.nan] + [0] * 20, 0.05)
    with pytest.raises(ValueError, match="only 0/1"):
        kupiec([0, 2] + [0] * 20, 0.05)
    with pytest.raises(ValueError, match="at least 10"):
        christoffersen_independence([0, 1, 0])
    with pytest.raises(ValueError, match="at least"):
        dynamic_quantile([0] * 12 + [1], 0.05, lags=4)
    with pytest.raises(ValueError, match="lengths differ"):
        dynamic_quantile(HITS * 4, 0.05, var=np.ones(99))
    with pytest.raises(ValueError, match="tail probability"):
        traffic_light([0] * 250, 0.99)
    with pytest.raises(ValueError, match="lengths differ"):
        exceedances(np.zeros(10), np.ones(9))


# --- Monte Carlo: size and power ------------------------------------------------------------------------------

REPS, LENGTH, ALPHA, NOMINAL = 2000, 500, 0.05, 0.05


def mc_band(rate, reps=REPS, z=3.5):
    """The Monte Carlo band of a rejection frequency of ``reps`` replications around the probability ``rate``."""
    half = z * math.sqrt(rate * (1 - rate) / reps)
    return rate - half, rate + half


@pytest.fixture(scope="module")
def null_hits():
    rng = np.random.default_rng(20240519)
    sd = np.exp(rng.normal(0.0, 0.4, (REPS, LENGTH)))
    returns = sd * rng.standard_normal((REPS, LENGTH))
    var = -stats.norm.ppf(ALPHA) * sd
    return (returns < -var).astype(np.int64), var


def test_the_kernels_agree_with_the_public_functions(null_hits):
    hits, var = null_hits
    hits, var = hits[:3], var[:3]
    uc, ind = cov._kupiec_statistic(hits, ALPHA), cov._independence_statistic(hits)
    cc, dq = cov._conditional_coverage_statistic(hits, ALPHA), cov._dynamic_quantile_statistic(hits, ALPHA, var)[0]
    for i in range(3):
        assert uc[i] == pytest.approx(kupiec(hits[i], ALPHA).statistic)
        assert ind[i] == pytest.approx(christoffersen_independence(hits[i]).statistic)
        assert cc[i] == pytest.approx(conditional_coverage(hits[i], ALPHA).statistic)
        assert dq[i] == pytest.approx(dynamic_quantile(hits[i], ALPHA, var=var[i]).statistic)


def test_kupiec_size_matches_its_exact_binomial_size(null_hits):
    hits, _ = null_hits
    rejected = stats.chi2.sf(cov._kupiec_statistic(hits, ALPHA), 1) < NOMINAL
    # Exact size of the test: the binomial mass of the exception counts it rejects.
    x = np.arange(LENGTH + 1)
    reject_x = stats.chi2.sf(cov._kupiec_statistic(
        (np.arange(LENGTH)[None, :] < x[:, None]).astype(int), ALPHA), 1) < NOMINAL
    exact = float(stats.binom.pmf(x, LENGTH, ALPHA)[reject_x].sum())
    assert abs(exact - NOMINAL) < 0.015
    low, high = mc_band(exact)
    assert low < rejected.mean() < high


@pytest.mark.parametrize("test", ["independence", "conditional coverage", "dq"])
def test_size_near_nominal(null_hits, test):
    hits, var = null_hits
    if test == "independence":
        p = stats.chi2.sf(cov._independence_statistic(hits), 1)
    elif test == "conditional coverage":
        p = stats.chi2.sf(cov._conditional_coverage_statistic(hits, ALPHA), 2)
    else:
        statistic, rank = cov._dynamic_quantile_statistic(hits, ALPHA, var)
        assert np.all(rank == 6)
        p = stats.chi2.sf(statistic, rank)
    # The laws are asymptotic (and the counts discrete): allow 1.5 points besides the Monte Carlo band.
    low, high = mc_band(NOMINAL)
    assert low - 0.015 < (p < NOMINAL).mean() < high + 0.015


def test_power_against_a_variance_that_is_too_small():
    rng = np.random.default_rng(11)
    sd = np.exp(rng.normal(0.0, 0.4, (500, LENGTH)))
    returns = sd * rng.standard_normal((500, LENGTH))
    var = -stats.norm.ppf(ALPHA) * 0.8 * sd  # forecast sd 20% too small: hit rate 9.4%
    hits = (returns < -var).astype(np.int64)
    assert (stats.chi2.sf(cov._kupiec_statistic(hits, ALPHA), 1) < NOMINAL).mean() > 0.9
    assert (stats.chi2.sf(cov._conditional_coverage_statistic(hits, ALPHA), 2) < NOMINAL).mean() > 0.8
    statistic, rank = cov._dynamic_quantile_statistic(hits, ALPHA, var)
    assert (stats.chi2.sf(statistic, rank) < NOMINAL).mean() > 0.8


def test_power_against_a_constant_var_under_volatility_clustering():
    rng = np.random.default_rng(12)
    reps = 500
    h = np.empty((reps, LENGTH))
    h[:, 0] = rng.normal(0.0, 2.0, reps)  # log-variance: AR(1), persistence 0.98, stationary sd 2
    for t in range(1, LENGTH):
        h[:, t] = 0.98 * h[:, t - 1] + 2.0 * math.sqrt(1 - 0.98**2) * rng.standard_normal(reps)
    returns = np.exp(h / 2) * rng.standard_normal((reps, LENGTH))
    var = np.quantile(-returns, 1 - ALPHA, axis=1, keepdims=True) * np.ones((1, LENGTH))  # right on average
    hits = (returns < -var).astype(np.int64)
    assert (stats.chi2.sf(cov._independence_statistic(hits), 1) < NOMINAL).mean() > 0.5
    statistic, rank = cov._dynamic_quantile_statistic(hits, ALPHA)
    assert (stats.chi2.sf(statistic, rank) < NOMINAL).mean() > 0.7
