"""EGARCH(1,1,1): exact log-likelihood against arch and a naive loop, simulation, NumPyro program, MLE and NUTS."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.integrate
import scipy.stats

import bayesvol
import bayesvol.inference
from bayesvol.distributions.priors import ScaledBeta
from bayesvol.models import _observation
from bayesvol.models.egarch import EGARCH, EGARCHParams, exact_loglik

arch = pytest.importorskip("arch")

DEM2GBP = Path(__file__).parent / "data" / "dem2gbp_bollerslev_ghysels_1984_1991.csv"
DISTS = ("normal", "t", "skewt")
PARAMS = {"mu": 0.01, "omega": 0.01, "alpha": 0.15, "gamma": -0.05, "beta": 0.95, "nu": 7.0, "skew": -0.15}
SQRT2_OV_PI = math.sqrt(2.0 / math.pi)


def params_for(model, values=PARAMS):
    return {n: values[n] for n in model.param_names}


def as_params(model, values=PARAMS):
    return EGARCHParams(**{n: jnp.asarray(values[n], dtype=jnp.float64) for n in model.param_names})


# --- an independent reference: a plain Python loop with scipy densities ------------------------------------
def hansen_skewt_logpdf(z, nu, lam):
    """Hansen (1994) skewed t log density written out from the paper's formula."""
    c = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(math.pi * (nu - 2))
    a = 4 * lam * c * (nu - 2) / (nu - 1)
    b = math.sqrt(1 + 3 * lam**2 - a**2)
    side = 1 - lam if z < -a / b else 1 + lam
    return math.log(b * c) - (nu + 1) / 2 * math.log1p(((b * z + a) / side) ** 2 / (nu - 2))


def innovation_logpdf(z, dist, p):
    if dist == "normal":
        return scipy.stats.norm.logpdf(z)
    if dist == "t":
        scale = math.sqrt((p["nu"] - 2) / p["nu"])
        return scipy.stats.t.logpdf(z / scale, p["nu"]) - math.log(scale)
    return hansen_skewt_logpdf(z, p["nu"], p["skew"])


def quad_abs_mean(dist, p):
    """E|z| by quadrature of the density, split at zero and at the skewed t's kink."""
    def density(z):
        return math.exp(innovation_logpdf(z, dist, p))

    kink = 0.0
    if dist == "skewt":
        nu, lam = p["nu"], p["skew"]
        c = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(math.pi * (nu - 2))
        a = 4 * lam * c * (nu - 2) / (nu - 1)
        kink = -a / math.sqrt(1 + 3 * lam**2 - a**2)
    edges = [-np.inf] + sorted({0.0, kink}) + [np.inf]
    return sum(scipy.integrate.quad(lambda z: abs(z) * density(z), lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
               for lo, hi in zip(edges[:-1], edges[1:], strict=True))


def naive_loglik(y, p, dist, log_start):
    """ln sigma2_1 = log_start, then ln s2 = omega + alpha(|e| - sqrt(2/pi)) + gamma e + beta ln s2."""
    mu = p.get("mu", 0.0)
    ln_s2 = log_start
    out = []
    for y_t in y:
        e = (y_t - mu) / math.exp(0.5 * ln_s2)
        out.append(innovation_logpdf(e, dist, p) - 0.5 * ln_s2)
        ln_s2 = p["omega"] + p["alpha"] * (abs(e) - SQRT2_OV_PI) + p["gamma"] * e + p["beta"] * ln_s2
    return np.array(out)


def naive_log_backcast(residuals):
    tau = min(75, len(residuals))
    w = 0.94 ** np.arange(tau)
    return math.log(float(np.sum(w * residuals[:tau] ** 2) / np.sum(w)))


def arch_pointwise(y, dist, values, mean="Constant", backcast=None):
    """arch's per-observation EGARCH(1,1,1) log-likelihood at fixed parameters.

    By default with its own backcast (the log of the EWMA of the demeaned data); ``backcast`` is a variance
    passed through ``backcast_transform`` (the log) as ``arch``'s ``fit(backcast=...)`` does.
    """
    am = arch.arch_model(y, mean=mean, vol="EGARCH", p=1, o=1, q=1, dist=dist, rescale=False)
    values = np.asarray(values, dtype=float)
    total = am.fix(values).loglikelihood
    resids = am.resids(am.starting_values())
    bounds = am.volatility.variance_bounds(resids)
    if backcast is None:
        start = am.volatility.backcast(resids)
    else:
        start = am.volatility.backcast_transform(backcast)
    terms = -am._loglikelihood(values, np.zeros(len(resids)), start, bounds, individual=True)
    if backcast is None:
        assert terms.sum() == pytest.approx(total, abs=1e-8)
    return terms


@pytest.fixture(scope="module")
def y_fx(gbpusd):
    return np.asarray(gbpusd, dtype=float)


@pytest.fixture(scope="module")
def y_dem():
    return pd.read_csv(DEM2GBP)["ret_pct"].to_numpy()


# --- (1) the exact log-likelihood equals arch's ------------------------------------------------------------
@pytest.mark.parametrize("dist", DISTS)
@pytest.mark.parametrize("data", ["gbpusd", "dem2gbp"])
def test_pointwise_loglik_equals_arch(y_fx, y_dem, dist, data):
    y = y_fx if data == "gbpusd" else y_dem
    model = EGARCH(dist=dist)
    p = params_for(model)
    ours = np.asarray(exact_loglik(model, as_params(model), y))
    reference = arch_pointwise(y, dist, list(p.values()))
    np.testing.assert_allclose(ours, reference, rtol=1e-8, atol=1e-10)
    assert ours.sum() == pytest.approx(reference.sum(), rel=1e-10)
    assert bayesvol.log_likelihood(model, p, y) == pytest.approx(reference.sum(), rel=1e-10)


def test_zero_mean_and_numeric_start_equal_arch(y_fx):
    model = EGARCH(dist="t", mean="zero")
    p = params_for(model)
    np.testing.assert_allclose(exact_loglik(model, as_params(model), y_fx),
                               arch_pointwise(y_fx, "t", list(p.values()), mean="Zero"), rtol=1e-8, atol=1e-10)
    model = EGARCH(dist="skewt", variance_start=0.4)
    p = params_for(model)
    np.testing.assert_allclose(exact_loglik(model, as_params(model), y_fx),
                               arch_pointwise(y_fx, "skewt", list(p.values()), backcast=0.4), rtol=1e-8, atol=1e-10)


# --- (2) the recursion equals a naive Python loop ------------------------------------------------------------
@pytest.mark.parametrize("dist", DISTS)
@pytest.mark.parametrize("start", ["backcast", "sample", 0.7, "unconditional"])
def test_recursion_equals_naive_loop(y_fx, dist, start):
    model = EGARCH(dist=dist, variance_start=start)
    p = params_for(model)
    if start == "backcast":
        log_start = p["omega"] + p["beta"] * naive_log_backcast(y_fx - y_fx.mean())
    elif start == "sample":
        log_start = p["omega"] + p["beta"] * math.log(float(np.mean((y_fx - p["mu"]) ** 2)))
    elif start == "unconditional":
        shift = p["alpha"] * (quad_abs_mean(dist, p) - SQRT2_OV_PI)
        log_start = (p["omega"] + shift) / (1 - p["beta"])
    else:
        log_start = p["omega"] + p["beta"] * math.log(start)
    reference = naive_loglik(y_fx, p, dist, log_start)
    np.testing.assert_allclose(exact_loglik(model, as_params(model), y_fx), reference, rtol=1e-10, atol=1e-10)
    # The filter gives the same variances, with the one for T + 1 appended.
    variances = model.filter(p, y_fx)
    assert variances.shape == (len(y_fx) + 1,)
    assert math.log(variances[0]) == pytest.approx(log_start, rel=1e-12)


@pytest.mark.parametrize("dist", DISTS)
def test_abs_mean_equals_quadrature(dist):
    model = EGARCH(dist=dist)
    for nu, skew in ((7.0, -0.15), (4.5, 0.4), (30.0, 0.0), (2.5, -0.7)):
        values = {**PARAMS, "nu": nu, "skew": skew}
        assert float(model.abs_mean(params_for(model, values))) == pytest.approx(quad_abs_mean(dist, values),
                                                                                  rel=1e-8)


# --- (3) simulation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dist", DISTS)
def test_simulation_refilters_and_has_unit_variance_innovations(dist):
    model = EGARCH(dist=dist, variance_start="unconditional")
    p = {**params_for(model), "nu": 9.0} if dist != "normal" else params_for(model)
    n = 20_000
    sim = model.simulate(p, n, jax.random.PRNGKey(3))
    assert sim.y.shape == sim.variance.shape == (n,)
    # Re-filtering the simulated returns from the same start reproduces the simulated variances.
    np.testing.assert_allclose(model.filter(p, sim.y)[:-1], sim.variance, rtol=1e-10)
    # An integer seed is the same as the key it names.
    np.testing.assert_array_equal(model.simulate(p, 50, 3).y, model.simulate(p, 50, jax.random.PRNGKey(3)).y)
    z = (sim.y - p.get("mu", 0.0)) / np.sqrt(sim.variance)
    law = model.innovation(as_params(model, {**PARAMS, **p}))
    kurtosis = 3.0 if dist == "normal" else float(law.kurtosis())
    se_z2 = math.sqrt((kurtosis - 1.0) / n)
    assert abs(np.mean(z**2) - 1.0) < 4.0 * se_z2
    assert abs(np.mean(z)) < 4.0 / math.sqrt(n)
    abs_mean = float(model.abs_mean(p))
    assert abs(np.mean(np.abs(z)) - abs_mean) < 4.0 * math.sqrt((1.0 - abs_mean**2) / n)


def test_expected_variance_normal_closed_form_and_heavy_tails():
    model = EGARCH(dist="normal", mean="zero")
    p = as_params(model)
    state = jnp.asarray(0.3)
    expected = np.asarray(model.expected_variance(p, state, 4))
    assert expected[0] == pytest.approx(math.exp(0.3), rel=1e-12)

    # h = 2 by quadrature of E[exp(g(z))] against the normal density.
    def integrand(z):
        g = PARAMS["alpha"] * (abs(z) - SQRT2_OV_PI) + PARAMS["gamma"] * z
        return math.exp(g) * scipy.stats.norm.pdf(z)

    mgf = scipy.integrate.quad(integrand, -np.inf, 0.0)[0] + scipy.integrate.quad(integrand, 0.0, np.inf)[0]
    assert expected[1] == pytest.approx(math.exp(PARAMS["omega"] + PARAMS["beta"] * 0.3) * mgf, rel=1e-9)
    # h = 4 against simulated paths started from the same state.
    keys = jax.random.split(jax.random.PRNGKey(0), 200_000)
    _, states = jax.vmap(lambda k: _observation.simulate_path(model, p, 4, k, state))(keys)
    paths = np.exp(np.asarray(states))
    se = paths.std(axis=0) / math.sqrt(paths.shape[0])
    assert np.all(np.abs(paths.mean(axis=0) - expected) <= 4.0 * se + 1e-10 * expected)
    # Student t: E[exp(alpha |z|)] diverges, so the multi-step expectation is infinite.
    heavy = EGARCH(dist="t", mean="zero")
    values = np.asarray(heavy.expected_variance(as_params(heavy), state, 3))
    assert values[0] == pytest.approx(math.exp(0.3)) and np.all(np.isinf(values[1:]))
    assert heavy.default_forecast_method == "simulation" and model.default_forecast_method == "analytic"


# --- (4) the NumPyro program ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dist", DISTS)
def test_program_log_density_is_priors_plus_exact_loglik(y_fx, dist):
    from numpyro.infer.util import log_density

    model = EGARCH(dist=dist)
    y = jnp.asarray(y_fx[:300])
    p = as_params(model)
    priors = model.prior_distributions()
    expected = sum(float(getattr(priors, n).log_prob(getattr(p, n))) for n in model.param_names)
    expected += float(jnp.sum(exact_loglik(model, p, y)))
    actual, trace = log_density(model.program, (y,), {}, p._asdict())
    assert float(actual) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(np.asarray(trace["vol"]["value"]) ** 2, model.filter(p, y)[:-1], rtol=1e-12)


def test_posterior_helpers_shapes(y_fx):
    model = EGARCH(dist="t")
    y = y_fx[:100]
    rng = np.random.default_rng(0)
    draws = {n: np.full((2, 3), PARAMS[n]) + 0.001 * rng.standard_normal((2, 3)) for n in model.param_names}
    loglik = model.pointwise_loglik_draws(draws, y)
    assert loglik.shape == (2, 3, 100)
    one = {n: float(draws[n][1, 2]) for n in model.param_names}
    np.testing.assert_allclose(loglik[1, 2], exact_loglik(model, as_params(model, one), y), rtol=1e-12)
    draws["vol"] = np.sqrt(np.broadcast_to(model.filter(params_for(model), y)[:-1], (2, 3, 100)))
    assert model.predictive_draws(draws, jax.random.PRNGKey(0)).shape == (2, 3, 100)


# --- (5) input checks ------------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(y_fx):
    with pytest.raises(ValueError, match="dist must be"):
        EGARCH(dist="ged")
    with pytest.raises(ValueError, match="mean must be"):
        EGARCH(mean="ar")
    with pytest.raises(ValueError, match="variance_start"):
        EGARCH(variance_start=-1.0)
    with pytest.raises(ValueError, match="variance_start"):
        EGARCH(variance_start="ewma")
    with pytest.raises(ValueError, match="unknown parameter"):
        EGARCH(priors={"delta": ScaledBeta(2.0, 2.0)})
    model = EGARCH(dist="t")
    with pytest.raises(ValueError, match="outside its support"):
        model.simulate({**params_for(model), "beta": 1.3}, 10, 0)
    with pytest.raises(ValueError, match="not stationary"):
        model.simulate({**params_for(model), "beta": 1.0}, 10, 0)
    with pytest.raises(ValueError, match="outside its support"):
        bayesvol.log_likelihood(model, {**params_for(model), "nu": 1.5}, y_fx)
    with pytest.raises(ValueError, match="missing parameter"):
        bayesvol.log_likelihood(model, {"omega": 0.0}, y_fx)
    with pytest.raises(ValueError, match="num_timesteps"):
        model.simulate(params_for(model), 0, 0)
    with pytest.raises(ValueError, match="key"):
        model.simulate(params_for(model), 10, "seed")
    with pytest.raises(TypeError, match="no options"):
        exact_loglik(model, as_params(model), y_fx, num_particles=10)
    with pytest.raises(ValueError):
        bayesvol.log_likelihood(model, params_for(model), np.array([0.1, np.nan, 0.2]))
    # A prior on (-1.5, 1.5) lets beta out of the stationary region: an error when concrete, -inf when traced.
    wide = EGARCH(priors={"beta": ScaledBeta(2.0, 2.0, -1.5, 1.5)})
    outside = as_params(wide, {**PARAMS, "beta": 1.2})
    with pytest.raises(ValueError, match="not stationary"):
        exact_loglik(wide, outside, y_fx)
    with pytest.raises(ValueError, match="not stationary"):
        wide.filter(outside, y_fx)
    traced = jax.jit(lambda p: exact_loglik(wide, p, jnp.asarray(y_fx)))(outside)
    assert np.all(np.isneginf(np.asarray(traced)))
    # Far-off parameters with explosive feedback give a finite (negligible) likelihood, not an overflow.
    far = exact_loglik(wide, as_params(wide, {**PARAMS, "omega": 2.0, "alpha": -3.0, "gamma": 2.0}), y_fx)
    assert np.all(np.isfinite(np.asarray(far)))
    assert wide.describe() == "EGARCH(1,1,1), constant mean, normal innovations"


# --- estimation through the generic estimators -------------------------------------------------------------
@pytest.mark.parametrize("dist", ["normal", pytest.param("t", marks=pytest.mark.slow),
                                  pytest.param("skewt", marks=pytest.mark.slow)])
def test_mle_agrees_with_arch(y_dem, dist):
    model = EGARCH(dist=dist)
    result = bayesvol.fit(model, y_dem)
    am = arch.arch_model(y_dem, mean="Constant", vol="EGARCH", p=1, o=1, q=1, dist=dist, rescale=False)
    reference = am.fit(disp="off", options={"ftol": 1e-12, "maxiter": 2000})
    assert result.converged
    assert result.loglik == pytest.approx(reference.loglikelihood, abs=1e-3)
    for ours, theirs, se in zip(model.param_names, reference.params.values, reference.std_err.values, strict=True):
        assert abs(result.params[ours] - theirs) < 0.5 * se, ours


@pytest.mark.slow
def test_nuts_posterior_means_near_mle(y_fx):
    model = EGARCH(dist="normal")
    y = pd.Series(y_fx[:500])
    mle = bayesvol.fit(model, y)
    idata = bayesvol.sample(model, y, num_chains=1, num_warmup=300, num_samples=300, progress_bar=False, warn=False,
                            seed=1)
    loglik = idata.log_likelihood["y"]
    assert loglik.shape == (1, 300, 500)
    for name in model.param_names:
        draws = idata.posterior[name].values.ravel()
        assert abs(draws.mean() - mle.params[name]) < 1.5 * draws.std() + 0.02, name
