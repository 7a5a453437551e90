"""DFSV estimation internals and recovery: the factor-space Bellman step against dense and autodiff
computations, the Fisher-identity gradient against reverse-mode differentiation of the Kalman filter,
NUTS parameter recovery, and particle-filter MLE against Bellman MLE."""

import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import bayesvol
from bayesvol.filters import dfsv_bellman
from bayesvol.filters.dfsv_methods import filter_states
from bayesvol.models import DFSV
from bayesvol.models import _dfsv_kalman as kalman
from bayesvol.models._dfsv_priors import solve_discrete_lyapunov

RNG = np.random.default_rng(11)
N, K = 6, 3
LAMBDA = np.tril(RNG.normal(0.7, 0.3, (N, K)), -1)[:, :K] + np.vstack([np.eye(K), np.zeros((N - K, K))])
LAMBDA[K:] = RNG.normal(0.7, 0.3, (N - K, K))
SIGMA2 = RNG.uniform(0.2, 0.5, N)
PHI_F = np.array([[0.3, 0.1, 0.0], [-0.05, 0.2, 0.1], [0.0, 0.1, 0.4]])


def test_factor_space_density_equals_the_dense_multivariate_normal():
    # c_t + log N(gls_t; m, Sigma + W^{-1}) = log N(r_t; Lambda m, Lambda Sigma Lambda' + D) for any m, Sigma.
    y = RNG.normal(size=(4, N))
    data = dfsv_bellman.factor_space_data(jnp.asarray(LAMBDA), jnp.asarray(SIGMA2), jnp.asarray(y))
    for t in range(4):
        mean = RNG.normal(size=K)
        root = RNG.normal(size=(K, K))
        cov = root @ root.T + 0.1 * np.eye(K)
        reduced = data.const[t] + scipy.stats.multivariate_normal(mean, cov + np.asarray(data.gls_cov)).logpdf(
            np.asarray(data.gls[t]))
        dense = scipy.stats.multivariate_normal(LAMBDA @ mean, LAMBDA @ cov @ LAMBDA.T + np.diag(SIGMA2)).logpdf(y[t])
        np.testing.assert_allclose(reduced, dense, rtol=1e-12)


def test_closed_form_newton_derivatives_equal_autodiff():
    # Both bases: unit matrices (t > 1) and the stationary-start basis Gamma_f(e_j e_j') (t = 1), with a
    # non-zero slope so every term of the Hessian is exercised.
    unit = jnp.eye(K)[:, :, None] * jnp.eye(K)[:, None, :]
    root = RNG.normal(size=(K, K))
    for basis in (unit, solve_discrete_lyapunov(jnp.asarray(PHI_F), unit)):
        inp = dfsv_bellman._FactorSpaceStep(jnp.asarray(RNG.normal(size=K)), jnp.asarray(RNG.normal(size=K)),
                                       jnp.asarray(0.3 * RNG.normal(size=(K, K))),
                                       jnp.asarray(root @ root.T + 0.2 * np.eye(K)), jnp.asarray(RNG.normal(size=K)),
                                       basis)
        h = jnp.asarray(RNG.normal(-0.5, 0.5, K))
        deriv = jax.jit(dfsv_bellman._factor_space_derivatives)(h, inp)
        value, grad, hessian = jax.jit(lambda h, inp: (dfsv_bellman._factor_space_loglik(h, inp),
                                                       jax.grad(dfsv_bellman._factor_space_loglik)(h, inp),
                                                       jax.hessian(dfsv_bellman._factor_space_loglik)(h, inp)))(h, inp)
        np.testing.assert_allclose(deriv.value, value, rtol=1e-13)
        np.testing.assert_allclose(deriv.grad, grad, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(deriv.hessian, hessian, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_fisher_identity_gradient_equals_reverse_mode_through_the_filter():
    # Constant and time-varying idiosyncratic variances; gradients with respect to every argument (K = 2,
    # correlated factor dynamics).
    t, k = 60, 2
    h = jnp.asarray(RNG.normal(-0.5, 0.6, (t, k)))
    y = jnp.asarray(RNG.normal(size=(t, N)))

    @jax.jit
    def both(*args):
        argnums = (0, 1, 2, 3)
        fisher = jax.value_and_grad(lambda *a: kalman.marginal_loglik(*a, y).log_likelihood, argnums=argnums)(*args)
        autodiff = jax.value_and_grad(lambda *a: kalman.filter_factors(*a, y).log_likelihood, argnums=argnums)(*args)
        return fisher, autodiff

    for idio in (jnp.asarray(SIGMA2), jnp.asarray(np.exp(RNG.normal(-1.0, 0.3, (t, N))))):
        args = (jnp.asarray(LAMBDA[:, :k]), jnp.asarray(PHI_F[:k, :k]), h, idio)
        (value, grads), (reference, exact) = both(*args)
        np.testing.assert_allclose(value, reference, rtol=1e-13)
        for fisher, autodiff in zip(grads, exact, strict=True):
            np.testing.assert_allclose(fisher, autodiff, rtol=1e-8, atol=1e-9 * float(jnp.max(jnp.abs(autodiff))))


# --- recovery ---------------------------------------------------------------------------------------
SMALL = {"lambda_r": np.array([[1.0], [0.8], [0.6], [0.9]]), "Phi_f": np.array([[0.3]]), "Phi_h": np.array([[0.95]]),
         "mu": np.array([0.0]), "Q_h": np.array([[0.05]]), "sigma2": np.array([0.3, 0.2, 0.25, 0.35])}


@pytest.mark.slow
@pytest.mark.xdist_group("nuts")
def test_nuts_recovers_parameters_and_log_variances():
    model = DFSV(num_factors=1)
    sim = bayesvol.simulate(model, SMALL, 250, seed=7)
    idata = bayesvol.sample(model, sim.y, num_chains=1, num_warmup=300, num_samples=300, seed=3,
                            progress_bar=False, warn=False)
    post = idata.posterior
    # Posterior mean against the truth in units of the posterior sd: for a calibrated posterior the
    # standardised error is roughly N(0, 1), plus the Monte Carlo error of the mean, sd/sqrt(ESS) with
    # ESS > 30 (checked below), at most 0.18 sd; 3.5 sd over the 10 scalars checked leaves a false-alarm
    # probability under 1% for that inflated spread.
    for name in ("lambda_r", "Phi_f", "Phi_h", "mu", "Q_h", "sigma2"):
        draws = post[name].values.reshape(-1, *np.shape(SMALL[name]))
        sd = draws.std(0)
        free = sd > 0
        z = (draws.mean(0) - SMALL[name])[free] / sd[free]
        assert np.all(np.abs(z) < 3.5), (name, draws.mean(0), SMALL[name], sd)
    assert int(idata.sample_stats["diverging"].sum()) <= 3
    ess = arviz_stats.ess(idata, var_names=["mu", "Phi_h", "Q_h"], method="bulk")
    assert min(float(ess[n].min()) for n in ("mu", "Phi_h", "Q_h")) > 30
    # The posterior-mean log-variance path tracks the truth about as well as the Bellman smoother given
    # the true parameters (an oracle the posterior, which must also learn the parameters, cannot beat by much).
    h_mean = post["h"].mean(("chain", "draw")).values[:, 0]
    oracle = filter_states(model, SMALL, sim.y).h_smoothed[:, 0]
    best = np.corrcoef(oracle, sim.h[:, 0])[0, 1]
    assert np.corrcoef(h_mean, sim.h[:, 0])[0, 1] > best - 0.1, (np.corrcoef(h_mean, sim.h[:, 0])[0, 1], best)


@pytest.mark.slow
def test_particle_filter_mle_agrees_with_bellman_mle():
    model = DFSV(num_factors=1)
    truth = {name: value[:3] if name in ("lambda_r", "sigma2") else value for name, value in SMALL.items()}
    sim = bayesvol.simulate(model, truth, 300, seed=4)
    bellman = bayesvol.fit(model, sim.y, method="bellman", num_starts=1)
    pf = bayesvol.fit(model, sim.y, method="pf", num_starts=1, num_particles=300, start=bellman.params, warn=False)
    assert bellman.converged and pf.diagnostics["loglik_mc_sd"] < 1.0
    # Its standard errors come from the particle filter's own rough surface, and the result says so.
    assert any("particle-filter likelihood ('pf') are unreliable" in text for text in pf.warnings)
    assert "se_method='bellman'" in pf.summary()
    # Same data, two approximations of one likelihood: the estimates differ by far less than their
    # sampling error. Each free parameter's gap is below one Bellman standard error.
    for name in model.param_names:
        se = np.ravel(bellman.se[name])
        gap = np.abs(np.ravel(pf.params[name]) - np.ravel(bellman.params[name]))[se > 0]
        assert np.all(gap < se[se > 0]), (name, pf.params[name], bellman.params[name], bellman.se[name])
