"""VaR and ES of the predictive kinds against scipy and quadrature, portfolio aggregation, bad input, layering."""

from __future__ import annotations

import ast
import math
import pathlib

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import bayesvol.backtest as bt
from bayesvol.backtest import (
    DrawsPredictive,
    NormalPredictive,
    StudentTPredictive,
    exceedances,
    expected_shortfall,
    portfolio_normal,
    portfolio_returns,
    value_at_risk,
)

LEVELS = [0.01, 0.025, 0.05, 0.1]


def es_by_quadrature(quantile_function, level):
    """ES = -(1/alpha) * integral_0^alpha q(u) du."""
    return -integrate.quad(quantile_function, 0.0, level, limit=200)[0] / level


@pytest.mark.parametrize("level", LEVELS)
def test_normal_var_and_es(level):
    loc, scale = np.array([0.1, -0.2, 0.0]), np.array([1.0, 2.0, 0.5])
    p = NormalPredictive(loc, scale)
    np.testing.assert_allclose(value_at_risk(p, level), -stats.norm.ppf(level, loc, scale), rtol=1e-12)
    expected = [es_by_quadrature(lambda u, m=m, s=s: stats.norm.ppf(u, m, s), level) for m, s in zip(loc, scale,
                                                                                                   strict=True)]
    np.testing.assert_allclose(expected_shortfall(p, level), expected, rtol=1e-7)


@pytest.mark.parametrize("df", [3.0, 5.0, 30.0])
@pytest.mark.parametrize("level", LEVELS)
def test_unit_variance_student_t_var_and_es(df, level):
    loc, scale = 0.3, 1.7
    c = scale * math.sqrt((df - 2) / df)
    law = stats.t(df, loc=loc, scale=c)
    assert law.std() == pytest.approx(scale, rel=1e-12)  # scale is the standard deviation
    p = StudentTPredictive(df, loc, scale)
    assert value_at_risk(p, level) == pytest.approx(-law.ppf(level), rel=1e-12)
    assert expected_shortfall(p, level) == pytest.approx(es_by_quadrature(law.ppf, level), rel=1e-7)
    assert p.sd() == pytest.approx(scale)


def test_draws_var_is_minus_the_empirical_quantile_and_es_the_empirical_tail_mean():
    draws = np.arange(1.0, 11.0)  # 1, ..., 10
    # alpha * S = 2.5: the two smallest draws and half of the third
    assert expected_shortfall(draws, 0.25) == pytest.approx(-(1.0 + 2.0 + 0.5 * 3.0) / 2.5)
    assert value_at_risk(draws, 0.25) == pytest.approx(-np.quantile(draws, 0.25))
    assert expected_shortfall(draws, 0.2) == pytest.approx(-1.5)  # exactly the two smallest
    shuffled = np.random.default_rng(0).permutation(draws)
    assert expected_shortfall(shuffled, 0.25) == expected_shortfall(draws, 0.25)


def test_draws_converge_to_the_closed_forms():
    rng = np.random.default_rng(1)
    scale = np.array([1.0, 2.0])
    draws = rng.standard_normal((400_000, 2)) * scale
    p = NormalPredictive(0.0, scale)
    for level in (0.01, 0.05):
        np.testing.assert_allclose(value_at_risk(draws, level), p.value_at_risk(level), rtol=0.02)
        np.testing.assert_allclose(expected_shortfall(draws, level), p.expected_shortfall(level), rtol=0.02)
    t = StudentTPredictive(4.0, 0.0, 1.0)
    t_draws = t.sample(400_000, rng)
    assert t_draws.std() == pytest.approx(1.0, rel=0.05)
    assert expected_shortfall(t_draws, 0.025) == pytest.approx(t.expected_shortfall(0.025), rel=0.03)


def test_a_one_dimensional_array_is_one_distribution_and_a_matrix_one_per_time_step():
    rng = np.random.default_rng(2)
    assert isinstance(value_at_risk(rng.standard_normal(1000), 0.05), float)
    assert value_at_risk(rng.standard_normal((1000, 7)), 0.05).shape == (7,)
    assert isinstance(bt.as_predictive(rng.standard_normal((5, 3))), DrawsPredictive)


def test_es_is_at_least_var():
    for p in (NormalPredictive(0.0, [1.0, 3.0]), StudentTPredictive([3.0, 10.0], 0.0, 1.0),
              DrawsPredictive(np.random.default_rng(3).standard_normal((500, 2)))):
        for level in LEVELS:
            assert np.all(np.asarray(p.expected_shortfall(level)) >= np.asarray(p.value_at_risk(level)))


def test_exceedances_are_returns_below_minus_var():
    returns = pd.Series([0.5, -2.0, -2.5, 1.0, -3.0])
    np.testing.assert_array_equal(exceedances(returns, [2.0, 2.0, 2.0, 0.5, 3.5]), [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(exceedances(returns, 1.9), [0, 1, 1, 0, 1])


# --- portfolios -----------------------------------------------------------------------------------------------


def test_portfolio_returns_of_returns_and_draws():
    rng = np.random.default_rng(4)
    returns = rng.standard_normal((6, 3))
    w = np.array([0.2, 0.3, 0.5])
    expected = [sum(w[j] * returns[t, j] for j in range(3)) for t in range(6)]
    np.testing.assert_allclose(portfolio_returns(returns, w), expected, rtol=1e-12)
    frame = pd.DataFrame(returns, index=pd.date_range("2021-01-01", periods=6), columns=list("abc"))
    series = portfolio_returns(frame, w)
    assert isinstance(series, pd.Series) and series.index.equals(frame.index)
    draws = rng.standard_normal((10, 6, 3))
    varying = rng.dirichlet(np.ones(3), size=6)
    out = portfolio_returns(draws, varying)
    assert out.shape == (10, 6)
    assert out[4, 2] == pytest.approx(draws[4, 2] @ varying[2])


def test_portfolio_normal_matches_draws_of_the_multivariate_normal():
    cov = np.array([[1.0, 0.3, -0.2], [0.3, 2.0, 0.1], [-0.2, 0.1, 0.5]])
    mean = np.array([0.1, 0.0, -0.1])
    w = np.array([0.5, 0.25, 0.25])
    p = portfolio_normal(mean, cov, w)
    assert float(p.scale) ** 2 == pytest.approx(w @ cov @ w, rel=1e-12)
    assert float(p.loc) == pytest.approx(w @ mean)
    draws = np.random.default_rng(5).multivariate_normal(mean, cov, size=300_000)
    assert value_at_risk(portfolio_returns(draws, w), 0.01) == pytest.approx(p.value_at_risk(0.01), rel=0.02)
    covs = np.stack([cov, 2.0 * cov])
    both = portfolio_normal(np.zeros((2, 3)), covs, w)
    np.testing.assert_allclose(both.scale**2, [w @ cov @ w, 2.0 * w @ cov @ w], rtol=1e-12)


def test_bad_weights_are_refused():
    returns = np.zeros((5, 3))
    with pytest.raises(ValueError, match="one entry per asset"):
        portfolio_returns(returns, [0.5, 0.5])
    with pytest.raises(ValueError, match="sum to one"):
        portfolio_returns(returns, [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="one row per time step"):
        portfolio_returns(returns, np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match="NaN"):
        portfolio_returns(returns, [np.nan, 0.5, 0.5])
    with pytest.raises(ValueError, match="sum to one"):
        portfolio_normal(np.zeros(2), np.eye(2), [0.7, 0.7])
    with pytest.raises(ValueError, match="one entry per asset"):
        portfolio_normal(np.zeros(2), np.eye(2), [1.0])


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.0, 1.0, -0.01, 1.2, float("nan")])
def test_levels_outside_the_unit_interval(level):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        value_at_risk(NormalPredictive(0.0, 1.0), level)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        expected_shortfall(np.zeros(10), level)


def test_a_coverage_given_as_level_is_refused_with_the_tail_probability_to_use():
    with pytest.raises(ValueError, match="pass 0.01"):
        value_at_risk(NormalPredictive(0.0, 1.0), 0.99)


def test_bad_predictive_parameters():
    with pytest.raises(ValueError, match="positive"):
        NormalPredictive(0.0, [1.0, 0.0])
    with pytest.raises(ValueError, match="df must exceed 2"):
        StudentTPredictive(2.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        DrawsPredictive(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="at least 2 draws"):
        DrawsPredictive(np.zeros((1, 5)))
    with pytest.raises(TypeError, match="predictive must be"):
        value_at_risk({"loc": 0.0}, 0.05)
    with pytest.raises(ValueError, match="lengths differ"):
        NormalPredictive(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="one distribution per observation"):
        NormalPredictive(np.zeros(3), 1.0).cdf(np.zeros(4))


# --- layering -------------------------------------------------------------------------------------------------


def test_the_subpackage_imports_nothing_of_bayesvol_but_itself_and_validation():
    folder = pathlib.Path(bt.__file__).parent
    allowed = ("bayesvol.backtest", "bayesvol._validation")
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, path.name
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] == "bayesvol":
                    assert name.startswith(allowed), f"{path.name} imports {name}"
