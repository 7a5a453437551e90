"""The GARCH likelihood at a persistence of one or more, and maximum likelihood without the stationarity
restriction (``fit(..., stationary=False)``), checked against a naive loop and against ``arch``."""

from __future__ import annotations

import warnings

import numpy as np
import numpyro.distributions as ndist
import pytest
from numpyro.infer.util import log_density

import bayesvol
from bayesvol import StationarityWarning
from bayesvol.models import EGARCH, GARCH

EXPLOSIVE = {"mu": 0.02, "omega": 0.05, "alpha": 0.12, "beta": 0.9}  # persistence 1.02


def _naive_garch_loglik(params, y):
    """Normal GARCH(1,1) with arch's backcast start, one step at a time."""
    e = y - params["mu"]
    window = min(75, len(y))
    weights = 0.94 ** np.arange(window)
    backcast = np.sum(weights * (y - y.mean())[:window] ** 2) / weights.sum()
    variance = params["omega"] + (params["alpha"] + params["beta"]) * backcast
    total = 0.0
    for e_t in e:
        total += -0.5 * (np.log(2 * np.pi) + np.log(variance) + e_t**2 / variance)
        variance = params["omega"] + params["alpha"] * e_t**2 + params["beta"] * variance
    return total


def test_loglik_at_persistence_above_one_matches_a_loop_and_warns(gbpusd):
    y = np.asarray(gbpusd)[:300]
    with pytest.warns(StationarityWarning, match="persistence .* = 1.02"):
        value = bayesvol.log_likelihood(GARCH(), EXPLOSIVE, y)
    np.testing.assert_allclose(value, _naive_garch_loglik(EXPLOSIVE, y), rtol=1e-12)


def test_outside_the_support_is_still_refused(gbpusd):
    y = np.asarray(gbpusd)[:100]
    with pytest.raises(ValueError, match="alpha \\+ gamma"):
        bayesvol.log_likelihood(GARCH(vol="gjr"), dict(EXPLOSIVE, alpha=0.05, gamma=-0.1), y)
    with pytest.raises(ValueError, match="outside its support"):
        bayesvol.log_likelihood(GARCH(), dict(EXPLOSIVE, omega=-0.1), y)
    # Without an unconditional variance there is no start value and no simulation.
    with pytest.raises(ValueError, match="unconditional"):
        bayesvol.log_likelihood(GARCH(variance_start="unconditional"), EXPLOSIVE, y)
    with pytest.raises(ValueError, match="unconditional variance"):
        bayesvol.simulate(GARCH(), EXPLOSIVE, 10, seed=0)


def test_the_prior_stays_stationary_with_custom_priors(gbpusd):
    """A prior that does not allow the stick-breaking coordinates still restricts the program to kappa < 1."""
    y = np.asarray(gbpusd)[:50]
    model = GARCH(priors={"beta": ndist.HalfNormal(1.0)})
    assert not model._joint_transform
    inside = log_density(model.program, (y,), {}, dict(EXPLOSIVE, beta=0.85))[0]
    outside = log_density(model.program, (y,), {}, EXPLOSIVE)[0]
    assert np.isfinite(float(inside)) and float(outside) == -np.inf


def test_stationary_false_needs_a_family_with_a_variant(gbpusd):
    with pytest.raises(ValueError, match="stationary=False is not available"):
        bayesvol.fit(EGARCH(), np.asarray(gbpusd)[:100], stationary=False)
    with pytest.raises(ValueError, match="stationary must be True or False"):
        bayesvol.fit(GARCH(), np.asarray(gbpusd)[:100], stationary="no")


def _sp500_and_arch():
    arch_model = pytest.importorskip("arch").arch_model
    from arch.data import sp500

    returns = 100 * sp500.load()["Adj Close"].pct_change().dropna().iloc[-2000:]
    reference = arch_model(returns, mean="Zero", vol="GARCH", p=1, o=1, q=1, dist="skewt").fit(disp="off")
    return returns, reference


MODEL_SP500 = GARCH(vol="gjr", dist="skewt", mean="zero")


def test_nonstationary_fit_reaches_arch_on_sp500():
    """GJR-GARCH with skewed-t errors and zero mean on the last 2000 S&P 500 returns: arch's estimate (which
    bounds alpha + gamma/2 + beta only) has persistence above one under the skewed t; bayesvol with
    stationary=False reaches its log-likelihood."""
    returns, reference = _sp500_and_arch()
    model = MODEL_SP500
    arch_params = dict(zip(model.param_names, reference.params.to_numpy(), strict=True))
    arch_params["alpha"] = max(arch_params["alpha"], 1e-300)  # arch reaches the edge alpha = 0 exactly
    assert float(model.persistence(arch_params)) > 1.0
    with pytest.warns(StationarityWarning):
        at_arch = bayesvol.log_likelihood(model, arch_params, returns)
    np.testing.assert_allclose(at_arch, reference.loglikelihood, rtol=1e-10)

    free = bayesvol.fit(model, returns, stationary=False)
    assert free.converged
    assert free.loglik >= reference.loglikelihood - 1e-4
    assert float(model.persistence(free.params)) > 1.0


@pytest.mark.slow
def test_default_fit_on_sp500_stays_stationary():
    returns, reference = _sp500_and_arch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayesvol.ConvergenceWarning)
        restricted = bayesvol.fit(MODEL_SP500, returns)
    assert float(MODEL_SP500.persistence(restricted.params)) < 1.0
    assert restricted.loglik < reference.loglikelihood
