"""IG-GARCH (Christoffersen, Heston & Jacobs 2006), one and two components."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayesvol
from bayesvol.models import IGGARCH, _observation
from bayesvol.models.iggarch import IGReturn

# CHJ (2006)-like daily dynamics in percent units (persistence 0.9802).
ONE = {"lam": 0.02, "eta": -0.25, "w": 0.01, "b": -0.19, "c": 0.054, "a": 4.9}
TWO = {"lam": 0.02, "eta": -0.3, "sigma2": 0.8, "rho_s": 0.6, "rho_q": 0.98, "c_s": 0.02, "c_q": 0.01,
       "a_s": 2.0, "a_q": 1.0}


def ig_logpdf(y, delta):
    """f(y; delta) = delta (2 pi y^3)^(-1/2) exp{-(sqrt y - delta / sqrt y)^2 / 2}, DESIGN's form."""
    return math.log(delta) - 0.5 * math.log(2 * math.pi * y**3) - 0.5 * (math.sqrt(y) - delta / math.sqrt(y)) ** 2


def naive_loglik(model, p, returns, h1):
    """Python loop over the recursion; the shock is y_t = (R_t - r - nu h_t) / eta, nu = lam - 1/eta."""
    eta, nu = p["eta"], p["lam"] - 1 / p["eta"]
    s, q = 0.0, h1
    h = h1
    out = []
    for r_t in returns:
        if model.components == 2:
            h = s + q
        shock = (r_t - model.r - nu * h) / eta
        if shock <= 0:
            return np.array(out + [-np.inf])
        out.append(ig_logpdf(shock, h / eta**2) - math.log(abs(eta)))
        if model.components == 1:
            h = p["w"] + p["b"] * h + p["c"] * shock + p["a"] * h**2 / shock
        else:
            def zeta(c, a, h=h, shock=shock):
                return c * shock + a * h**2 / shock - c * h / eta**2 - a * eta**2 * h - a * eta**4

            s, q = (p["rho_s"] * s + zeta(p["c_s"], p["a_s"]),
                    p["sigma2"] + p["rho_q"] * (q - p["sigma2"]) + zeta(p["c_q"], p["a_q"]))
    return np.array(out)


@pytest.fixture(scope="module")
def aud():
    """USD per AUD, daily percent log returns, 2008-08 .. 2014-08 (left-skewed: carry-trade crashes)."""
    prices = bayesvol.datasets.load("fred_h10")["DEXUSAL"].dropna()
    return bayesvol.datasets.log_returns(prices).iloc[-1500:]


@pytest.mark.parametrize(("components", "p"), [(1, ONE), (2, TWO)])
def test_pointwise_loglik_equals_naive_loop(components, p):
    model = IGGARCH(components=components, r=0.01)
    sim = bayesvol.simulate(model, p, num_timesteps=300, seed=components)
    ours = bayesvol.log_likelihood(model, p, sim.y, pointwise=True)
    reference = naive_loglik(model, p, sim.y, float(np.var(sim.y)))
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-10)
    # The simulated IG shocks are the ones the likelihood recovers from the returns.
    nu = p["lam"] - 1 / p["eta"]
    np.testing.assert_allclose(sim.shock, (sim.y - model.r - nu * sim.variance) / p["eta"], rtol=1e-12)
    assert np.all(sim.shock > 0)


def test_return_shock_is_centred_with_variance_h():
    """R = r + lam h + (eta y - h/eta): the bracket has mean 0 and variance h (the seed 002 error mis-centres it).

    200 000 draws at fixed h; tolerances are 4 Monte Carlo standard errors estimated from the draws.
    """
    h, eta, lam, r = 0.7, -0.25, 0.02, 0.01
    law = IGReturn(r + (lam - 1 / eta) * h, eta, h)
    draws = np.asarray(law.sample(jax.random.PRNGKey(0), (200_000,)))
    bracket = draws - r - lam * h
    assert abs(bracket.mean()) < 4 * bracket.std() / math.sqrt(bracket.size)
    squares = bracket**2
    assert abs(squares.mean() - h) < 4 * squares.std() / math.sqrt(squares.size)
    assert float(law.mean) == pytest.approx(r + lam * h, rel=1e-12) and float(law.variance) == h
    # The density integrates to one over the support (trapezoid rule on a fine grid of the IG shock).
    grid = np.linspace(1e-6, 80.0, 400_001)
    density = np.exp(np.asarray(law.log_prob(law.loc + eta * grid))) * abs(eta)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("components", "p"), [(1, ONE), (2, TWO)])
def test_mean_variance_equals_unconditional_variance(components, p):
    """Long simulated paths: E[h_t] = (w + a eta^4)/(1 - persistence), or sigma2 for two components.

    64 paths of 10 000 steps started at the unconditional variance (so E[h_t] equals it at every t); the
    tolerance is 4 standard errors of the mean of the per-path averages.
    """
    model = IGGARCH(components=components)
    values = model.params_type(**{k: jnp.asarray(v) for k, v in p.items()})
    keys = jax.random.split(jax.random.PRNGKey(7), 64)
    _, states = jax.jit(jax.vmap(lambda k: _observation.simulate_path(model, values, 10_000, k)))(keys)
    means = np.asarray(model.variance(states)).mean(axis=1)
    target = float(model.unconditional_variance(p))
    assert abs(means.mean() - target) < 4 * means.std(ddof=1) / math.sqrt(means.size)
    if components == 1:
        assert float(model.persistence(p)) == pytest.approx(-0.19 + 0.054 / 0.0625 + 4.9 * 0.0625, rel=1e-12)


def test_outside_support_is_minus_inf_without_nans(aud):
    model = IGGARCH()
    # |eta| large: the bound r + nu h_t = r + (lam - 1/eta) h_t comes close to the data and some returns cross it.
    p = {"lam": 0.0, "eta": -2.0, "w": 0.01, "b": 0.5, "c": 0.5, "a": 0.05}
    report = model.support(p, aud)
    assert report.num_outside > 0 and report.side == "below"
    assert "outside the IG-GARCH support" in report.message(aud.index)
    with pytest.warns(RuntimeWarning, match="outside the IG-GARCH support"):
        terms = bayesvol.log_likelihood(model, p, aud, pointwise=True)
    assert not np.isnan(terms).any()
    np.testing.assert_array_equal(np.isneginf(terms), report.outside)
    y = jnp.asarray(aud.to_numpy())

    def total(values):
        return jnp.sum(_observation.pointwise_loglik(model, model.params_type(**values), y))

    value, grad = jax.value_and_grad(total)({k: jnp.asarray(v) for k, v in p.items()})
    assert float(value) == -np.inf
    assert all(np.isfinite(float(g)) for g in grad.values())


def test_fits_real_daily_returns_one_and_two_components(aud):
    logliks = []
    for components in (1, 2):
        model = IGGARCH(components=components)
        starts = model.start_values(aud.to_numpy())
        for start in starts:  # every start value respects the one-sided support of these data
            assert np.isfinite(bayesvol.log_likelihood(model, start, aud))
        result = bayesvol.fit(model, aud)
        assert result.converged, result.message
        assert np.isfinite(result.loglik)
        assert result.params["eta"] < 0  # left-skewed returns
        assert model.support(result.params, aud).num_outside == 0
        logliks.append(result.loglik)
    # Two components allow richer dynamics: a higher maximum on the same data.
    assert logliks[1] > logliks[0]


def test_recovers_parameters_on_simulated_data():
    """Estimates within 4 standard errors of the truth (one component, 1500 days).

    The length equals that of the real series above, so the compiled likelihood derivatives are reused.

    Two components: the well-identified parameters within 4 SEs, and the maximum at least the
    log-likelihood at the truth (the fast-component parameters are weakly identified at this length).
    """
    model = IGGARCH()
    sim = bayesvol.simulate(model, ONE, num_timesteps=1500, seed=3)
    result = bayesvol.fit(model, sim.y)
    assert result.converged
    for name, truth in ONE.items():
        assert abs(result.params[name] - truth) < 4 * result.se[name], name
    model2 = IGGARCH(components=2)
    sim2 = bayesvol.simulate(model2, TWO, num_timesteps=1500, seed=3)
    result2 = bayesvol.fit(model2, sim2.y)
    assert result2.converged
    for name in ("lam", "eta", "sigma2", "rho_q"):
        assert abs(result2.params[name] - TWO[name]) < 4 * result2.se[name], name
    assert result2.loglik >= bayesvol.log_likelihood(model2, TWO, sim2.y)


def test_simulated_forecast_matches_closed_form(aud):
    model = IGGARCH()
    p = {"lam": 0.01, "eta": -0.05, "w": 0.03, "b": 0.5, "c": 0.00075, "a": 60.0}  # persistence 0.95
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # p must keep every return inside the support
        fc = bayesvol.forecast(model, p, aud, horizon=5, levels=[0.05], num_paths=20_000)
    assert fc.method == "simulation"
    last = model.filter(p, aud)[-1]
    exact = np.asarray(model.expected_variance(model.params_type(**p), last, 5))
    draws = fc.returns
    # Var(R^2) bounds Var(h) from above, so this standard error is generous.
    sd = np.std(draws**2, axis=0) / math.sqrt(draws.shape[0])
    np.testing.assert_array_less(np.abs(fc.variance["mean"].to_numpy() - exact), 4 * sd)


def test_bad_input_and_impossible_parameters(aud):
    with pytest.raises(ValueError, match="components must be 1 or 2"):
        IGGARCH(components=3)
    with pytest.raises(ValueError, match="r must be"):
        IGGARCH(r=float("nan"))
    model = IGGARCH()
    with pytest.raises(ValueError, match="outside its support"):
        bayesvol.log_likelihood(model, dict(ONE, eta=0.25), aud)  # the default prior fixes eta < 0
    with pytest.raises(ValueError, match="persistence"):
        bayesvol.log_likelihood(model, dict(ONE, b=0.5), aud)
    with pytest.raises(ValueError, match="could turn negative"):
        bayesvol.log_likelihood(model, dict(ONE, b=-0.9, c=0.01, a=1.0), aud)
    with pytest.raises(ValueError, match="non-finite"):
        bayesvol.fit(model, np.r_[aud.to_numpy(), np.inf])
