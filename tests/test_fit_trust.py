"""Maximum likelihood checks its own answer; IG-GARCH priors and forecasts refuse explosive parameters.

Each test below failed before the self-check existed: such fits reported ``converged=True`` with nothing
else to say, NaN standard errors went unexplained, and forecasts from explosive draws returned huge numbers.
"""

import types
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import bayesvol
from bayesvol.inference import standard_errors as se_
from bayesvol.models import GARCH, IGGARCH

DEM2GBP = "tests/data/dem2gbp_bollerslev_ghysels_1984_1991.csv"
LABELS = ["x", "y", "z"]


def _check(information, se=(0.1, 0.1, 0.1), boundary=(), loglik=-100.0):
    return se_.reliability_warnings(LABELS, np.asarray(se, dtype=float), np.zeros(3, dtype=bool), list(boundary),
                                    np.ones(3), loglik, np.asarray(information, dtype=float))


def test_a_redundant_parameter_makes_the_information_singular_and_is_named():
    # Scores of y and z are the same function (z duplicates y): the information J'J is exactly singular.
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((200, 2))
    jac = np.column_stack([scores[:, 0], scores[:, 1], 3.0 * scores[:, 1]])
    messages = _check(jac.T @ jac)
    assert len(messages) == 1 and "singular" in messages[0]
    assert "y" in messages[0] and "z" in messages[0] and "x," not in messages[0]


def test_an_indefinite_information_is_not_a_maximum_and_a_sound_one_passes():
    indefinite = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # eigenvalues -1, 1, 3
    messages = _check(indefinite)
    assert len(messages) == 1 and "not positive definite" in messages[0]
    sound = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 3.0]])
    assert _check(sound) == []
    # A parameter the likelihood does not depend on: zero curvature.
    assert "flat" in _check(np.diag([1.0, 0.0, 1.0]))[0]


def test_nan_standard_errors_boundary_and_non_finite_values_are_each_reported():
    sound = np.eye(3)
    assert "not finite for y" in " ".join(_check(sound, se=(0.1, np.nan, 0.1)))
    messages = _check(np.diag([1.0, -1.0, 1.0]), boundary=["y"])  # y on its edge: no double report
    assert len(messages) == 1 and "edge of the parameter space: y" in messages[0]
    assert "not finite" in _check(sound, loglik=-np.inf)[0]


def test_covariances_invert_badly_scaled_information_exactly():
    # Entries of magnitudes 1e8 and 1e-6 (a ~ 1e4 beside c ~ 1e-2): the unit-diagonal inversion equals the inverse.
    rng = np.random.default_rng(1)
    base = rng.standard_normal((50, 3))
    scale = np.diag([1e4, 1.0, 1e-3])
    information = scale @ (base.T @ base) @ scale
    cov, _ = se_.covariances(-information, np.zeros((5, 3)))
    np.testing.assert_allclose(cov @ information, np.eye(3), atol=1e-8)


def test_a_garch_fit_with_alpha_at_zero_says_so_and_a_sound_fit_says_nothing():
    white = np.random.default_rng(4).standard_normal(1500)  # no volatility clustering: alpha goes to zero
    with pytest.warns(bayesvol.ConvergenceWarning, match="estimates not reliable.*alpha"):
        result = bayesvol.fit(GARCH(dist="normal"), white)
    assert result.converged and not result.reliable
    assert any("alpha" in text for text in result.warnings)
    assert "estimates not reliable" in result.summary(diagnostics=False)
    y = pd.read_csv(DEM2GBP)["ret_pct"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", bayesvol.ConvergenceWarning)
        sound = bayesvol.fit(GARCH(dist="normal"), y)
    assert sound.reliable and sound.warnings == []
    assert "not reliable" not in sound.summary(diagnostics=False)


def test_iggarch_default_priors_put_the_persistence_well_below_one():
    model = IGGARCH()
    priors = model.prior_distributions()
    rng = np.random.default_rng(2)
    n = 40_000
    eta = np.abs(rng.normal(0.0, priors.eta.scale, n))
    b = rng.normal(priors.b.loc, priors.b.scale, n)
    c, a = np.abs(rng.normal(0.0, priors.c.scale, n)), np.abs(rng.normal(0.0, priors.a.scale, n))
    persistence = b + c / eta**2 + a * eta**2
    # Monte Carlo error of a median of 40 000 draws is far below these margins.
    assert np.median(persistence) < 0.8
    medians = {"lam": 0.0, "eta": -np.median(eta), "w": 0.05, "b": float(priors.b.loc), "c": np.median(c),
               "a": np.median(a)}
    assert float(model.persistence(medians)) < 0.5


def test_iggarch_forecast_refuses_explosive_parameters_and_draws():
    prices = bayesvol.datasets.load("fred_h10")["DEXUSAL"].dropna()
    y = bayesvol.datasets.log_returns(prices).iloc[-300:]
    model = IGGARCH()
    explosive = {"lam": 0.0, "eta": -0.25, "w": 0.01, "b": 0.5, "c": 0.054, "a": 4.9}  # persistence 1.67
    with pytest.raises(ValueError, match="persistence 1.67.* >= 1"):
        bayesvol.forecast(model, explosive, y, horizon=3)
    stable = dict(explosive, b=-0.19)
    draws = {n: np.array([[stable[n], explosive[n], stable[n]]]) for n in model.param_names}
    posterior = xr.Dataset({n: (("chain", "draw"), v) for n, v in draws.items()})
    with pytest.raises(ValueError, match="1 of 3 posterior draws .* explosive .*persistence 1.67"):
        bayesvol.forecast(model, types.SimpleNamespace(posterior=posterior), y, horizon=3, method="analytic",
                          levels=None)


@pytest.mark.slow
def test_iggarch_fits_on_aud_report_their_degenerate_optimum():
    """The reported DEXUSAL fits: one component puts w at zero (b near -31), two components reach a singular
    information (a_q ~ 1e4). Both used to say converged with nothing else; now each carries warnings."""
    prices = bayesvol.datasets.load("fred_h10")["DEXUSAL"].dropna()
    y = bayesvol.datasets.log_returns(prices).iloc[-1500:]
    one = bayesvol.fit(IGGARCH(components=1), y, warn=False)
    assert "w" in one.at_boundary and not one.reliable
    two = bayesvol.fit(IGGARCH(components=2), y, warn=False)
    if two.params["a_q"] > 1e3:  # the degenerate ridge eta -> 0, a_q -> infinity
        assert not two.reliable and any("information matrix" in text for text in two.warnings)
