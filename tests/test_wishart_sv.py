"""Wishart SV: densities against scipy, EIS against quadrature and particle filters, recovery, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import bayesvol
from bayesvol.filters import particle_filter
from bayesvol.filters.eis_wishart import _log_chi, bartlett_chi_square_log_density
from bayesvol.filters.wishart_methods import (
    EISKernels,
    eis_loglik,
    filtered_forecasts,
    forecast_covariance,
    wishart_eis_output,
)
from bayesvol.models._base import as_params
from bayesvol.models.wishart_sv import WishartSV, reference_params

MODEL = WishartSV()


def naive_power(matrix, power):
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * values**power) @ vectors.T


def naive_scale(params, omega_prev):
    """S = L Omega^d L' / nu with L the lower Cholesky factor of A (plain numpy)."""
    chol = np.linalg.cholesky(params["A"])
    return chol @ naive_power(omega_prev, params["d"]) @ chol.T / params["nu"]


def random_spd(rng, k, jitter=0.5):
    x = rng.normal(size=(k, k))
    return x @ x.T / k + jitter * np.eye(k)


PARAMS_2 = {"nu": 9.0, "d": 0.6, "A": np.array([[1.2, 0.3], [0.3, 0.8]])}


# ---------------------------------------------------------------- densities


def test_transition_and_emission_match_scipy():
    rng = np.random.default_rng(0)
    params = reference_params()
    omega_prev = random_spd(rng, 3) * 400.0
    scale = naive_scale(params, omega_prev)
    omegas = stats.wishart(df=14.0, scale=scale).rvs(size=5, random_state=rng)
    law = MODEL.transition(as_params(MODEL, params), jnp.asarray(omega_prev))
    np.testing.assert_allclose(np.asarray(law.log_prob(omegas)),
                               stats.wishart(df=14.0, scale=scale).logpdf(np.moveaxis(omegas, 0, -1)), rtol=1e-10)
    y = rng.normal(size=3) * 0.03
    emission = MODEL.emission(as_params(MODEL, params), jnp.asarray(omegas))
    reference = [stats.multivariate_normal(np.zeros(3), np.linalg.inv(o)).logpdf(y) for o in omegas]
    np.testing.assert_allclose(np.asarray(emission.log_prob(y)), reference, rtol=1e-10)


def test_steady_state_is_the_fixed_point_of_the_conditional_mean():
    params = as_params(MODEL, reference_params())
    omega_bar = np.asarray(MODEL.steady_state(params))
    chol = np.linalg.cholesky(reference_params()["A"])
    np.testing.assert_allclose(chol @ naive_power(omega_bar, 0.5) @ chol.T, omega_bar, rtol=1e-9)


def test_seed_matrix_is_the_inverse_of_A():
    """Returns simulated with A = inverse of the printed matrix have standard deviations of a few percent."""
    sim = bayesvol.simulate(MODEL, reference_params(), num_timesteps=400, seed=0)
    sd = sim.y.std(axis=0)
    assert np.all((sd > 0.01) & (sd < 0.1))
    percent = bayesvol.simulate(MODEL, reference_params("percent"), num_timesteps=400, seed=0)
    np.testing.assert_allclose(percent.y, 100.0 * sim.y, rtol=1e-6)


def test_one_step_covariance_mean_matches_scipy_inverse_wishart():
    """E[Omega_{T+1}^{-1} | Omega_T] = S_T^{-1} / (nu - k - 1), the inverse-Wishart mean."""
    from bayesvol.models.wishart_sv import _conditional_mean_inverse

    params = reference_params()
    omega = random_spd(np.random.default_rng(3), 3) * 500.0
    ours = _conditional_mean_inverse(14.0, 0.5, jnp.asarray(params["A"]), jnp.asarray(np.linalg.inv(omega)))
    reference = stats.invwishart(df=14.0, scale=np.linalg.inv(naive_scale(params, omega))).mean()
    np.testing.assert_allclose(np.asarray(ours), reference, rtol=1e-9)


def test_sampler_diagonal_density_integrates_to_one():
    """The EIS draws' chi-square surrogate x = 2 delta |1 + kappa z|^3 has the density the weights use."""
    for df in (1.0, 3.5, 15.0):
        total, _ = integrate.quad(lambda x, df=df: np.exp(float(bartlett_chi_square_log_density(x, df))), 0, np.inf,
                                  limit=200)
        assert total == pytest.approx(1.0, abs=1e-7)
        mean, _ = integrate.quad(lambda x, df=df: x * np.exp(float(bartlett_chi_square_log_density(x, df))), 0, np.inf,
                                 limit=200)
        delta, kappa = df / 2 - 1 / 3, 1 / np.sqrt(9 * (df / 2 - 1 / 3))
        z = np.random.default_rng(1).normal(size=400_000)
        draws = 2 * delta * np.abs(1 + kappa * z) ** 3
        assert abs(draws.mean() - mean) < 4.5 * draws.std() / np.sqrt(z.size)


# ---------------------------------------------------------------- EIS integrating constant


def _kernel_terms(params, omega_prev, y, c, C, omega):
    """log g(y|Omega) + log p(Omega|Omega_prev) + log zeta(Omega) with scipy."""
    scale = naive_scale(params, omega_prev)
    log_g = stats.multivariate_normal(np.zeros(len(y)), np.linalg.inv(omega)).logpdf(y)
    log_p = stats.wishart(df=params["nu"], scale=scale).logpdf(omega)
    log_zeta = 0.5 * c * np.linalg.slogdet(omega)[1] - 0.5 * np.trace(C @ omega)
    return log_g + log_p + log_zeta


def _our_log_chi(params, omega_prev, y, c, C):
    from bayesvol.models._wishart_linalg import scale_inverse

    chol = jnp.linalg.cholesky(jnp.asarray(params["A"]))
    s_inv, logdet_s = scale_inverse(jnp.asarray(omega_prev)[None], params["nu"], params["d"], chol)
    return float(_log_chi(s_inv, logdet_s, jnp.asarray(y), jnp.asarray(c), jnp.asarray(C), params["nu"])[0])


def test_eis_integrating_constant_is_the_ratio_kernel_over_sampler_density():
    """g p zeta / W(Omega; m, M^{-1}) is the same constant chi for every Omega, and equals ours."""
    rng = np.random.default_rng(5)
    omega_prev, y = random_spd(rng, 2), rng.normal(size=2)
    c, C = 0.7, np.array([[0.3, -0.1], [-0.1, 0.2]])
    scale_inv = np.linalg.inv(naive_scale(PARAMS_2, omega_prev))
    sampler = stats.wishart(df=PARAMS_2["nu"] + 1 + c, scale=np.linalg.inv(scale_inv + np.outer(y, y) + C))
    omegas = sampler.rvs(size=4, random_state=rng)
    ratios = [_kernel_terms(PARAMS_2, omega_prev, y, c, C, o) - sampler.logpdf(o) for o in omegas]
    np.testing.assert_allclose(ratios, ratios[0], rtol=0, atol=1e-9)
    assert _our_log_chi(PARAMS_2, omega_prev, y, c, C) == pytest.approx(ratios[0], abs=1e-9)


def test_eis_integrating_constant_by_monte_carlo_integration():
    """chi = E_p[g zeta] over the transition law, by plain Monte Carlo (tolerance 4.5 MC standard errors)."""
    rng = np.random.default_rng(6)
    omega_prev, y = random_spd(rng, 2), 0.5 * rng.normal(size=2)
    c, C = 0.4, np.array([[0.2, 0.05], [0.05, 0.1]])
    omegas = stats.wishart(df=PARAMS_2["nu"], scale=naive_scale(PARAMS_2, omega_prev)).rvs(200_000,
                                                                                             random_state=rng)
    logdet = np.linalg.slogdet(omegas)[1]
    quad = np.einsum("i,nij,j->n", y, omegas, y)
    values = np.exp(-np.log(2 * np.pi) + 0.5 * logdet - 0.5 * quad + 0.5 * c * logdet
                    - 0.5 * np.einsum("ij,nji->n", C, omegas))
    estimate, se = values.mean(), values.std() / np.sqrt(values.size)
    assert abs(np.exp(_our_log_chi(PARAMS_2, omega_prev, y, c, C)) - estimate) < 4.5 * se


def test_eis_integrating_constant_by_quadrature_for_k1():
    params = {"nu": 7.0, "d": 0.7, "A": np.array([[1.5]])}
    omega_prev, y, c, C = np.array([[0.8]]), np.array([0.9]), 0.6, np.array([[0.25]])

    def integrand(w):
        return np.exp(_kernel_terms(params, omega_prev, y, c, C, np.array([[w]])))

    reference, _ = integrate.quad(integrand, 0, np.inf, limit=200)
    assert _our_log_chi(params, omega_prev, y, c, C) == pytest.approx(np.log(reference), abs=1e-8)


# ---------------------------------------------------------------- k = 1: gamma-process SV by quadrature

K1 = {"nu": 10.0, "d": 0.6, "A": np.array([[1.0]])}


def test_k1_transition_is_the_gamma_law():
    omega_prev = 1.7
    law = MODEL.transition(as_params(MODEL, K1), jnp.array([[omega_prev]]))
    rate = K1["nu"] / (2.0 * 1.0 * omega_prev ** K1["d"])
    grid = np.array([0.3, 1.0, 2.5])
    np.testing.assert_allclose(np.asarray(law.log_prob(jnp.asarray(grid)[:, None, None])),
                               stats.gamma(a=K1["nu"] / 2, scale=1 / rate).logpdf(grid), rtol=1e-10)


def grid_filter_loglik(y, nu, d, a, num_points=3000):
    """Log-likelihood of the k = 1 model by a deterministic grid filter on u = log(omega)."""
    omega_bar = a ** (1.0 / (1.0 - d))
    u = np.linspace(np.log(omega_bar) - 5.0, np.log(omega_bar) + 5.0, num_points)
    du = u[1] - u[0]
    omega = np.exp(u)

    def transition_from(omega_prev):
        rate = nu / (2.0 * a * omega_prev**d)
        return stats.gamma(a=nu / 2, scale=1 / rate[:, None]).pdf(omega[None, :]) * omega[None, :]

    kernel = transition_from(omega)                          # (from, to), density in u
    predictive = transition_from(np.array([omega_bar]))[0]
    total = 0.0
    for y_t in y:
        likelihood = stats.norm(0, 1 / np.sqrt(omega)).pdf(y_t)
        joint = predictive * likelihood
        step = joint.sum() * du
        total += np.log(step)
        predictive = (joint / step) @ kernel * du
    return total


def test_eis_matches_quadrature_likelihood_for_k1():
    """EIS for the gamma-process SV model against a 3000-point grid filter (error far below the MC error).

    The tolerance is 4.5 standard errors of the mean over 6 seeds plus 0.02 for the downward bias of the
    log of an unbiased estimate (about var/2, tiny here).
    """
    y = bayesvol.simulate(MODEL, K1, num_timesteps=80, seed=2).y
    reference = grid_filter_loglik(y[:, 0], K1["nu"], K1["d"], 1.0)
    estimates = np.array([float(bayesvol.log_likelihood(MODEL, K1, y, method="eis", seed=s, num_draws=64))
                          for s in range(6)])
    se = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert estimates.std(ddof=1) < 0.1
    assert abs(estimates.mean() - reference) < 4.5 * se + 0.02


# ---------------------------------------------------------------- EIS accuracy and the particle filters


@pytest.fixture(scope="module")
def seed_data():
    """T = 800 returns from seed 003's parameters (k = 3, d = 0.5, nu = 14)."""
    return bayesvol.simulate(MODEL, reference_params(), num_timesteps=800, seed=1).y


def test_eis_loglik_monte_carlo_sd_at_T800(seed_data):
    """MC SD of the EIS log-likelihood over seeds (common random numbers change with the seed only).

    Sequential EIS with resampling (the EIS samplers as proposals, 256 draws): the SD over 5 seeds is
    measured about 0.2 (0.3 with 64 draws); the plain whole-path estimate needs about 512 draws for 0.45.
    The chi-square bound below fails with probability < 1e-3 if the true SD is 0.2.
    """
    values = np.array([float(bayesvol.log_likelihood(MODEL, reference_params(), seed_data, method="eis", seed=s,
                                                     num_draws=256, resample=True)) for s in range(5)])
    print("EIS log-likelihood over seeds:", values, "SD", values.std(ddof=1))
    assert np.all(np.isfinite(values))
    assert values.std(ddof=1) < 0.4


def test_eis_agrees_with_particle_filters():
    """Plain EIS, the fully adapted PF and the generic bootstrap PF estimate the same log-likelihood.

    Tolerance: 4.5 times the standard error of the difference of the means, from the replicate spreads,
    plus 0.05 for the log-of-mean bias (about var/2 per estimator).
    """
    params = PARAMS_2
    y = bayesvol.simulate(MODEL, params, num_timesteps=60, seed=7).y
    eis = np.array([float(bayesvol.log_likelihood(MODEL, params, y, method="eis", seed=s, num_draws=64))
                    for s in range(4)])
    adapted = np.array([float(bayesvol.log_likelihood(MODEL, params, y, method="pf", seed=s, num_particles=500))
                        for s in range(4)])
    run = jax.jit(lambda key: particle_filter(MODEL, params, y, key=key, num_particles=1500).log_likelihood)
    boot = np.array([float(run(jax.random.PRNGKey(s))) for s in range(3)])
    for other in (adapted, boot):
        se = np.sqrt(eis.var(ddof=1) / eis.size + other.var(ddof=1) / other.size)
        assert abs(eis.mean() - other.mean()) < 4.5 * se + 0.05


def test_forecasts_from_eis_and_particle_filter_agree():
    params = PARAMS_2
    y = bayesvol.simulate(MODEL, params, num_timesteps=60, seed=8).y
    eis = forecast_covariance(MODEL, params, y, method="eis", num_draws=256)
    pf = forecast_covariance(MODEL, params, y, method="pf", num_particles=2000)
    # Both average S_T^{-1}/(nu-k-1) over (approximately) the filtering law of Omega_T: MC error of a few %.
    np.testing.assert_allclose(eis, pf, rtol=0.1)
    assert np.all(np.linalg.eigvalsh(eis) > 0)
    # Rolling forecasts use no future data: row t equals the final forecast from y[: t + 1].
    rolling = filtered_forecasts(MODEL, params, y, num_particles=2000)
    # (same draws; the final forecast averages after the last resampling step: a few per mille of MC noise)
    np.testing.assert_allclose(rolling[-1], pf, rtol=0.05)
    np.testing.assert_allclose(rolling[29], forecast_covariance(MODEL, params, y[:30], method="pf",
                                                                num_particles=2000), rtol=0.1)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("change, message", [
    ({"A": np.array([[1.0, 2.0], [2.0, 1.0]])}, "A.*(PositiveDefinite|positive definite)"),
    ({"A": np.array([[1.0, 0.2], [0.3, 1.0]])}, "A.*(PositiveDefinite|symmetric)"),
    ({"A": np.eye(3)}, "A is 3 x 3|3 columns|shape"),
    ({"d": 1.0}, "d.*(UnitInterval|must lie in)"),
    ({"d": -0.1}, "d.*(UnitInterval|must lie in)"),
    ({"nu": 0.9}, "nu.*(GreaterThan\\(lower_bound=1|must exceed k - 1)"),
])
def test_bad_parameters_are_reported(change, message):
    y = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="(?s)" + message):
        bayesvol.log_likelihood(MODEL, dict(PARAMS_2, **change), y, method="eis")


def test_bad_data_is_reported():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least"):
        bayesvol.log_likelihood(MODEL, PARAMS_2, rng.normal(size=(5, 2)), method="eis")
    with pytest.raises(ValueError, match="NaN"):
        bayesvol.log_likelihood(MODEL, PARAMS_2, np.full((50, 2), np.nan), method="eis")
    with pytest.raises(ValueError, match="columns"):
        bayesvol.log_likelihood(WishartSV(num_assets=3), reference_params(), rng.normal(size=(50, 2)), method="eis")
    with pytest.raises(ValueError, match="nu > k \\+ 1"):
        forecast_covariance(MODEL, dict(PARAMS_2, nu=2.5), rng.normal(size=(50, 2)))



# ---------------------------------------------------------------- EIS maximum likelihood (small)


@pytest.mark.slow
def test_eis_mle_maximises_the_simulated_likelihood_k1():
    """fit(method="eis") maximises the common-random-numbers EIS surface and reports SEs and MC diagnostics.

    The EIS log-likelihood at the estimate must be at least that at the truth (same random numbers, so
    the same function). Recovery of d and nu at k = 3, T = 1000 is measured in benchmarks/wishart_eis.py.
    """
    truth = {"nu": 14.0, "d": 0.5, "A": np.array([[1.0]])}
    y = bayesvol.simulate(MODEL, truth, num_timesteps=80, seed=3).y
    fit = bayesvol.fit(MODEL, y, method="eis", num_draws=16, num_starts=1)
    at_truth = float(bayesvol.log_likelihood(MODEL, truth, y, method="eis", num_draws=16))
    assert fit.converged and fit.diagnostics["eis_settled"]
    assert fit.diagnostics["eis_distance_in_se"] < 0.2
    assert fit.loglik >= at_truth - 1e-6
    # With one series d and nu are weakly identified and this estimate lies on the edge of the parameter
    # space (nu runs off to infinity, d towards 0): the fit must say so, and then gives no standard error for
    # nu (the curvature in the unconstrained coordinate vanishes there).
    if "nu" in fit.at_boundary:
        assert fit.params["nu"] > 1e3
    else:
        assert np.isfinite(fit.se["d"]) and np.isfinite(fit.se["nu"])
    assert fit.diagnostics["loglik_mc_sd"] < 0.2


def test_round_rule_on_a_linear_fixed_point_iteration():
    """The rounds rule: ratio, distance to the fixed point and Aitken's extrapolation, on G(s) = x* + rho (s - x*).

    For that map (with equal standard errors) two plain rounds give rho exactly, the step extrapolated by
    rho / (1 - rho) lands on the fixed point, and the distance move / (1 - rho) is the true distance of the
    last round's start from it, a bound for its optimum's (all exact up to round-off).
    """
    from bayesvol.inference.eis_rounds import _round_schedule_step

    fixed, rho, se = np.array([0.3, -1.0, 2.0]), 0.6, np.full(3, 0.1)

    def round_from(start, plain):
        return {"start": start, "optimum": fixed + rho * (start - fixed), "se": se, "plain": plain}

    history = [round_from(np.array([1.0, 0.0, 0.0]), True)]
    _, ratio, distance, settled, _ = _round_schedule_step(history, 0.2)
    assert np.isnan(ratio) and distance == np.inf and not settled          # one round cannot settle
    history.append(round_from(history[-1]["optimum"], True))
    next_start, ratio, distance, settled, move = _round_schedule_step(history, 0.2)
    true_distance = np.max(np.abs(history[-1]["start"] - fixed) / se)    # of the start: a bound for the optimum
    assert ratio == pytest.approx(rho, rel=1e-12)
    assert distance == pytest.approx(true_distance, rel=1e-12) and not settled
    np.testing.assert_allclose(next_start, fixed, atol=1e-12)
    history.append(round_from(next_start, False))
    _, ratio, distance, settled, _ = _round_schedule_step(history, 0.2)
    assert ratio == pytest.approx(rho, rel=1e-12) and distance < 1e-9 and settled
    # A later pair contracting much faster does not shrink the bound: it uses the largest ratio seen (0.8).
    one = np.ones(1)
    history = [{"start": 0.0 * one, "optimum": 1.0 * one, "se": one, "plain": True},
               {"start": 1.0 * one, "optimum": 1.8 * one, "se": one, "plain": True},
               {"start": 1.8 * one, "optimum": 1.81 * one, "se": one, "plain": True}]
    _round_schedule_step(history[:2], 0.04)
    _, ratio, distance, settled, move = _round_schedule_step(history, 0.04)
    assert ratio == pytest.approx(0.0125) and move == pytest.approx(0.01)
    assert distance == pytest.approx(0.01 / (1.0 - 0.8)) and not settled


@pytest.mark.slow
def test_eis_mle_rounds_stopping_on_their_limit_warn_and_do_not_converge():
    """One round cannot settle (no contraction ratio yet): a warning, converged False, diagnostics say why."""
    from bayesvol.inference.diagnostics import ConvergenceWarning

    truth = {"nu": 14.0, "d": 0.5, "A": np.array([[1.0]])}
    y = bayesvol.simulate(MODEL, truth, num_timesteps=80, seed=3).y
    with pytest.warns(ConvergenceWarning, match="stopped on their limit"):
        fit = bayesvol.fit(MODEL, y, method="eis", num_draws=16, num_starts=1, max_rounds=1)
    assert not fit.converged
    assert fit.diagnostics["eis_rounds"] == 1 and not fit.diagnostics["eis_settled"]
    with pytest.raises(ValueError, match="round_tolerance"):
        bayesvol.fit(MODEL, y, method="eis", num_draws=16, round_tolerance=0.0)


def test_forward_difference_standard_errors_match_central_differences():
    """The EIS-MLE standard errors from forward differences of the exact gradient (p + 1 gradient calls, the
    default) against central ones (2p calls), at the same fixed-kernel optimum (k = 2, T = 60, 16 draws).

    Forward differences with steps 1e-6 max(|u|, 1) err by about 2e-6 of the largest Hessian entry (measured
    on this case: 2e-5 at step 1e-5, 2e-6 at 1e-6, so O(h), against 1.6e-8 for central differences); the
    inverse amplifies that by the Hessian's condition number (below 100 here), so the standard errors
    (plain and robust, whose scores are differenced the same way) must agree to 1e-3 relative.
    """

    params = {"nu": 9.0, "d": 0.6, "A": np.array([[20.0, 3.0], [3.0, 15.0]])}
    y = bayesvol.simulate(MODEL, params, num_timesteps=60, seed=5).y
    out = wishart_eis_output(MODEL, params, y, num_draws=16)
    kernels = EISKernels(out.c, out.C)
    fits = {scheme: bayesvol.fit(MODEL, y, "eis", start=params, num_draws=16, kernels=kernels,
                                 se_differences=scheme, warn=False) for scheme in ("central", "forward")}
    assert fits["forward"].loglik == fits["central"].loglik
    for name in ("nu", "d", "A"):
        np.testing.assert_array_equal(fits["forward"].params[name], fits["central"].params[name])
        for kind in ("se", "robust_se"):
            central, forward = (np.asarray(getattr(fits[s], kind)[name]) for s in ("central", "forward"))
            assert np.all(np.isfinite(forward)) and np.all(forward > 0)
            np.testing.assert_allclose(forward, central, rtol=1e-3, err_msg=f"{kind} {name}")
    with pytest.raises(ValueError, match="se_differences"):
        bayesvol.fit(MODEL, y, "eis", start=params, num_draws=16, kernels=kernels, se_differences="backward")
    with pytest.raises(ValueError, match="se_differences"):
        bayesvol.fit(MODEL, y, "eis", num_draws=16, se_differences="backward")


def test_indefinite_kernels_fall_back_to_the_conjugate_sampler_with_finite_gradients():
    """Draws whose auxiliary kernel makes M_t indefinite use C_t = 0, c_t = 0 (and their own weight).

    With C_t = -1e6 I every draw falls back, so the estimate equals the one with zero kernels exactly; with
    C_t = -s_t I (s_t near the typical size of S_{t-1}^{-1}) only some draws fall back, and value and
    gradient stay finite (the factor of the indefinite matrix must not leak NaN into the derivative).
    """
    from bayesvol.filters.eis_wishart import wishart_eis
    from bayesvol.models._wishart_linalg import steady_state

    y = jnp.asarray(bayesvol.simulate(MODEL, PARAMS_2, num_timesteps=30, seed=2).y)
    T, k = y.shape
    key = jax.random.PRNGKey(4)

    def estimate(nu, C):
        chol_a = jnp.linalg.cholesky(jnp.asarray(PARAMS_2["A"]))
        out = wishart_eis(y, nu, PARAMS_2["d"], chol_a, steady_state(chol_a, PARAMS_2["d"]), num_draws=16,
                          num_iterations=0, key=key, initial_kernels=(jnp.zeros(T), C))
        return out.log_likelihood, out.fallback_rate

    zero = estimate(PARAMS_2["nu"], jnp.zeros((T, k, k)))
    all_back = estimate(PARAMS_2["nu"], jnp.broadcast_to(-1e6 * jnp.eye(k), (T, k, k)))
    assert float(all_back[1]) == 1.0 and float(zero[1]) == 0.0
    assert float(all_back[0]) == float(zero[0])
    s_inv_size = PARAMS_2["nu"] * np.trace(np.linalg.inv(np.asarray(bayesvol.models.WishartSV().steady_state(
        as_params(MODEL.bind_data(np.asarray(y)), PARAMS_2))))) / k
    mixed_kernel = jnp.broadcast_to(-s_inv_size * jnp.eye(k), (T, k, k))
    value, rate = estimate(PARAMS_2["nu"], mixed_kernel)
    gradient = jax.grad(lambda nu: estimate(nu, mixed_kernel)[0])(PARAMS_2["nu"])
    assert 0.0 < float(rate) < 1.0
    assert np.isfinite(float(value)) and np.isfinite(float(gradient))


# ---------------------------------------------------------------- gradients with the EIS kernels held fixed


def test_gradient_holds_the_kernels_fixed_and_matches_finite_differences():
    """The EIS gradient is the exact derivative of the estimate with the sampler (c_t, C_t) held fixed.

    With the kernels fitted at theta and then frozen, L(theta; c, C) is one smooth function of theta (common
    random numbers); its central differences (step 1e-5, error O(h^2) ~ 1e-8 relative) must match autodiff,
    and the default likelihood (kernels refitted at theta, gradients stopped) gives the same value and gradient.
    """

    y = bayesvol.simulate(MODEL, PARAMS_2, num_timesteps=60, seed=5).y
    model = MODEL.bind_data(y)
    theta = as_params(model, PARAMS_2)
    out = wishart_eis_output(model, PARAMS_2, y, num_draws=32)
    kernels = EISKernels(out.c, out.C)
    jy = jnp.asarray(y)

    def fixed(d, nu):
        return jnp.sum(eis_loglik(model, theta._replace(d=d, nu=nu), jy, num_draws=32, kernels=kernels))

    def refitted(d, nu):
        return jnp.sum(eis_loglik(model, theta._replace(d=d, nu=nu), jy, num_draws=32))

    fixed_value_and_grad = jax.jit(jax.value_and_grad(fixed, argnums=(0, 1)))
    d0, nu0 = jnp.asarray(0.6), jnp.asarray(9.0)
    value, grad = fixed_value_and_grad(d0, nu0)
    value_refit, grad_refit = jax.jit(jax.value_and_grad(refitted, argnums=(0, 1)))(d0, nu0)
    np.testing.assert_allclose(float(value), float(out.log_likelihood), rtol=1e-12)
    np.testing.assert_allclose(float(value_refit), float(value), rtol=1e-12)
    np.testing.assert_allclose(np.array(grad_refit), np.array(grad), rtol=1e-9)
    h = 1e-5
    fd_d = (float(fixed_value_and_grad(d0 + h, nu0)[0]) - float(fixed_value_and_grad(d0 - h, nu0)[0])) / (2 * h)
    fd_nu = (float(fixed_value_and_grad(d0, nu0 + h)[0]) - float(fixed_value_and_grad(d0, nu0 - h)[0])) / (2 * h)
    np.testing.assert_allclose([float(grad[0]), float(grad[1])], [fd_d, fd_nu], rtol=1e-5, atol=1e-5)


def test_kernel_passes_stop_on_convergence_and_warm_start():
    """The EIS passes stop once the kernels change by less than the tolerance (the fixed-point iteration
    converges linearly); warm-started at the converged kernels a single pass suffices."""
    from bayesvol.filters.eis_wishart import eis_kernels
    from bayesvol.models._wishart_linalg import steady_state

    y = jnp.asarray(bayesvol.simulate(MODEL, PARAMS_2, num_timesteps=60, seed=5).y)
    key_d, key_o = jax.random.split(jax.random.PRNGKey(0))
    z_d, z_o = jax.random.normal(key_d, (60, 32, 2)), jax.random.normal(key_o, (60, 32, 1))
    chol_a = jnp.linalg.cholesky(jnp.asarray(PARAMS_2["A"]))
    args = (y, z_d, z_o, 9.0, 0.6, chol_a, steady_state(chol_a, 0.6))
    run = jax.jit(eis_kernels, static_argnames=("num_iterations", "tolerance"))
    c, C, change, passes = run(*args, num_iterations=40, tolerance=1e-2)
    assert float(change) < 1e-2 and 1 < int(passes) < 40
    c2, C2, change2, passes2 = run(*args, num_iterations=40, tolerance=1e-2, initial=(c, C))
    assert int(passes2) == 1 and float(change2) < 1e-2
    # relative change below 1e-2 per entry, measured as |new - old| / (1 + |old|)
    assert np.all(np.abs(np.asarray(C2) - np.asarray(C)) <= 1e-2 * (1.0 + np.abs(np.asarray(C))))


@pytest.mark.slow
def test_eis_mle_recovers_d_and_nu_from_seed_parameters():
    """EIS-MLE on T = 400 returns simulated with seed 003's parameters (k = 3), from the generic start.

    Wald-type check: each estimate within 3.5 of its reported standard errors of the truth (a two-sided
    normal tail of 5e-4 if the SEs are right; the Monte Carlo error of the simulated likelihood, SD about
    0.4 with 32 draws, adds a small fraction of an SE).
    """
    truth = reference_params()
    y = bayesvol.simulate(MODEL, truth, num_timesteps=400, seed=21).y
    fit = bayesvol.fit(MODEL, y, method="eis", num_draws=32, num_starts=1, max_rounds=3, warn=False)
    print(fit.summary())
    assert fit.diagnostics["eis_rounds"] <= 3
    for name in ("d", "nu"):
        assert np.isfinite(fit.se[name]) and fit.se[name] > 0
        assert abs(fit.params[name] - truth[name]) < 3.5 * fit.se[name], name


# ---------------------------------------------------------------- NUTS (tiny)


@pytest.mark.slow
def test_nuts_runs_on_a_short_panel():
    """NUTS over the Bartlett variables (k = 2, T = 25, 1 chain, 100 + 100 draws).

    Checks the DataTree groups and dims, a finite pointwise log-likelihood, and that the posterior mean
    variances, averaged over time, are within a factor exp(+-1.2) of the sample variances: the sample variance
    of 25 returns with stochastic volatility has a relative SE of about 0.4 (sqrt(2/25) inflated for the
    excess kurtosis of the mixture), so the band is 3 such SEs on the log scale.
    """
    y = bayesvol.simulate(MODEL, PARAMS_2, num_timesteps=25, seed=4).y
    idata = bayesvol.sample(MODEL, y, num_chains=1, num_warmup=100, num_samples=100, seed=0, progress_bar=False,
                            warn=False, posterior_predictive=True)
    assert {"posterior", "log_likelihood", "observed_data", "posterior_predictive"} <= set(idata.children)
    post = idata.posterior
    assert post["A"].dims == ("chain", "draw", "asset", "asset2")
    assert post["cov"].dims == ("chain", "draw", "time", "asset", "asset2") and post["cov"].shape[2] == 25
    assert post["nu"].shape == (1, 100) and np.all(post["nu"].values > 1.0)
    assert np.all((post["d"].values > 0) & (post["d"].values < 1))
    assert idata.log_likelihood["y"].shape == (1, 100, 25) and np.all(np.isfinite(idata.log_likelihood["y"].values))
    assert idata.posterior_predictive["y"].shape == (1, 100, 25, 2)
    mean_variance = post["cov"].values.mean(axis=(0, 1, 2)).diagonal()
    ratio = mean_variance / y.var(axis=0)
    assert np.all(np.abs(np.log(ratio)) < 1.2), ratio
    if np.all(post["nu"].values > 3.0):
        forecast = MODEL.posterior_forecast_covariance(idata)
        assert np.all(np.linalg.eigvalsh(forecast) > 0)
