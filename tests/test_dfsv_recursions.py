"""DFSV state equations written once: the model's initial/transition laws, the path functions, the simulator,
the NumPyro program's latent paths and the prediction steps of the Bellman filter, the Rao-Blackwellised particle
filter and the Kalman filter of the factors all agree, driven by the same shocks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from numpyro import handlers

from bayesvol.filters.dfsv_bellman import bellman_filter
from bayesvol.filters.rbpf import rao_blackwellised_particle_filter
from bayesvol.models import DFSV
from bayesvol.models._base import as_params
from bayesvol.models._dfsv_kalman import filter_factors
from bayesvol.models._dfsv_state import (
    factor_path,
    log_variance_path,
    log_variance_var,
    simulate_from_shocks,
)

K, N, T = 2, 3, 30
SETTINGS = ["constant", "sv"]


def make_params(idiosyncratic):
    rng = np.random.default_rng(0)
    lam = rng.normal(0.8, 0.3, (N, K))
    lam[:K, :K] = np.tril(lam[:K, :K], -1) + np.eye(K)
    params = {"lambda_r": lam, "Phi_f": np.array([[0.3, 0.1], [-0.05, 0.2]]),
              "Phi_h": np.array([[0.9, 0.03], [0.02, 0.85]]), "mu": np.array([-0.5, -1.0]),
              "Q_h": np.array([[0.05, 0.01], [0.01, 0.04]])}
    if idiosyncratic == "constant":
        params["sigma2"] = rng.uniform(0.1, 0.4, N)
    else:
        params.update(mu_id=rng.uniform(-2.0, -1.0, N), phi_id=np.array([0.9, 0.8, 0.95]),
                      sigma_id=np.array([0.2, 0.3, 0.15]))
    return params


def setup(idiosyncratic):
    model = DFSV(num_factors=K, idiosyncratic=idiosyncratic)
    params = as_params(model, make_params(idiosyncratic))
    dim_g = K + (N if idiosyncratic == "sv" else 0)
    rng = np.random.default_rng(1)
    return model, params, rng.standard_normal((T, dim_g)), rng.standard_normal((T, K))


def block_moments(params, sv):
    """The model definition in plain numpy: mean, transition and shock covariance of g = (h[, h_id])."""
    mean, trans, cov = (np.asarray(getattr(params, n)) for n in ("mu", "Phi_h", "Q_h"))
    if sv:
        mean = np.concatenate([mean, params.mu_id])
        trans = scipy.linalg.block_diag(trans, np.diag(params.phi_id))
        cov = scipy.linalg.block_diag(cov, np.diag(np.asarray(params.sigma_id) ** 2))
    return mean, trans, cov


@pytest.mark.parametrize("idiosyncratic", SETTINGS)
def test_initial_and_transition_laws_reproduce_the_paths(idiosyncratic):
    model, params, z_g, z_f = setup(idiosyncratic)
    sv = idiosyncratic == "sv"
    g = np.asarray(log_variance_path(log_variance_var(params, sv), jnp.asarray(z_g)))
    h = g[:, :K]
    f = np.asarray(factor_path(params.Phi_f, jnp.asarray(h), jnp.asarray(z_f)))
    x = np.concatenate([f, g], -1)
    mean, trans, cov = block_moments(params, sv)
    phi_f = np.asarray(params.Phi_f)

    # t = 1: g_1 ~ N(mean, stationary), f_1 | h_1 ~ N(0, Gamma_f(h_1)); the same shocks give the path's values.
    first = model.initial(params)
    stationary = scipy.linalg.solve_discrete_lyapunov(trans, cov)
    np.testing.assert_allclose(np.asarray(first.g_loc), mean, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(first.g_scale_tril @ first.g_scale_tril.T), stationary, rtol=1e-10,
                               atol=1e-14)
    np.testing.assert_allclose(np.asarray(first.g_loc + first.g_scale_tril @ z_g[0]), g[0], rtol=1e-13)
    gamma_f = scipy.linalg.solve_discrete_lyapunov(phi_f, np.diag(np.exp(h[0])))
    np.testing.assert_allclose(np.linalg.cholesky(gamma_f) @ z_f[0], f[0], rtol=1e-10)
    np.testing.assert_allclose(np.asarray(first.f_loc), 0.0)
    density = (scipy.stats.multivariate_normal(mean, stationary).logpdf(g[0])
               + scipy.stats.multivariate_normal(np.zeros(K), gamma_f).logpdf(f[0]))
    np.testing.assert_allclose(float(first.log_prob(jnp.asarray(x[0]))), density, rtol=1e-10)

    # t > 1, all steps at once (batched over t): the transition's moments in numpy, then the same shocks.
    law = model.transition(params, jnp.asarray(x[:-1]))
    np.testing.assert_allclose(np.asarray(law.g_loc), mean + (g[:-1] - mean) @ trans.T, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(law.g_scale_tril @ law.g_scale_tril.T), cov, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.asarray(law.f_loc), f[:-1] @ phi_f.T, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.asarray(law.g_loc) + z_g[1:] @ np.asarray(law.g_scale_tril).T, g[1:], rtol=1e-13)
    np.testing.assert_allclose(np.asarray(law.f_loc) + np.exp(h[1:] / 2) * z_f[1:], f[1:], rtol=1e-12, atol=1e-14)
    density = [scipy.stats.multivariate_normal(mean + trans @ (g[t - 1] - mean), cov).logpdf(g[t])
               + scipy.stats.multivariate_normal(phi_f @ f[t - 1], np.diag(np.exp(h[t]))).logpdf(f[t])
               for t in range(1, T)]
    np.testing.assert_allclose(np.asarray(law.log_prob(jnp.asarray(x[1:]))), density, rtol=1e-10)


@pytest.mark.parametrize("idiosyncratic", SETTINGS)
def test_simulator_follows_the_state_equations(idiosyncratic):
    model, params, _, _ = setup(idiosyncratic)
    sv = idiosyncratic == "sv"
    key = jax.random.PRNGKey(4)
    sim = model.simulate(params, T, key)
    # The simulator's shocks (its documented draw) through the path functions and the measurement equation.
    shocks = np.asarray(jax.random.normal(key, (4, T, max(K, N))))
    z_g = np.concatenate([shocks[0, :, :K], shocks[2, :, :N]], -1) if sv else shocks[0, :, :K]
    g = np.asarray(log_variance_path(log_variance_var(params, sv), jnp.asarray(z_g)))
    f = np.asarray(factor_path(params.Phi_f, jnp.asarray(g[:, :K]), jnp.asarray(shocks[1, :, :K])))
    idio = np.exp(g[:, K:]) if sv else np.asarray(params.sigma2)
    np.testing.assert_array_equal(sim.h, g[:, :K])
    np.testing.assert_array_equal(sim.f, f)
    if sv:
        np.testing.assert_array_equal(sim.h_id, g[:, K:])
    else:
        assert sim.h_id is None
    np.testing.assert_allclose(sim.y, f @ np.asarray(params.lambda_r).T + np.sqrt(idio) * shocks[3, :, :N],
                               rtol=1e-13, atol=1e-15)
    # Conditional covariance of r_t given f_{t-1} and the log-variances.
    lam = np.asarray(params.lambda_r)
    for t in (0, 7, T - 1):
        want = lam @ np.diag(np.exp(sim.h[t])) @ lam.T + np.diag(np.broadcast_to(idio, (T, N))[t])
        np.testing.assert_allclose(sim.covariance[t], want, rtol=1e-12)
    assert sim.covariance.shape == (T, N, N)
    # An integer seed is the same as its key; simulate_from_shocks is the same recipe.
    again = model.simulate(params, T, 4)
    np.testing.assert_array_equal(again.y, sim.y)
    out = simulate_from_shocks(model, params, shocks[0, :, :K], shocks[1, :, :K], shocks[2, :, :N], shocks[3, :, :N])
    np.testing.assert_array_equal(np.asarray(out[0]), sim.y)


@pytest.mark.parametrize("idiosyncratic", SETTINGS)
@pytest.mark.parametrize("marginalize", [True, False])
def test_program_latent_paths_are_the_path_functions(idiosyncratic, marginalize):
    sv = idiosyncratic == "sv"
    model = DFSV(num_factors=K, idiosyncratic=idiosyncratic, marginalize_factors=marginalize)
    y = jnp.asarray(np.random.default_rng(2).standard_normal((T, N)))
    trace = handlers.trace(handlers.seed(model.program, jax.random.PRNGKey(3))).get_trace(y)
    value = {name: site["value"] for name, site in trace.items()}
    params = as_params(model, {name: value[name] for name in model.param_names})
    z = jnp.concatenate([value["h_std"], value["h_id_std"]], -1) if sv else value["h_std"]
    g = log_variance_path(log_variance_var(params, sv), z)
    np.testing.assert_allclose(np.asarray(value["h"]), np.asarray(g[:, :K]), rtol=1e-14)
    if sv:
        np.testing.assert_allclose(np.asarray(value["h_id"]), np.asarray(g[:, K:]), rtol=1e-14)
    if not marginalize:
        f = factor_path(params.Phi_f, value["h"], value["f_std"])
        np.testing.assert_allclose(np.asarray(value["f"]), np.asarray(f), rtol=1e-14)


def transition_push(model, params, mean_prev, cov_prev):
    """Moments of x_t when x_{t-1} ~ N(mean_prev, cov_prev), from the transition law alone: its mean map is linear
    with Jacobian J, so the mean is the map at mean_prev and the covariance J P J' plus the expected shock
    covariance, blockdiag(E[diag(e^{h_t})], L L')."""
    def loc(x):
        law = model.transition(params, x)
        return jnp.concatenate([law.f_loc, law.g_loc])

    law = model.transition(params, mean_prev)
    jac = jax.jacfwd(loc)(mean_prev)
    g_mean = law.g_loc
    g_cov = jac[K:] @ cov_prev @ jac[K:].T + law.g_scale_tril @ law.g_scale_tril.T
    shock = jnp.diag(jnp.exp(g_mean[:K] + 0.5 * jnp.diagonal(g_cov)[:K]))
    cov = jac @ cov_prev @ jac.T
    cov = cov.at[:K, :K].add(shock).at[K:, K:].add(law.g_scale_tril @ law.g_scale_tril.T)
    return loc(mean_prev), cov


@pytest.mark.parametrize("idiosyncratic", SETTINGS)
def test_bellman_prediction_is_the_transition_pushed_forward(idiosyncratic):
    model, params, _, _ = setup(idiosyncratic)
    y = jnp.asarray(model.simulate(params, T, 5).y)
    out = bellman_filter(model, params, y, 8)
    for t in (1, 2, T // 2, T - 1):
        mean, cov = transition_push(model, params, out.filtered_mean[t - 1], out.filtered_cov[t - 1])
        np.testing.assert_allclose(np.asarray(out.predicted_mean[t]), np.asarray(mean), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(out.predicted_cov[t]), np.asarray(cov), rtol=1e-10, atol=1e-13)
    # t = 1: the log-variances' stationary law (the initial law's), factor mean zero.
    first = model.initial(params)
    np.testing.assert_allclose(np.asarray(out.predicted_mean[0]),
                               np.concatenate([np.zeros(K), np.asarray(first.g_loc)]), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(out.predicted_cov[0, K:, K:]),
                               np.asarray(first.g_scale_tril @ first.g_scale_tril.T), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("idiosyncratic", SETTINGS)
def test_particle_moves_are_draws_from_the_transition(idiosyncratic):
    # Without resampling (ess_threshold=0) the stored particles at t are those at t - 1 moved once; the
    # move's standard-normal draws are recovered from the filter's documented key scheme and must give the
    # particles through the initial and transition laws.
    model, params, _, _ = setup(idiosyncratic)
    y = jnp.asarray(model.simulate(params, T, 6).y)
    num = 50
    key = jax.random.PRNGKey(7)
    out = rao_blackwellised_particle_filter(model, params, y, key, num, 0.0, True)
    particles = np.asarray(out.particles)
    dim_g = particles.shape[-1]
    key_first, key_scan = jax.random.split(key)
    first = model.initial(params)
    z0 = np.asarray(jax.random.normal(key_first, (num, dim_g)))
    np.testing.assert_allclose(particles[0], np.asarray(first.g_loc) + z0 @ np.asarray(first.g_scale_tril).T,
                               rtol=1e-13)
    for t in (1, 2, T - 1):
        _, key_move = jax.random.split(jax.random.fold_in(key_scan, t))
        z = np.asarray(jax.random.normal(key_move, (num, dim_g)))
        state = jnp.concatenate([jnp.zeros((num, K)), jnp.asarray(particles[t - 1])], -1)
        law = model.transition(params, state)
        np.testing.assert_allclose(particles[t], np.asarray(law.g_loc) + z @ np.asarray(law.g_scale_tril).T,
                                   rtol=1e-12, atol=1e-14)


def test_kalman_prediction_of_the_factors_is_the_transition_pushed_forward():
    # The prediction step shared by the program's Kalman filter and every particle of the particle filter.
    model, params, z_g, _ = setup("constant")
    h = log_variance_path(log_variance_var(params, False), jnp.asarray(z_g))
    y = jnp.asarray(np.random.default_rng(8).standard_normal((T, N)))
    out = filter_factors(params.lambda_r, params.Phi_f, h, params.sigma2, y)
    for t in (1, 5, T - 1):
        state = jnp.concatenate([out.filtered_mean[t - 1], h[t - 1]])
        law = model.transition(params, state)
        jac = jax.jacfwd(lambda f, h_prev=h[t - 1]: model.transition(params, jnp.concatenate([f, h_prev])).f_loc)(
            out.filtered_mean[t - 1])
        np.testing.assert_allclose(np.asarray(out.predicted_mean[t]), np.asarray(law.f_loc), rtol=1e-13, atol=1e-15)
        cov = jac @ out.filtered_cov[t - 1] @ jac.T + jnp.diag(jnp.exp(h[t]))
        np.testing.assert_allclose(np.asarray(out.predicted_cov[t]), np.asarray(cov), rtol=1e-12)
    gamma_f = scipy.linalg.solve_discrete_lyapunov(np.asarray(params.Phi_f), np.diag(np.exp(np.asarray(h[0]))))
    np.testing.assert_allclose(np.asarray(out.predicted_cov[0]), gamma_f, rtol=1e-10)
