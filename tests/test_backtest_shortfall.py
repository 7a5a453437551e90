"""ES backtests: Acerbi-Szekely Z2 and McNeil-Frey against their formulas written out here, simulated null laws
checked independently, size near nominal and power against too thin a predictive."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bayesvol.backtest import NormalPredictive, StudentTPredictive, acerbi_szekely, mcneil_frey

RETURNS = np.array([0.3, -2.1, 0.8, -0.4, -3.0, 1.2, -0.9, 0.1, -1.8, 0.5])
VAR = np.array([1.6, 1.6, 1.7, 1.5, 1.9, 1.6, 1.6, 1.5, 1.7, 1.6])
ES = VAR + 0.4


def test_z2_against_its_formula():
    level, n = 0.1, len(RETURNS)
    total = 0.0
    for y, v, e in zip(RETURNS, VAR, ES, strict=True):
        if y < -v:  # exceedance
            total += y / (n * level * e)
    expected = total + 1.0  # hits at -2.1, -3.0, -1.8
    result = acerbi_szekely(RETURNS, NormalPredictive(0.0, np.ones(n)), level, num_simulations=99, var=VAR, es=ES)
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.details["exceptions"] == 3
    assert result.null == "simulation"


def test_z2_p_value_against_an_independent_simulation_of_its_null_law():
    rng = np.random.default_rng(7)
    n, level = 250, 0.025
    sd = np.exp(rng.normal(0.0, 0.3, n))
    returns = 1.15 * sd * rng.standard_normal(n)
    predictive = NormalPredictive(0.0, sd)
    result = acerbi_szekely(returns, predictive, level, num_simulations=20_000, seed=1)
    # The null law of Z2, simulated here with its own generator and the formula written out.
    var = -stats.norm.ppf(level) * sd
    es = sd * stats.norm.pdf(stats.norm.ppf(level)) / level
    paths = sd * np.random.default_rng(99).standard_normal((20_000, n))
    z2 = np.sum(np.where(paths < -var, paths / es, 0.0), axis=1) / (n * level) + 1.0
    assert abs(z2.mean()) < 0.02  # E[Z2] = 0 under the null
    independent = np.mean(z2 <= result.statistic)
    assert result.p_value == pytest.approx(independent, abs=4 * math.sqrt(0.25 / 20_000) + 1e-3)
    assert result.details["critical_value"] == pytest.approx(np.quantile(z2, 0.05), abs=0.05)


def test_z2_is_reproducible_for_a_seed():
    predictive = NormalPredictive(0.0, np.ones(10))
    first = acerbi_szekely(RETURNS, predictive, 0.1, num_simulations=500, seed=3)
    again = acerbi_szekely(RETURNS, predictive, 0.1, num_simulations=500, seed=3)
    assert first.p_value == again.p_value


def test_z2_from_draws_agrees_with_the_closed_form_predictive():
    rng = np.random.default_rng(8)
    n = 200
    sd = np.exp(rng.normal(0.0, 0.3, n))
    returns = sd * rng.standard_t(5, n)
    draws = sd * rng.standard_normal((20_000, n))
    closed = acerbi_szekely(returns, NormalPredictive(0.0, sd), 0.05, num_simulations=4000)
    sampled = acerbi_szekely(returns, draws, 0.05, num_simulations=4000)
    assert sampled.statistic == pytest.approx(closed.statistic, abs=0.05)
    assert sampled.p_value == pytest.approx(closed.p_value, abs=0.05)


def test_z2_size_near_nominal_and_power_against_too_small_a_variance():
    rng = np.random.default_rng(9)
    reps, n, level = 400, 250, 0.025
    sd = np.exp(rng.normal(0.0, 0.3, n))
    predictive = NormalPredictive(0.0, sd)
    null_p = [acerbi_szekely(sd * rng.standard_normal(n), predictive, level, num_simulations=199, seed=i).p_value
              for i in range(reps)]
    rate = np.mean(np.array(null_p) < 0.05)
    half = 3.5 * math.sqrt(0.05 * 0.95 / reps)
    assert 0.05 - half < rate < 0.05 + half
    # Returns 30% more volatile than the predictive says.
    thin_p = [acerbi_szekely(1.3 * sd * rng.standard_normal(n), predictive, level, num_simulations=199,
                             seed=i).p_value for i in range(100)]
    assert np.mean(np.array(thin_p) < 0.05) > 0.5


def test_mcneil_frey_against_its_formula_and_the_t_law():
    level = 0.1
    sigma = np.full(len(RETURNS), 1.2)
    residuals = [(-y - e) / s for y, v, e, s in zip(RETURNS, VAR, ES, sigma, strict=True) if y < -v]
    m = sum(residuals) / len(residuals)
    s = math.sqrt(sum((r - m) ** 2 for r in residuals) / (len(residuals) - 1))
    expected = m / (s / math.sqrt(len(residuals)))
    predictive = NormalPredictive(0.0, np.ones(len(RETURNS)))
    result = mcneil_frey(RETURNS, predictive, level, method="t", var=VAR, es=ES, scale=sigma)
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.p_value == pytest.approx(stats.t.sf(expected, len(residuals) - 1), rel=1e-12)
    assert result.null == "t(2)"
    boot = mcneil_frey(RETURNS, predictive, level, var=VAR, es=ES, scale=sigma, num_bootstrap=2000)
    assert boot.statistic == result.statistic and boot.null == "bootstrap"


def test_mcneil_frey_size_and_power():
    rng = np.random.default_rng(10)
    n, level = 1000, 0.05
    sd = np.exp(rng.normal(0.0, 0.3, n))
    t_law = StudentTPredictive(5.0, 0.0, sd)
    null_p = [mcneil_frey(t_law.sample(1, rng)[0], t_law, level, method="t").p_value for _ in range(400)]
    rate = np.mean(np.array(null_p) < 0.05)
    half = 3.5 * math.sqrt(0.05 * 0.95 / 400)
    assert 0.05 - half - 0.02 < rate < 0.05 + half + 0.02  # the t-law is approximate for skewed tail residuals
    normal = NormalPredictive(0.0, sd)
    power = [mcneil_frey(t_law.sample(1, rng)[0], normal, level, num_bootstrap=499, seed=i).p_value
             for i in range(100)]
    assert np.mean(np.array(power) < 0.05) > 0.5


def test_es_backtests_refuse_bad_input():
    predictive = NormalPredictive(0.0, np.ones(10))
    with pytest.raises(ValueError, match="lengths differ"):
        acerbi_szekely(RETURNS[:9], predictive, 0.1)
    with pytest.raises(ValueError, match="lengths differ"):
        acerbi_szekely(RETURNS, predictive, 0.1, var=VAR[:5])
    with pytest.raises(ValueError, match="NaN"):
        acerbi_szekely(np.append(RETURNS[:9], np.nan), predictive, 0.1)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        mcneil_frey(RETURNS, predictive, 1.0)
    with pytest.raises(ValueError, match="at least 3 exceedances"):
        mcneil_frey(np.zeros(10), predictive, 0.1)
    with pytest.raises(ValueError, match="method"):
        mcneil_frey(RETURNS, predictive, 0.1, method="wald")
