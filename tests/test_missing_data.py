"""Missing observations (NaN) inside the models and filters, each checked against an independent reference.

- Kalman filter with skipped entries = the dense Gaussian density of the observed sub-vector (scipy); the
  particle filter on the same linear Gaussian model agrees within Monte Carlo error.
- SV with gaps: particle filters and EIS against the grid-quadrature likelihood of the gapped series.
- GARCH family with gaps: the exact likelihood against naive Python loops of the documented rule.
- Gaps in NUTS, forecasts after trailing gaps, the hole-punching helper and the errors.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
from test_filters_linear_gaussian import NoisyAR1, ar_ssm
from test_filters_sv import quadrature_loglik

import bayesvol
from bayesvol import _validation
from bayesvol.filters import efficient_importance_sampling, kalman_filter, particle_filter
from bayesvol.models import EGARCH, GARCH, IGGARCH, SV, _observation
from bayesvol.simulation import punch_holes


class GappyAR1(NoisyAR1):
    """The noisy AR(1) of the linear Gaussian tests, declaring that its filters may skip missing values."""

    supports_missing = True


AR = {"mu": 0.5, "phi": 0.8, "sigma": 0.6, "r": 0.7}


def ar_gapped(num_steps=40, seed=3):
    y = np.asarray(bayesvol.models._base.simulate_latent(
        GappyAR1(), GappyAR1().params_type(**{k: jnp.asarray(v) for k, v in AR.items()}), num_steps,
        jax.random.PRNGKey(seed)).y)
    return punch_holes(y, 0.15, seed=seed, gap=(20, 6))


def dense_ar_loglik(y, mu, phi, sigma, r):
    """log N(y_obs; mu, Sigma_obs) with Sigma = stationary AR(1) covariance + r^2 I, on the observed entries."""
    times = np.arange(len(y))
    cov = sigma**2 / (1 - phi**2) * phi ** np.abs(times[:, None] - times[None, :]) + r**2 * np.eye(len(y))
    seen = ~np.isnan(y)
    return scipy.stats.multivariate_normal(np.full(seen.sum(), mu), cov[np.ix_(seen, seen)]).logpdf(y[seen])


def test_kalman_filter_with_gaps_is_the_gaussian_density_of_the_observed_entries():
    y = ar_gapped()
    assert np.isnan(y).sum() >= 10
    out = kalman_filter(ar_ssm(AR), y)
    np.testing.assert_allclose(float(out.log_likelihood), dense_ar_loglik(y, **AR), rtol=1e-10)
    missing = np.isnan(y)
    assert np.all(np.asarray(out.pointwise_log_likelihood)[missing] == 0.0)
    # A missing step is a prediction step: the filtered moments are the predicted ones.
    np.testing.assert_array_equal(np.asarray(out.filtered_mean)[missing], np.asarray(out.predicted_mean)[missing])


def test_particle_filter_with_gaps_matches_the_kalman_filter():
    y = ar_gapped()
    exact = dense_ar_loglik(y, **AR)
    reps = 30
    run = jax.jit(jax.vmap(lambda key: particle_filter(GappyAR1(), AR, y, key, 400).log_likelihood))
    ratios = np.exp(np.asarray(run(jax.random.split(jax.random.PRNGKey(1), reps))) - exact)
    # exp(estimate) is unbiased: its mean is 1 within 4 standard errors.
    assert abs(ratios.mean() - 1.0) < 4.0 * ratios.std(ddof=1) / math.sqrt(reps), (ratios.mean(), ratios.std())


def test_a_model_without_missing_support_refuses_nan_in_the_filters():
    y = ar_gapped()
    with pytest.raises(ValueError, match="does not support missing values"):
        particle_filter(NoisyAR1(), AR, y)


SV_CASES = {
    "normal": (SV(), {"mu": -1.0, "phi": 0.95, "sigma": 0.25}, "auxiliary"),
    "leverage": (SV(leverage=True), {"mu": -1.0, "phi": 0.95, "sigma": 0.3, "rho": -0.6}, "bootstrap"),
}


# The auxiliary filter's compilation alone takes about 10 s: its case runs with the slow tests.
@pytest.mark.parametrize("name", [pytest.param("normal", marks=pytest.mark.slow), "leverage"])
def test_sv_filters_with_gaps_match_quadrature(name):
    model, params, proposal = SV_CASES[name]
    y = punch_holes(bayesvol.simulate(model, params, 100, seed=7).y, 0.1, seed=2, gap=(40, 12))
    exact = quadrature_loglik(y, **params)
    reps = 20

    run = jax.jit(jax.vmap(lambda key: particle_filter(model, params, y, key, 300, proposal=proposal).log_likelihood))
    ratios = np.exp(np.asarray(run(jax.random.split(jax.random.PRNGKey(0), reps))) - exact)
    # exp(estimate) is unbiased: its mean is 1 within 4 standard errors.
    assert abs(ratios.mean() - 1.0) < 4.0 * ratios.std(ddof=1) / math.sqrt(reps), (ratios.mean(), ratios.std())
    eis = efficient_importance_sampling(model, params, y, key=1, num_draws=64)
    # EIS: within a few of its Monte Carlo standard deviations (about 0.02 here) of the exact value.
    assert abs(float(eis.log_likelihood) - exact) < 0.1
    # Bellman and QML run through the gap and give finite values.
    for method in ("bellman",) + (("qml",) if name == "normal" else ()):
        assert np.isfinite(bayesvol.log_likelihood(model, params, y, method=method))


# --- GARCH family: the exact likelihood against naive loops of the documented rule ----------------------------
def naive_backcast(residuals):
    head = residuals[:75]
    weights = np.where(np.isnan(head), 0.0, 0.94 ** np.arange(len(head)))
    return np.nansum(weights * head**2) / weights.sum()


def negative_second_moment(law):
    """E[z^2 1(z<0)] by numerical integration of the innovation density (independent of the closed form)."""
    def integrand(z):
        return z**2 * math.exp(float(law.log_prob(jnp.asarray(z))))

    return scipy.integrate.quad(integrand, -np.inf, 0.0)[0]


def abs_mean(law):
    def integrand(z):
        return abs(z) * math.exp(float(law.log_prob(jnp.asarray(z))))

    return scipy.integrate.quad(integrand, -np.inf, 0.0)[0] + scipy.integrate.quad(integrand, 0.0, np.inf)[0]


def naive_garch(model, p, y):
    mu = p.get("mu", 0.0)
    gamma = p.get("gamma", 0.0)
    law = model.innovation(model.params_type(**{k: jnp.asarray(v) for k, v in p.items()}))
    moment = 0.5 if model.dist != "skewt" else negative_second_moment(law)
    kappa = p["alpha"] + p["beta"] + gamma * moment
    observed = y[~np.isnan(y)]
    b = naive_backcast(y - observed.mean())
    variance = p["omega"] + (p["alpha"] + 0.5 * gamma + p["beta"]) * b
    total = []
    for y_t in y:
        if np.isnan(y_t):
            total.append(0.0)
            variance = p["omega"] + kappa * variance
            continue
        e = y_t - mu
        total.append(float(law.log_prob(jnp.asarray(e / math.sqrt(variance)))) - 0.5 * math.log(variance))
        variance = p["omega"] + (p["alpha"] + gamma * (e < 0)) * e**2 + p["beta"] * variance
    return np.array(total)


def naive_egarch(model, p, y):
    law = model.innovation(model.params_type(**{k: jnp.asarray(v) for k, v in p.items()}))
    expected_abs = abs_mean(law)
    observed = y[~np.isnan(y)]
    log_variance = p["omega"] + p["beta"] * math.log(naive_backcast(y - observed.mean()))
    total = []
    for y_t in y:
        if np.isnan(y_t):
            total.append(0.0)
            log_variance = p["omega"] + p["alpha"] * (expected_abs - math.sqrt(2 / math.pi)) + p["beta"] * log_variance
            continue
        e = (y_t - p["mu"]) * math.exp(-0.5 * log_variance)
        total.append(float(law.log_prob(jnp.asarray(e))) - 0.5 * log_variance)
        log_variance = (p["omega"] + p["alpha"] * (abs(e) - math.sqrt(2 / math.pi)) + p["gamma"] * e
                        + p["beta"] * log_variance)
    return np.array(total)


def naive_iggarch(model, p, y):
    """One or two components, h_1 the variance of the observed returns; the IG density written out."""
    eta = p["eta"]
    nu = p["lam"] - 1.0 / eta
    h = float(np.nanvar(y))
    s, q = 0.0, h
    total = []
    for y_t in y:
        if model.components == 2:
            h = s + q
        if np.isnan(y_t):
            total.append(0.0)
            if model.components == 1:
                h = p["w"] + p["b"] * h + p["c"] * h / eta**2 + p["a"] * (eta**2 * h + eta**4)
            else:
                s, q = p["rho_s"] * s, p["sigma2"] + p["rho_q"] * (q - p["sigma2"])
            continue
        shock = (y_t - model.r - nu * h) / eta
        delta = h / eta**2
        total.append(math.log(delta) - 0.5 * math.log(2 * math.pi * shock**3)
                     - 0.5 * (math.sqrt(shock) - delta / math.sqrt(shock)) ** 2 - math.log(abs(eta)))
        if model.components == 1:
            h = p["w"] + p["b"] * h + p["c"] * shock + p["a"] * h**2 / shock
        else:
            def zeta(c, a, h=h, shock=shock):
                return c * shock + a * h**2 / shock - c * h / eta**2 - a * eta**2 * h - a * eta**4

            s, q = (p["rho_s"] * s + zeta(p["c_s"], p["a_s"]),
                    p["sigma2"] + p["rho_q"] * (q - p["sigma2"]) + zeta(p["c_q"], p["a_q"]))
    return np.array(total)


GARCH_CASES = {
    "garch-normal": (GARCH(), {"mu": 0.03, "omega": 0.02, "alpha": 0.06, "beta": 0.9}, naive_garch),
    "gjr-t": (GARCH(vol="gjr", dist="t"), {"mu": 0.03, "omega": 0.02, "alpha": 0.05, "gamma": 0.08, "beta": 0.88,
                                           "nu": 8.0}, naive_garch),
    "gjr-skewt": (GARCH(vol="gjr", dist="skewt"), {"mu": 0.03, "omega": 0.02, "alpha": 0.05, "gamma": 0.1,
                                                   "beta": 0.86, "nu": 7.0, "skew": -0.3}, naive_garch),
    "egarch-t": (EGARCH(dist="t"), {"mu": 0.03, "omega": 0.01, "alpha": 0.12, "gamma": -0.08, "beta": 0.97,
                                    "nu": 8.0}, naive_egarch),
    "iggarch-1": (IGGARCH(), {"lam": 0.02, "eta": -0.25, "w": 0.01, "b": -0.19, "c": 0.054, "a": 4.9},
                  naive_iggarch),
    "iggarch-2": (IGGARCH(components=2), {"lam": 0.02, "eta": -0.25, "sigma2": 1.0, "rho_s": 0.7, "rho_q": 0.98,
                                          "c_s": 0.03, "c_q": 0.02, "a_s": 4.0, "a_q": 2.0}, naive_iggarch),
}


@pytest.mark.parametrize("name", list(GARCH_CASES))
def test_garch_family_likelihood_with_gaps_equals_a_naive_loop(name):
    model, params, naive = GARCH_CASES[name]
    # A gap at the start too, so that the backcast's window has missing values.
    y = punch_holes(bayesvol.simulate(model, params, 200, seed=5).y, 0.1, seed=1, gap=(3, 4))
    y[-1] = np.nan
    terms = bayesvol.log_likelihood(model, params, y, pointwise=True)
    np.testing.assert_allclose(terms, naive(model, params, y), rtol=1e-9, atol=1e-10)
    # The same value traced (as fit and NUTS see it), with finite gradients through the gaps.
    fn = bayesvol.log_likelihood_fn(model, y)
    value, grad = jax.jit(jax.value_and_grad(lambda p, data: _observation.pointwise_loglik(
        model, model.params_type(**p), data).sum()))({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(y))
    np.testing.assert_allclose(float(value), float(fn(params)), rtol=1e-12)
    assert all(np.isfinite(float(g)) for g in grad.values())


def test_complete_data_give_the_plain_recursion_bit_for_bit():
    model, params, _ = GARCH_CASES["gjr-skewt"]
    y = bayesvol.simulate(model, params, 300, seed=5).y
    p = model.params_type(**{k: jnp.asarray(v) for k, v in params.items()})
    # The recursion as it was written before gaps: one scan over update, the emission on the path.
    _, states = jax.lax.scan(lambda s, y_t: (model.update(p, s, y_t), s), model.init_state(p, jnp.asarray(y)),
                             jnp.asarray(y))
    plain = model.emission(p, states).log_prob(jnp.asarray(y))
    np.testing.assert_array_equal(bayesvol.log_likelihood(model, params, y, pointwise=True), np.asarray(plain))
    # The path for gaps, run on complete data, agrees (to rounding: its program differs).
    gapped_path, _ = _observation.sequential_filter_states(model, p, jnp.asarray(y), gaps=True)
    np.testing.assert_allclose(np.asarray(gapped_path), np.asarray(states), rtol=1e-14)


def test_forecast_after_trailing_gaps_continues_the_variance_forecast():
    model, params, _ = GARCH_CASES["gjr-t"]
    y = bayesvol.simulate(model, params, 300, seed=8).y
    gapped = np.r_[y, np.full(3, np.nan)]
    after_gap = bayesvol.forecast(model, params, gapped, horizon=2, levels=None).variance["mean"].to_numpy()
    before_gap = bayesvol.forecast(model, params, y, horizon=5, levels=None).variance["mean"].to_numpy()
    # Over a missing step the variance moves on by its one-step forecast: three missing steps = horizon + 3.
    np.testing.assert_allclose(after_gap, before_gap[3:], rtol=1e-12)


@pytest.mark.slow
def test_nuts_on_sv_with_gaps_widens_the_volatility_band_over_a_long_gap():
    model, params = SV(), {"mu": -0.5, "phi": 0.95, "sigma": 0.3}
    y = punch_holes(bayesvol.simulate(model, params, 200, seed=4).y, 0.1, seed=3, gap=(100, 25))
    idata = bayesvol.sample(model, y, num_chains=1, num_warmup=300, num_samples=300, seed=1, progress_bar=False,
                            warn=False)
    h = idata.posterior["h"].values.reshape(-1, len(y))
    assert np.all(np.isfinite(h))
    spread = h.std(axis=0)
    gap_middle = spread[106:119].mean()
    observed = spread[~np.isnan(y)].mean()
    assert gap_middle > 1.3 * observed, (gap_middle, observed)
    # The pointwise log-likelihood is zero at the missing steps (nothing to predict there).
    loglik = idata.log_likelihood["y"].values.reshape(-1, len(y))
    assert np.all(loglik[:, np.isnan(y)] == 0.0) and np.all(np.isfinite(loglik))


# --- the hole-punching helper and the errors -----------------------------------------------------------------
def test_punch_holes_is_reproducible_and_punches_the_fraction_asked_for():
    y = np.arange(100.0)
    first, second = punch_holes(y, 0.1, seed=4), punch_holes(y, 0.1, seed=4)
    np.testing.assert_array_equal(np.isnan(first), np.isnan(second))
    assert np.isnan(first).sum() == 10 and not np.isnan(y).any()
    assert np.isnan(punch_holes(y, 0.0, seed=0, gap=(10, 5))[10:15]).all()
    with pytest.raises(ValueError, match="fraction"):
        punch_holes(y, 1.0)
    with pytest.raises(ValueError, match="runs past the end"):
        punch_holes(y, 0.1, gap=(98, 5))


def test_missing_data_errors_are_clear():
    y = np.full(50, np.nan)
    for model, method in ((SV(), "pf"), (GARCH(), "exact")):
        with pytest.raises(ValueError, match="no observed value: all 50 are missing"):
            bayesvol.fit(model, y, method=method)
    few = np.full(50, np.nan)
    few[:5] = [0.1, -0.2, 0.3, 0.05, -0.1]
    with pytest.raises(ValueError, match="5 observed values \\(of 50, the rest missing\\); at least 20"):
        bayesvol.log_likelihood(GARCH(), {"mu": 0.0, "omega": 0.1, "alpha": 0.1, "beta": 0.8}, few)
    with pytest.raises(ValueError, match="inf"):
        bayesvol.log_likelihood(SV(), {"mu": 0.0, "phi": 0.9, "sigma": 0.3}, np.r_[np.ones(30), np.inf, np.nan],
                                method="pf")
    with pytest.raises(ValueError, match="does not support missing values"):
        _validation.as_returns(np.r_[np.ones(30), np.nan], owner="this model")
    with pytest.raises(ValueError, match="no observed value"):
        particle_filter(SV(), {"mu": 0.0, "phi": 0.9, "sigma": 0.3}, np.full(10, np.nan))
