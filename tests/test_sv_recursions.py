"""SV: the NumPyro program, the simulator and the filters share one state equation (``initial``/``transition``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.handlers import condition, seed, trace

import bayesvol
from bayesvol.models import SV

PARAMS = {"mu": -0.7, "phi": 0.93, "sigma": 0.25}


def _naive_path(mu, phi, sigma, z, y=None, rho=None):
    """h_1 = mu + sigma / sqrt(1 - phi^2) z_1, h_t = mu + phi (h_{t-1} - mu) + sigma z_t (leverage: shifted, scaled)."""
    h = np.empty_like(z)
    h[0] = mu + sigma / np.sqrt(1.0 - phi**2) * z[0]
    for t in range(1, z.size):
        loc = mu + phi * (h[t - 1] - mu)
        if rho is None:
            h[t] = loc + sigma * z[t]
        else:
            eps = y[t - 1] * np.exp(-0.5 * h[t - 1])
            h[t] = loc + sigma * rho * eps + sigma * np.sqrt(1.0 - rho**2) * z[t]
    return h


@pytest.mark.parametrize("leverage", [False, True])
def test_program_path_is_the_state_equation(leverage):
    model = SV(leverage=leverage)
    params = dict(PARAMS, rho=-0.4) if leverage else PARAMS
    rng = np.random.default_rng(3)
    z = rng.standard_normal(60)
    y = rng.standard_normal(60)
    conditioned = condition(model.program, data={**params, "h_std": jnp.asarray(z)})
    sites = trace(seed(conditioned, jax.random.PRNGKey(0))).get_trace(jnp.asarray(y))
    expected = _naive_path(params["mu"], params["phi"], params["sigma"], z, y, params.get("rho"))
    np.testing.assert_allclose(np.asarray(sites["h"]["value"]), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(sites["vol"]["value"]), np.exp(0.5 * expected), rtol=1e-12)


def test_simulator_follows_the_transition_law():
    """Regressing simulated h_t on h_{t-1} recovers phi and the innovation SD within their sampling error."""
    sim = bayesvol.simulate(SV(), PARAMS, 20_000, seed=5)
    h_prev, h_next = sim.h[:-1] - PARAMS["mu"], sim.h[1:] - PARAMS["mu"]
    phi_hat = float(h_prev @ h_next / (h_prev @ h_prev))
    resid = h_next - phi_hat * h_prev
    se_phi = np.sqrt(resid.var() / (h_prev @ h_prev))
    assert abs(phi_hat - PARAMS["phi"]) < 4 * se_phi
    assert abs(resid.std() - PARAMS["sigma"]) < 4 * PARAMS["sigma"] / np.sqrt(2 * resid.size)
    np.testing.assert_allclose(sim.variance, np.exp(sim.h), rtol=1e-12)
    # the returns given h are the emission law: standardised returns have unit variance
    z = sim.y * np.exp(-0.5 * sim.h)
    assert abs(z.var() - 1.0) < 4 * np.sqrt(2.0 / z.size)


def test_simulate_takes_a_seed_or_a_key():
    model = SV()
    by_seed = model.simulate(model.check_parameters(PARAMS), 30, 11)
    by_key = model.simulate(model.check_parameters(PARAMS), 30, jax.random.PRNGKey(11))
    np.testing.assert_array_equal(by_seed.y, by_key.y)
    np.testing.assert_array_equal(by_seed.h, bayesvol.simulate(model, PARAMS, 30, seed=11).h)
