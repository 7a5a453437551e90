"""GARCH simulation, the asymptotic-variance study, parameter recovery (batch MLE) and forecasts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayesvol
from bayesvol.models import GARCH, GARCHParams, _observation

GJR_T = {"mu": 0.02, "omega": 0.05, "alpha": 0.04, "gamma": 0.08, "beta": 0.87, "nu": 7.0}


def simulate_panel(model, params, num_timesteps, num_series, seed):
    """``num_series`` independent paths (time x series) from one vmapped scan over ``update``/``emission``."""
    values = GARCHParams(**{k: jnp.asarray(v) for k, v in params.items()})
    keys = jax.random.split(jax.random.PRNGKey(seed), num_series)
    draw = jax.jit(jax.vmap(lambda k: _observation.simulate_path(model, values, num_timesteps, k)))
    y, variance = draw(keys)
    return np.asarray(y).T, np.asarray(variance).T


def test_simulated_variance_follows_recursion_with_indicator():
    """The GJR term uses 1{eps_{t-1} < 0}, not its expectation (the error of seed 001)."""
    model = GARCH(vol="gjr", dist="t")
    p = GJR_T
    sim = bayesvol.simulate(model, p, num_timesteps=500, seed=3)
    eps = sim.y - p["mu"]
    expected = p["omega"] + (p["alpha"] + p["gamma"] * (eps[:-1] < 0)) * eps[:-1] ** 2 + p["beta"] * sim.variance[:-1]
    np.testing.assert_allclose(sim.variance[1:], expected, rtol=1e-12)
    assert sim.variance[0] == pytest.approx(float(model.unconditional_variance(p)), rel=1e-12)
    # The likelihood's filter, started where the simulation started, retraces the simulated variances.
    filtered = GARCH(vol="gjr", dist="t", variance_start="unconditional").filter(p, sim.y)
    np.testing.assert_allclose(filtered[:-1], sim.variance, rtol=1e-10)


@pytest.mark.parametrize("dist", ["normal", "skewt"])
def test_asymptotic_variance_omega_over_one_minus_persistence(dist):
    """Seed 001's study: long paths reproduce E[eps_t^2] = omega / (1 - kappa), kappa with E[z^2 1{z<0}].

    Paths start at the unconditional variance, so E[eps_t^2] equals it at every t (no burn-in bias). The
    Monte Carlo error is the spread of the 64 per-path means over sqrt(64); the tolerance is 4 such errors.
    The parameters keep the fourth moment finite so that the per-path means are asymptotically normal.
    """
    model = GARCH(vol="gjr", dist=dist)
    p = {"mu": 0.0, "omega": 0.05, "alpha": 0.03, "gamma": 0.1, "beta": 0.86}
    if dist == "skewt":
        p.update(nu=10.0, skew=-0.4)  # left-skewed: E[z^2 1{z<0}] is well above 1/2
    y, _ = simulate_panel(model, p, num_timesteps=20_000, num_series=64, seed=11)
    path_means = np.mean(y**2, axis=0)
    error = path_means.std(ddof=1) / np.sqrt(path_means.size)
    target = float(model.unconditional_variance(p))
    assert abs(path_means.mean() - target) < 4 * error, (path_means.mean(), target, error)
    if dist == "skewt":
        # The study has power: the symmetric value 1/2 in place of E[z^2 1{z<0}] is many errors away.
        naive = p["omega"] / (1 - p["alpha"] - p["beta"] - 0.5 * p["gamma"])
        assert abs(path_means.mean() - naive) > 8 * error


@pytest.fixture(scope="module")
def gjr_t_study():
    """128 GJR-t series of 1200 days fitted at once (batch BFGS), with the simulated panel."""
    model = GARCH(vol="gjr", dist="t")
    panel, _ = simulate_panel(model, GJR_T, num_timesteps=1200, num_series=128, seed=5)
    # 32 lanes: with one queue per host device, each device's queue then feeds its lanes with later series.
    return model, panel, bayesvol.fit(model, panel, warn=False, block_width=32)


def test_batch_mle_recovers_parameters_with_nominal_coverage(gjr_t_study):
    """Small Monte Carlo study of the batch MLE on data simulated from known parameters.

    Coverage of the 95% Wald intervals is checked per parameter within 4 binomial standard errors,
    sqrt(0.95 * 0.05 / 128) = 0.019, i.e. above 0.873; the mean estimate within 4 Monte Carlo errors
    (sample SD of the estimates over sqrt(128)) plus a small-sample bias allowance of half an SE for nu.
    Measured with this seed: coverage mu 0.95, omega 0.91, alpha 0.91, gamma 0.95, beta 0.89, nu 0.98 (Wald
    intervals under-cover a little at T = 1200, mostly for beta; five series have alpha at its edge).
    """
    model, _, result = gjr_t_study
    assert result.converged.mean() > 0.97
    for name, truth in GJR_T.items():
        estimates, se = result.params[name].to_numpy(), result.se[name].to_numpy()
        covered = np.abs(estimates - truth) < 1.959964 * se
        assert covered.mean() > 0.95 - 4 * np.sqrt(0.95 * 0.05 / 128), (name, covered.mean())
        mc_error = estimates.std(ddof=1) / np.sqrt(estimates.size)
        allowance = 0.5 * np.median(se) if name == "nu" else 0.0
        assert abs(np.mean(estimates) - truth) < 4 * mc_error + allowance, name


def test_batch_fit_equals_column_by_column(gjr_t_study):
    model, panel, batch = gjr_t_study
    assert batch.params.shape == (panel.shape[1], len(model.param_names))
    # The first series of each device's chunk start on its 32 lanes, the later ones come from its queue.
    for j in (0, 1, 100, 127):
        single = bayesvol.fit(model, panel[:, j])
        assert bool(batch.converged.iloc[j]) and single.converged
        # Both optimisers stop once the largest gradient entry of the mean negative log-likelihood in the
        # unconstrained space is below gtol = 1e-5 (accepting up to 10 gtol); the log-likelihood left to gain is
        # then about T g'I^-1 g / 2 with I the per-observation information there, up to ~1e-5 at T = 1200 along
        # the weakly identified directions (alpha near its edge has I ~ 1e-2), whatever path each optimiser took.
        assert batch.loglik.iloc[j] == pytest.approx(single.loglik, abs=1e-5)
        for name in model.param_names:
            assert batch.params[name].iloc[j] == pytest.approx(single.params[name], abs=0.02 * single.se[name])
            assert batch.se[name].iloc[j] == pytest.approx(single.se[name], rel=1e-3)
        assert batch[j].loglik == pytest.approx(batch.loglik.iloc[j])
    # A missing return (NaN) is part of the model; an infinite one is refused, naming its column.
    with pytest.raises(ValueError, match="column 1"):
        bayesvol.fit(model, np.column_stack([panel[:, 0], np.r_[panel[:-1, 1], np.inf]]))


def test_stacked_covariances_and_boundaries_equal_single_series_routines():
    """The batch's vectorised covariances, standard errors and boundary flags against the per-series ones."""
    from bayesvol.inference import registry
    from bayesvol.inference import standard_errors as se_
    from bayesvol.inference._problem import Problem

    rng = np.random.default_rng(0)
    model = GARCH(vol="gjr", dist="t")
    p, num_obs = len(model.param_names), 50
    scores = rng.standard_normal((4, num_obs, p))
    hessians = -np.einsum("ntp,ntq->npq", scores, scores) - 0.1 * np.eye(p)
    hessians[2] = np.diag([-1.0] * (p - 1) + [0.0])  # singular information: the single-series fallback
    covs, robust = se_.stacked_covariances(hessians, scores)
    for j in range(4):
        cov_j, robust_j = se_.covariances(hessians[j], scores[j])
        np.testing.assert_allclose(covs[j], cov_j, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(robust[j], robust_j, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(se_.standard_errors(covs)[j], se_.standard_errors(cov_j))
    problem = Problem(model=model, method="exact", loglik=registry.lookup(model, "exact").loglik,
                      free_shapes=((),) * p, shapes=((),) * p, options=())
    u_hat = rng.normal(0.0, 8.0, (4, p))
    u_hat[:, 0] = 20.0  # mu is unbounded: never on an edge
    scores[1, :, 1] += 1.0  # omega of series 1 pushed outwards: flagged when |u| > 6
    u_hat[1, 1] = 7.0
    flags = se_.stacked_boundaries(problem, u_hat, scores, ["a", "b", "c", "d"])
    expected = {name: se_.at_boundary(problem, u_hat[j], scores[j])
                for j, name in enumerate("abcd")}
    assert flags == {name: edge for name, edge in expected.items() if edge}
    assert "omega" in flags["b"] and all("mu" not in edge for edge in flags.values())


def test_analytic_variance_forecast_equals_simulation(gbpusd):
    """Analytic E[sigma^2_{T+h}] against the mean of simulated variance paths (Monte Carlo error bound)."""
    model = GARCH(vol="gjr", dist="t")
    p = GJR_T
    last_variance = model.filter(p, gbpusd)[-1]
    analytic = np.asarray(model.expected_variance(model.params_type(**p), last_variance, 10))
    simulated = bayesvol.forecast(model, p, gbpusd, horizon=10, levels=[0.01, 0.05], method="simulation",
                                  num_paths=40_000, seed=2)
    assert simulated.method == "simulation"
    # Step one is known exactly; later steps are sample means of 40 000 draws of sigma^2_{T+h}.
    assert simulated.variance["mean"].iloc[0] == pytest.approx(analytic[0], rel=1e-10)
    returns = simulated.returns
    sd_of_mean = np.std(returns**2, axis=0) / np.sqrt(returns.shape[0])  # generous: Var(eps^2) > Var(sigma^2)
    np.testing.assert_array_less(np.abs(simulated.variance["mean"] - analytic), 4 * sd_of_mean)
    # The variance forecast reverts towards omega / (1 - kappa).
    far = model.expected_variance(model.params_type(**p), last_variance, 2000)
    assert float(far[-1]) == pytest.approx(float(model.unconditional_variance(p)), rel=1e-6)
    # One step ahead the return law is mu + sigma_{T+1} z: VaR from the innovation's quantile.
    sigma = np.sqrt(analytic[0])
    law = bayesvol.distributions.StandardizedStudentT(p["nu"])
    exact_var = -(p["mu"] + sigma * float(law.icdf(0.05)))
    # The 5% quantile of 40 000 draws has a standard error of about 0.7% here; 3% is four of them.
    assert simulated.value_at_risk[0.05].iloc[0] == pytest.approx(exact_var, rel=0.03)
    with pytest.raises(ValueError, match="horizon"):
        bayesvol.forecast(model, p, gbpusd, horizon=0)
    with pytest.raises(ValueError, match="levels"):
        bayesvol.forecast(model, p, gbpusd, levels=[1.5])
