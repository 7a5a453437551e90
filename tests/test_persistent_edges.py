"""Persistent and edge parameter values: each reported breakdown (NaN, -inf, infinite paths, NaN gradients)
is either computed correctly or refused with an error that names the parameter and the fix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

import bayesvol
from bayesvol.models import EGARCH, SV, WishartSV
from bayesvol.models._wishart_linalg import steady_state

T = 30
A_MODERATE = np.array([[1.3, 0.4], [0.4, 0.8]])
OMEGA_TARGET = np.array([[1.2, 0.3], [0.3, 0.8]])


def _power(matrix, p):
    return np.real(scipy.linalg.fractional_matrix_power(matrix, p))


def _scaled_a(d):
    """A = Omega^(1-d): a stationary precision of order one at any d (scipy's fractional power)."""
    return _power(OMEGA_TARGET, 1.0 - d)


def _plain_iteration(a, d, num_iterations):
    """The fixed-point iteration Omega <- L Omega^d L' from A^(1/(1-d)), in numpy/scipy."""
    chol = np.linalg.cholesky(a)
    omega = _power(a, 1.0 / (1.0 - d))
    for _ in range(num_iterations):
        omega = chol @ _power(omega, d) @ chol.T
        omega = 0.5 * (omega + omega.T)
    return omega


def _relative_residual(omega, a, d):
    """Largest |eigenvalue| of Omega^{-1/2} (L Omega^d L' - Omega) Omega^{-1/2}, computed with scipy."""
    chol = np.linalg.cholesky(a)
    gap = chol @ _power(omega, d) @ chol.T - omega
    root_inv = _power(omega, -0.5)
    return float(np.max(np.abs(np.linalg.eigvalsh(root_inv @ gap @ root_inv))))


# --- Wishart SV: the stationary precision and the likelihoods at persistent d ------------------------------

def test_steady_state_agrees_with_the_plain_iteration_at_moderate_d():
    for d in (0.2, 0.5, 0.7):
        # 400 contraction steps with factor d <= 0.7 leave far less than 1e-14 of the start's error.
        expected = _plain_iteration(A_MODERATE, d, 400)
        got = np.asarray(steady_state(np.linalg.cholesky(A_MODERATE), d))
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("d", [0.98, 0.999, 0.9999])
def test_steady_state_is_the_fixed_point_at_persistent_d(d):
    """The fixed point, checked with scipy's fractional matrix power. The former 100 plain passes contract
    the error by d^100 only (0.13 at d = 0.98, 0.9 at d = 0.999) and stopped visibly short of it."""
    a = _scaled_a(d)
    got = np.asarray(steady_state(np.linalg.cholesky(a), d))
    # The residual is that of one pass of the map; the distance to the fixed point is up to 1/(1-d) times it.
    assert _relative_residual(got, a, d) < 1e-9 * (1.0 - d)
    assert np.max(np.abs(_plain_iteration(a, d, 100) - got)) > 1e-3  # what the plain iteration gave


def test_steady_state_derivative_matches_finite_differences_at_persistent_d():
    d = 0.98
    a = _scaled_a(d)
    chol = jnp.asarray(np.linalg.cholesky(a))
    weights = jnp.array([[1.0, 0.3], [0.3, 2.0]])

    def f(chol, d):
        return jnp.sum(steady_state(chol, d) * weights)

    grad_chol, grad_d = jax.jit(jax.grad(f, argnums=(0, 1)))(chol, d)
    step = 1e-6
    numeric_d = (f(chol, d + step) - f(chol, d - step)) / (2 * step)
    bump = jnp.zeros((2, 2)).at[1, 0].set(step)
    numeric_chol = (f(chol + bump, d) - f(chol - bump, d)) / (2 * step)
    # Central differences: truncation of order step^2 times the third derivative, round-off 1e-16 / step.
    np.testing.assert_allclose(float(grad_d), float(numeric_d), rtol=1e-6)
    np.testing.assert_allclose(float(grad_chol[1, 0]), float(numeric_chol), rtol=1e-6)


@pytest.mark.parametrize("d", [0.98, 0.999])
def test_initial_law_matches_scipy_wishart_at_persistent_d(d):
    """log W(Omega; nu, S_0) with S_0 = L Omega_bar^d L' / nu, against scipy.stats.wishart."""
    model = WishartSV()
    a = _scaled_a(d)
    params = model.params_type(nu=jnp.asarray(7.0), d=jnp.asarray(d), A=jnp.asarray(a))
    omega_bar = np.asarray(model.steady_state(params))
    chol = np.linalg.cholesky(a)
    scale = chol @ _power(omega_bar, d) @ chol.T / 7.0
    x = np.array([[1.1, 0.2], [0.2, 0.9]])
    expected = scipy.stats.wishart(df=7.0, scale=0.5 * (scale + scale.T)).logpdf(x)
    np.testing.assert_allclose(float(model.initial(params).log_prob(jnp.asarray(x))), expected, rtol=1e-9)


@pytest.mark.parametrize("d", [0.98, 0.999])
def test_wishart_likelihoods_are_finite_at_persistent_d(d):
    """EIS (value and gradient) and the particle filter at d = 0.98, 0.999 with A scaled to the data."""
    model = WishartSV()
    y = np.random.default_rng(0).standard_normal((T, 2))
    params = {"nu": 8.0, "d": d, "A": _scaled_a(d)}
    assert np.isfinite(bayesvol.log_likelihood(model, params, y, method="pf", num_particles=64))
    eis = bayesvol.log_likelihood_fn(model, y, method="eis", num_draws=16)
    value, grad = jax.jit(jax.value_and_grad(eis))(params)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(grad))


def test_wishart_program_log_density_and_gradient_are_finite_at_persistent_d():
    from numpyro.infer.util import log_density

    y = jnp.asarray(np.random.default_rng(0).standard_normal((T, 2)))
    model = WishartSV(num_assets=2)

    value_and_grad = jax.jit(jax.value_and_grad(lambda values: log_density(model.program, (y,), {}, values)[0]))
    for d in (0.98, 0.999):
        values = {"nu": 8.0, "d": d, "A": jnp.asarray(_scaled_a(d)), "bartlett_diag": jnp.full((T, 2), 7.0),
                  "bartlett_offdiag": jnp.zeros((T, 1))}
        value, grad = value_and_grad(values)
        assert np.isfinite(float(value))
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(grad))


def test_wishart_out_of_range_stationary_precision_is_refused_by_name():
    """A kept at a value that suits d = 0.5 puts Omega_bar ~ A^100 out of double range at d = 0.99."""
    model = WishartSV()
    y = np.random.default_rng(0).standard_normal((T, 2))
    params = {"nu": 8.0, "d": 0.99, "A": np.array([[0.8, 0.2], [0.2, 0.5]])}
    for call in (lambda: bayesvol.log_likelihood(model, params, y, method="eis", num_draws=16),
                 lambda: bayesvol.log_likelihood(model, params, y, method="pf", num_particles=64),
                 lambda: bayesvol.simulate(model, params, num_timesteps=T, seed=0)):
        with pytest.raises(ValueError, match=r"d = 0\.99 and A .*A = Omega_hat\^\(1-d\)"):
            call()


# --- SV at |phi| = 1 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("phi", [1.0, -1.0])
def test_sv_refuses_phi_on_the_edge_in_every_entry_point(phi):
    model = SV()
    y = np.random.default_rng(0).standard_normal(40)
    params = {"mu": 0.0, "phi": phi, "sigma": 0.2}
    calls = [lambda m=method: bayesvol.log_likelihood(model, params, y, method=m)
             for method in ("qml", "bellman", "pf", "eis")]
    calls += [lambda: bayesvol.log_likelihood_fn(model, y, method="qml")(params),
              lambda: bayesvol.simulate(model, params, num_timesteps=30, seed=0),
              lambda: bayesvol.fit(model, y, method="qml", start=params)]
    for call in calls:
        with pytest.raises(ValueError, match=r"phi = -?1 is not in the open interval \(-1, 1\)"):
            call()


def test_sv_accepts_phi_just_inside_the_edge():
    y = np.random.default_rng(0).standard_normal(40)
    value = bayesvol.log_likelihood(SV(), {"mu": 0.0, "phi": 0.9999, "sigma": 0.2}, y, method="qml")
    assert np.isfinite(value)


# --- EGARCH with a negative size effect ----------------------------------------------------------------------

def test_egarch_gradient_is_finite_for_an_explosive_negative_alpha():
    """alpha < -|gamma| drives ln sigma^2 to its clip at -700; e_t^2 then overflowed and every gradient was NaN."""
    y = np.random.default_rng(1).standard_normal(25)
    params = {"mu": -0.45, "omega": -0.99, "alpha": -0.18, "gamma": 0.13, "beta": 0.82}
    value, grad = jax.value_and_grad(bayesvol.log_likelihood_fn(EGARCH(), y))(params)
    # Where |e_t| exceeds the cap the density is zero: -inf, which samplers reject (a finite but flat value let
    # NUTS drift far off), with a derivative of zero rather than NaN.
    assert float(value) == -np.inf or float(value) < -1e100
    assert all(np.isfinite(float(leaf)) for leaf in jax.tree_util.tree_leaves(grad))


def test_egarch_cap_leaves_ordinary_likelihoods_unchanged():
    """The cap binds only beyond |e_t| = 1e100: at ordinary parameters the normal log density is exact."""
    model = EGARCH()
    y = np.random.default_rng(2).standard_normal(40)
    params = {"mu": 0.1, "omega": 0.05, "alpha": -0.1, "gamma": 0.05, "beta": 0.9}
    log_var = [float(model.init_state(model.params_type(**{k: jnp.asarray(v) for k, v in params.items()}),
                                      jnp.asarray(y)))]
    for t in range(len(y) - 1):
        e = (y[t] - params["mu"]) * np.exp(-0.5 * log_var[-1])
        log_var.append(params["omega"] + params["alpha"] * (abs(e) - np.sqrt(2 / np.pi)) + params["gamma"] * e
                       + params["beta"] * log_var[-1])
    expected = scipy.stats.norm(params["mu"], np.exp(0.5 * np.array(log_var))).logpdf(y).sum()
    np.testing.assert_allclose(bayesvol.log_likelihood(model, params, y), expected, rtol=1e-12)
