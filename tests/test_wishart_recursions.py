"""Wishart SV: the scale recursion and the emission density are computed once and agree everywhere they are used.

The transition scale S_{t-1} = L Omega_{t-1}^d L' / nu and the emission N(0, Omega_t^{-1}) are checked against
direct numpy/scipy computations, against what the EIS/particle-filter step uses, and against the simulator and
the NumPyro program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import handlers
from scipy import stats

import bayesvol  # noqa: F401  (float64)
from bayesvol.distributions.wishart import (
    GaussianPrecision,
    gaussian_precision_log_prob,
    wishart_sv_root,
    wishart_sv_scale,
    wishart_sv_scale_from_root,
)
from bayesvol.filters import eis_wishart
from bayesvol.models._base import as_params
from bayesvol.models._wishart_linalg import scale_inverse, steady_state
from bayesvol.models.wishart_sv import WishartSV, _precision_factors

MODEL = WishartSV()
PARAMS = {"nu": 9.0, "d": 0.6, "A": np.array([[1.2, 0.3], [0.3, 0.8]])}
PARAMS_3 = {"nu": 11.0, "d": 0.4, "A": np.array([[2.0, 0.4, -0.2], [0.4, 1.5, 0.3], [-0.2, 0.3, 1.0]])}


def random_spd(rng, k, size=()):
    x = rng.normal(size=size + (k, k))
    return x @ np.swapaxes(x, -1, -2) / k + 0.5 * np.eye(k)


def direct_power(matrix, power):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * values**power) @ vectors.T


def direct_scale(a, omega_prev, d, nu, root="cholesky"):
    """S = R Omega^d R' / nu with R the lower Cholesky factor or the symmetric root of A (plain numpy)."""
    r = np.linalg.cholesky(a) if root == "cholesky" else direct_power(a, 0.5)
    return r @ direct_power(omega_prev, d) @ r.T / nu


# ---------------------------------------------------------------- the scale matrix


@pytest.mark.parametrize("root", ["cholesky", "symmetric"])
def test_scale_and_its_inverse_match_a_direct_computation(root):
    rng = np.random.default_rng(0)
    a, omegas = random_spd(rng, 3), random_spd(rng, 3, (4,)) * 5.0
    a_root = wishart_sv_root(a, root)
    lower = root == "cholesky"
    scale = np.asarray(wishart_sv_scale_from_root(a_root, omegas, 0.4, 11.0))
    s_inv, logdet = wishart_sv_scale_from_root(a_root, omegas, 0.4, 11.0, inverse=True, lower=lower)
    for i, omega in enumerate(omegas):
        expected = direct_scale(a, omega, 0.4, 11.0, root)
        np.testing.assert_allclose(scale[i], expected, rtol=1e-11)
        np.testing.assert_allclose(np.asarray(s_inv[i]), np.linalg.inv(expected), rtol=1e-9)
        assert float(logdet[i]) == pytest.approx(np.linalg.slogdet(expected)[1], rel=1e-11)
    np.testing.assert_array_equal(np.asarray(wishart_sv_scale(a, omegas, 0.4, 11.0, root=root)), scale)
    # a known log|Omega| gives the same log|S|
    _, logdet_given = wishart_sv_scale_from_root(a_root, omegas, 0.4, 11.0, inverse=True, lower=lower,
                                                 logdet_prev=np.linalg.slogdet(omegas)[1])
    np.testing.assert_allclose(np.asarray(logdet_given), np.asarray(logdet), rtol=1e-12)


def test_model_scale_transition_and_initial_use_the_cholesky_root():
    rng = np.random.default_rng(1)
    params = as_params(MODEL, PARAMS_3)
    omega = random_spd(rng, 3) * 4.0
    expected = direct_scale(PARAMS_3["A"], omega, PARAMS_3["d"], PARAMS_3["nu"])
    np.testing.assert_allclose(np.asarray(MODEL.scale_matrix(params, jnp.asarray(omega))), expected, rtol=1e-11)
    law = MODEL.transition(params, jnp.asarray(omega))
    np.testing.assert_allclose(np.asarray(law.scale_matrix), expected, rtol=1e-11)
    assert float(law.concentration) == PARAMS_3["nu"]
    omega_bar = np.asarray(MODEL.steady_state(params))
    np.testing.assert_allclose(np.asarray(MODEL.initial(params).scale_matrix),
                               direct_scale(PARAMS_3["A"], omega_bar, PARAMS_3["d"], PARAMS_3["nu"]), rtol=1e-11)
    # the steady state is the fixed point of the conditional mean nu S
    np.testing.assert_allclose(PARAMS_3["nu"] * direct_scale(PARAMS_3["A"], omega_bar, PARAMS_3["d"], PARAMS_3["nu"]),
                               omega_bar, rtol=1e-9)


def test_transition_scale_equals_the_one_of_the_eis_and_particle_filter_step():
    """The EIS / fully adapted PF carry S_t^{-1} and log|S_t|: the inverse and log-determinant of the scale of
    ``transition`` at each draw (first step: of ``initial``)."""
    params = as_params(MODEL, PARAMS)
    k, num_draws = 2, 6
    chol_a = jnp.linalg.cholesky(params.A)
    omega0 = steady_state(chol_a, params.d)
    s_inv0, logdet0 = eis_wishart._initial_carry(omega0, num_draws, params.nu, params.d, chol_a)
    initial_scale = np.asarray(MODEL.initial(params).scale_matrix)
    np.testing.assert_allclose(np.asarray(s_inv0[0]), np.linalg.inv(initial_scale), rtol=1e-10)
    assert float(logdet0[0]) == pytest.approx(np.linalg.slogdet(initial_scale)[1], rel=1e-12)

    key_d, key_o = jax.random.split(jax.random.PRNGKey(0))
    zd, zo = jax.random.normal(key_d, (num_draws, k)), jax.random.normal(key_o, (num_draws, 1))
    y_t = jnp.array([0.4, -0.7])
    omega, s_inv, logdet_s, logdet_omega, *_ = eis_wishart._propagate(
        s_inv0, logdet0, y_t, 0.0, jnp.zeros((k, k)), zd, zo, params.nu, params.d, chol_a)
    scales = np.asarray(MODEL.transition(params, omega).scale_matrix)
    np.testing.assert_allclose(np.asarray(s_inv), np.linalg.inv(scales), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(logdet_s), np.linalg.slogdet(scales)[1], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(logdet_omega), np.linalg.slogdet(np.asarray(omega))[1], rtol=1e-10)
    # scale_inverse (the model's convention) is the same function
    direct_inv, direct_logdet = scale_inverse(omega, params.nu, params.d, chol_a)
    np.testing.assert_allclose(np.asarray(direct_inv), np.asarray(s_inv), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(direct_logdet), np.asarray(logdet_s), rtol=1e-12)


def test_simulator_follows_the_transition_and_emission_laws():
    """Standardised by the scale of ``transition``, the simulated precisions are iid W_k(nu, I); standardised by
    the precisions, the returns are iid N(0, I). Means and variances within 4.5 Monte Carlo standard errors.

    With S_{t-1} = L L', Z_t = L^{-1} Omega_t L^{-T} ~ W_k(nu, I) given the past, so E[Omega_t | Omega_{t-1}] =
    nu S_{t-1} is E[Z_t] = nu I; Var(Z_ii) = 2 nu and Var(Z_ij) = nu for i != j.
    """
    params = as_params(MODEL, PARAMS)
    T, nu = 4000, PARAMS["nu"]
    sim = MODEL.simulate(params, T, 11)
    precision = jnp.asarray(sim.precision)
    previous = jnp.concatenate([MODEL.steady_state(params)[None], precision[:-1]])
    chol_s = jnp.linalg.cholesky(MODEL.scale_matrix(params, previous))
    half = jax.scipy.linalg.solve_triangular(chol_s, precision, lower=True)
    z = np.asarray(jax.scipy.linalg.solve_triangular(chol_s, jnp.swapaxes(half, -1, -2), lower=True))
    entries = {"z11": (z[:, 0, 0], nu, 2 * nu), "z22": (z[:, 1, 1], nu, 2 * nu), "z21": (z[:, 1, 0], 0.0, nu)}
    for name, (values, mean, variance) in entries.items():
        assert abs(values.mean() - mean) < 4.5 * np.sqrt(variance / T), name
        # the standard error of a mean square is that of the squares' mean
        centred = values - mean
        se_var = np.sqrt(np.var(centred**2) / T)
        assert abs(np.mean(centred**2) - variance) < 4.5 * se_var, name
    # returns: F_t' y_t ~ N(0, I) with Omega_t = F_t F_t'
    standard = np.asarray(jnp.einsum("tji,tj->ti", jnp.linalg.cholesky(precision), jnp.asarray(sim.y)))
    assert np.all(np.abs(standard.mean(axis=0)) < 4.5 / np.sqrt(T))
    cov = np.cov(standard, rowvar=False)
    assert np.all(np.abs(np.diag(cov) - 1.0) < 4.5 * np.sqrt(2.0 / T))
    assert abs(cov[0, 1]) < 4.5 / np.sqrt(T)


def test_simulate_takes_a_seed_or_a_key_and_returns_the_covariance():
    params = as_params(MODEL, PARAMS)
    by_seed = MODEL.simulate(params, 30, 5)
    by_key = MODEL.simulate(params, 30, jax.random.PRNGKey(5))
    np.testing.assert_array_equal(by_seed.y, by_key.y)
    np.testing.assert_array_equal(by_seed.precision, by_key.precision)
    assert by_seed._fields[0] == "y" and by_seed.covariance.shape == (30, 2, 2)
    np.testing.assert_allclose(by_seed.covariance, np.linalg.inv(by_seed.precision), rtol=1e-12)
    np.testing.assert_array_equal(bayesvol.simulate(MODEL, PARAMS, 30, seed=5).y, by_seed.y)


# ---------------------------------------------------------------- the emission density


def test_emission_log_density_matches_scipy_in_every_form():
    rng = np.random.default_rng(2)
    omegas = random_spd(rng, 3, (5,)) * 3.0
    y = rng.normal(size=3)
    reference = np.array([stats.multivariate_normal(np.zeros(3), np.linalg.inv(o)).logpdf(y) for o in omegas])
    forms = {
        "precision_tril": {"precision_tril": jnp.linalg.cholesky(omegas)},
        "covariance_tril": {"covariance_tril": jnp.linalg.cholesky(jnp.linalg.inv(omegas))},
        "precision": {"precision": jnp.asarray(omegas), "logdet_precision": np.linalg.slogdet(omegas)[1]},
    }
    for name, form in forms.items():
        np.testing.assert_allclose(np.asarray(gaussian_precision_log_prob(y, **form)), reference, rtol=1e-11,
                                   err_msg=name)
    np.testing.assert_allclose(np.asarray(GaussianPrecision(jnp.asarray(omegas)).log_prob(y)), reference, rtol=1e-11)
    params = as_params(MODEL, PARAMS_3)
    np.testing.assert_allclose(np.asarray(MODEL.emission(params, jnp.asarray(omegas)).log_prob(y)), reference,
                               rtol=1e-11)
    # one observation per precision
    ys = rng.normal(size=(5, 3))
    per_row = [stats.multivariate_normal(np.zeros(3), np.linalg.inv(o)).logpdf(v) for o, v in zip(omegas, ys,
                                                                                                 strict=True)]
    np.testing.assert_allclose(np.asarray(gaussian_precision_log_prob(ys, precision_tril=jnp.linalg.cholesky(omegas))),
                               per_row, rtol=1e-11)
    with pytest.raises(ValueError, match="exactly one"):
        gaussian_precision_log_prob(y, precision=jnp.asarray(omegas))


def test_eis_step_weight_uses_the_emission_and_transition_densities():
    """An EIS / fully adapted PF weight (zero kernels: the conjugate sampler) is log g + log p - log q, with g the
    emission density, p the transition density and q the sampler's density, all recomputed with scipy; the
    conjugate ratio g p / W(m, M^{-1}) is the integrating constant chi_t for every draw."""
    params = as_params(MODEL, PARAMS)
    k, num_draws, nu = 2, 5, PARAMS["nu"]
    chol_a = jnp.linalg.cholesky(params.A)
    s_inv0, logdet0 = eis_wishart._initial_carry(steady_state(chol_a, params.d), num_draws, params.nu, params.d,
                                                 chol_a)
    key_d, key_o = jax.random.split(jax.random.PRNGKey(3))
    zd, zo = jax.random.normal(key_d, (num_draws, k)), jax.random.normal(key_o, (num_draws, 1))
    y_t = np.array([0.3, -0.2])
    omega, *_, log_w, log_chi, _ = eis_wishart._propagate(s_inv0, logdet0, jnp.asarray(y_t), 0.0, jnp.zeros((k, k)),
                                                          zd, zo, params.nu, params.d, chol_a)
    scale = np.linalg.inv(np.asarray(s_inv0[0]))
    sampler = stats.wishart(df=nu + 1.0, scale=np.linalg.inv(np.asarray(s_inv0[0]) + np.outer(y_t, y_t)))
    log_g = np.array([stats.multivariate_normal(np.zeros(k), np.linalg.inv(o)).logpdf(y_t) for o in omega])
    log_p = np.array([stats.wishart(df=nu, scale=scale).logpdf(o) for o in omega])
    log_q = np.array([sampler.logpdf(o) for o in omega])
    np.testing.assert_allclose(log_g + log_p - log_q, float(log_chi[0]), rtol=1e-9)
    # the sampler draws the Bartlett diagonal from a smooth surrogate of chi^2_{m - i + 1}: its density ratio
    df_diag = nu + 1.0 - np.arange(k)
    x = np.asarray(eis_wishart._chi_square_from_normal(zd, df_diag))
    surrogate = np.sum(np.asarray(eis_wishart.bartlett_chi_square_log_density(x, df_diag))
                       - stats.chi2(df_diag).logpdf(x), axis=-1)
    np.testing.assert_allclose(np.asarray(log_w), log_g + log_p - log_q - surrogate, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- the NumPyro program


def test_program_precisions_follow_the_transition_and_its_factor_is_the_emission():
    """The program's Omega_t = chol(S_{t-1}) B_t B_t' chol(S_{t-1})' with S from ``transition``, and its
    likelihood factor is the sum of the emission log-densities."""
    rng = np.random.default_rng(4)
    T, k = 12, 2
    y = rng.normal(size=(T, k))
    params = as_params(MODEL, PARAMS)
    diag = jnp.asarray(rng.chisquare(7.0, size=(T, k)))
    offdiag = jnp.asarray(rng.normal(size=(T, 1)))
    values = {"nu": params.nu, "d": params.d, "A": params.A, "bartlett_diag": diag, "bartlett_offdiag": offdiag}
    trace = handlers.trace(handlers.substitute(WishartSV(num_assets=k).program, data=values)).get_trace(jnp.asarray(y))
    cov = np.asarray(trace["cov"]["value"])
    omega_prev = np.asarray(MODEL.steady_state(params))
    factors = np.asarray(_precision_factors(MODEL, params, diag, offdiag))
    for t in range(T):
        bartlett = np.diag(np.sqrt(np.asarray(diag[t])))
        bartlett[1, 0] = float(offdiag[t, 0])
        chol_s = np.linalg.cholesky(direct_scale(PARAMS["A"], omega_prev, PARAMS["d"], PARAMS["nu"]))
        omega = chol_s @ bartlett @ bartlett.T @ chol_s.T
        np.testing.assert_allclose(factors[t], chol_s @ bartlett, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.linalg.inv(cov[t]), omega, rtol=1e-8)
        omega_prev = omega
    factor = np.asarray(trace["y"]["fn"].log_factor)
    emission = [stats.multivariate_normal(np.zeros(k), cov[t]).logpdf(y[t]) for t in range(T)]
    np.testing.assert_allclose(np.ravel(factor), emission, rtol=1e-9)
