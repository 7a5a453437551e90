"""SV model definition: simulation, the NumPyro program's density, priors and parameter checks."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats as st
from numpyro.distributions import constraints
from numpyro.infer.util import log_density

import bayesvol
from bayesvol.distributions import ScaledBeta, ShiftedExponential
from bayesvol.models import SV, SVParams, _base

TRUE = {"mu": -0.6, "phi": 0.9, "sigma": 0.35}


def _acf1(x):
    x = x - x.mean()
    return float(np.dot(x[1:], x[:-1]) / np.dot(x, x))


def test_simulated_log_variance_has_the_stationary_ar1_moments():
    # h is a Gaussian AR(1); its sample mean, variance and lag-1 autocorrelation over a long path must sit
    # within a few standard errors (from the AR(1) long-run variance) of the closed forms.
    sim = bayesvol.simulate(SV(), TRUE, num_timesteps=200_000, seed=3)
    mu, phi, sigma = TRUE["mu"], TRUE["phi"], TRUE["sigma"]
    n = sim.h.size
    var_h = sigma**2 / (1 - phi**2)
    se_mean = np.sqrt(var_h * (1 + phi) / (1 - phi) / n)
    assert abs(sim.h.mean() - mu) < 4 * se_mean
    se_var = var_h * np.sqrt(2 * (1 + phi**2) / (1 - phi**2) / n)
    assert abs(sim.h.var() - var_h) < 4 * se_var
    assert abs(_acf1(sim.h) - phi) < 4 * np.sqrt((1 - phi**2) / n)
    eps = sim.y * np.exp(-sim.h / 2)
    assert abs(eps.var() - 1) < 4 * np.sqrt(2 / n)


def test_leverage_correlates_return_shock_with_next_volatility_shock():
    params = dict(TRUE, rho=-0.5)
    sim = bayesvol.simulate(SV(leverage=True), params, num_timesteps=100_000, seed=4)
    eps = sim.y * np.exp(-sim.h / 2)
    eta = (sim.h[1:] - params["mu"] - params["phi"] * (sim.h[:-1] - params["mu"])) / params["sigma"]
    n = eta.size
    assert abs(np.corrcoef(eps[:-1], eta)[0, 1] - params["rho"]) < 4 * (1 - params["rho"] ** 2) / np.sqrt(n)
    assert abs(eta.var() - 1) < 4 * np.sqrt(2 / n)


def test_t_errors_have_unit_variance_and_t_kurtosis():
    nu = 8.0
    sim = bayesvol.simulate(SV(errors="t"), dict(TRUE, nu=nu), num_timesteps=400_000, seed=5)
    eps = sim.y * np.exp(-sim.h / 2)
    assert abs(eps.var() - 1) < 4 * np.sqrt((st.t(nu).moment(4) / (nu / (nu - 2)) ** 2 - 1) / eps.size)
    # A KS test of the standardised errors against the unit-variance t law.
    scaled = st.t(nu, scale=np.sqrt((nu - 2) / nu))
    assert st.kstest(eps[:20_000], scaled.cdf).pvalue > 1e-3


def _naive_log_joint(y, h, mu, phi, sigma, rho=None):
    """log p(theta) + log p(h | theta) + log p(y | h) by a plain loop with scipy, default priors."""
    total = st.norm(0, 10).logpdf(mu) + st.beta(5, 1.5).logpdf((phi + 1) / 2) - np.log(2)
    total += st.halfnorm(scale=1).logpdf(sigma)
    total += st.norm(mu, sigma / np.sqrt(1 - phi**2)).logpdf(h[0])
    for t in range(1, len(y)):
        loc = mu + phi * (h[t - 1] - mu)
        scale = sigma
        if rho is not None:
            loc += sigma * rho * y[t - 1] * np.exp(-h[t - 1] / 2)
            scale = sigma * np.sqrt(1 - rho**2)
        total += st.norm(loc, scale).logpdf(h[t])
    if rho is not None:
        total += st.beta(4, 4).logpdf((rho + 1) / 2) - np.log(2)
    for t in range(len(y)):
        total += st.norm(0, np.exp(h[t] / 2)).logpdf(y[t])
    return total


@pytest.mark.parametrize("leverage", [False, True])
def test_centred_program_density_equals_a_naive_loop(leverage):
    sim = bayesvol.simulate(SV(leverage=leverage), dict(TRUE, rho=-0.4) if leverage else TRUE, 60, seed=1)
    model = SV(leverage=leverage, parametrization="centered")
    values = dict(TRUE, h=jnp.asarray(sim.h)) | ({"rho": -0.4} if leverage else {})
    logp, _ = log_density(model.program, (jnp.asarray(sim.y),), {}, values)
    expected = _naive_log_joint(sim.y, sim.h, rho=-0.4 if leverage else None, **TRUE)
    assert float(logp) == pytest.approx(expected, rel=1e-10, abs=1e-8)


@pytest.mark.parametrize("leverage", [False, True])
def test_noncentred_path_is_the_naive_recursion(leverage):
    rng = np.random.default_rng(2)
    z, y = rng.normal(size=40), rng.normal(size=40)
    params = dict(TRUE, rho=0.3) if leverage else TRUE
    model = SV(leverage=leverage)
    h = np.asarray(_base.noncentred_path(model, _base.as_params(model, params), jnp.asarray(z), jnp.asarray(y)))
    mu, phi, sigma = TRUE["mu"], TRUE["phi"], TRUE["sigma"]
    expected = np.empty(40)
    expected[0] = mu + sigma / np.sqrt(1 - phi**2) * z[0]
    for t in range(1, 40):
        if leverage:
            eps = y[t - 1] * np.exp(-expected[t - 1] / 2)
            expected[t] = mu + phi * (expected[t - 1] - mu) + sigma * (0.3 * eps + np.sqrt(1 - 0.09) * z[t])
        else:
            expected[t] = mu + phi * (expected[t - 1] - mu) + sigma * z[t]
    np.testing.assert_allclose(h, expected, rtol=1e-12)


def test_t_emission_is_a_unit_variance_t():
    model = SV(errors="t")
    params = _base.as_params(model, dict(TRUE, nu=5.0))
    y = np.linspace(-6, 6, 13)
    got = np.asarray(model.emission(params, jnp.full(13, 0.4)).log_prob(y))
    scale = np.exp(0.2) * np.sqrt(3 / 5)
    np.testing.assert_allclose(got, st.t(5, scale=scale).logpdf(y), rtol=1e-12)


def test_user_priors_replace_defaults_and_define_the_support():
    tight = dist.TruncatedNormal(0.5, 0.01, low=-1.0, high=1.0)
    model = SV(priors={"phi": tight})
    priors = model.prior_distributions()
    assert priors.phi is tight and isinstance(priors.mu, dist.Normal)
    assert model != SV() and SV() == SV() and hash(SV()) == hash(SV())
    with pytest.raises(ValueError, match="unknown parameter 'beta'"):
        SV(priors={"beta": dist.Normal(0, 1)})
    with pytest.raises(TypeError, match="numpyro distribution"):
        SV(priors={"phi": 0.5})
    with pytest.raises(ValueError, match="scalar distribution"):
        SV(priors={"mu": dist.Normal(jnp.zeros(2), 1.0)})


def test_prior_supports_are_the_constraints():
    phi_prior, nu_prior = ScaledBeta(5.0, 1.5, -1.0, 1.0), ShiftedExponential(0.1, 2.0)
    assert isinstance(phi_prior.support, constraints.interval)
    assert float(phi_prior.support.lower_bound) == -1 and float(phi_prior.support.upper_bound) == 1
    assert float(nu_prior.support.lower_bound) == 2
    # The densities agree with scipy's.
    x = np.array([-0.9, 0.0, 0.95])
    np.testing.assert_allclose(phi_prior.log_prob(x), st.beta(5, 1.5, loc=-1, scale=2).logpdf(x), rtol=1e-12)
    np.testing.assert_allclose(nu_prior.log_prob(np.array([2.5, 10.0])), st.expon(2, 10).logpdf([2.5, 10.0]),
                               rtol=1e-12)
    draws = phi_prior.sample(jax.random.PRNGKey(0), (20_000,))
    assert abs(float(draws.mean()) - (2 * 5 / 6.5 - 1)) < 4 * float(draws.std()) / np.sqrt(20_000)


@pytest.mark.parametrize(
    ("params", "match"),
    [({"mu": 0.0, "phi": 1.2, "sigma": 0.2}, "phi=1.2 is outside its support"),
     ({"mu": 0.0, "phi": 0.9, "sigma": -0.1}, "sigma=-0.1 is outside"),
     ({"mu": 0.0, "phi": 0.9}, "missing parameter"),
     ({"mu": 0.0, "phi": 0.9, "sigma": 0.1, "nu": 5.0}, "unknown parameter")],
)
def test_parameters_outside_support_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        bayesvol.simulate(SV(), params, 100)


def test_model_options_are_checked():
    with pytest.raises(ValueError, match="errors must be"):
        SV(errors="cauchy")
    with pytest.raises(NotImplementedError, match="normal"):
        SV(errors="t", leverage=True)
    with pytest.raises(ValueError, match="num_timesteps"):
        bayesvol.simulate(SV(), TRUE, 1)


def test_simulation_is_reproducible_and_a_params_tuple_works():
    a = bayesvol.simulate(SV(), TRUE, 50, seed=7)
    b = bayesvol.simulate(SV(), SVParams(**TRUE), 50, seed=7)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.y, bayesvol.simulate(SV(), TRUE, 50, seed=8).y)
