"""One recursion per observation-driven family: simulator, filter, NumPyro program and exact likelihood agree.

For GARCH, GJR, IG-GARCH (one and two components) and DCC: the simulator's latent path is the path of
``update`` run over its own simulated data; the program's log joint is the priors plus the exact
log-likelihood; DCC's likelihood is Engle's Q recursion and the multivariate density written out in numpy;
and ``bayesvol.simulate`` works for every family with an integer seed or a JAX key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy import stats

import bayesvol
from bayesvol.models import DCC, GARCH, IGGARCH, _base, _observation, dcc, garch, iggarch

GARCH_PARAMS = {"mu": 0.02, "omega": 0.05, "alpha": 0.06, "beta": 0.9}
GJR_PARAMS = {"mu": 0.02, "omega": 0.05, "alpha": 0.04, "gamma": 0.08, "beta": 0.87, "nu": 7.0}
IG1_PARAMS = {"lam": 0.02, "eta": -0.25, "w": 0.01, "b": -0.19, "c": 0.054, "a": 4.9}
IG2_PARAMS = {"lam": 0.02, "eta": -0.25, "sigma2": 1.0, "rho_s": 0.7, "rho_q": 0.98, "c_s": 0.03, "c_q": 0.02,
              "a_s": 5.0, "a_q": 2.0}
DCC_PARAMS = {"omega": [0.05, 0.03, 0.04], "alpha": [0.06, 0.08, 0.05], "beta": [0.90, 0.88, 0.92],
              "dcc_a": 0.05, "dcc_b": 0.90}
CORR = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.0]])

UNIVARIATE = [
    pytest.param(GARCH(), GARCH_PARAMS, id="garch"),
    pytest.param(GARCH(vol="gjr", dist="t"), GJR_PARAMS, id="gjr-t"),
    pytest.param(IGGARCH(r=0.01), IG1_PARAMS, id="iggarch-1"),
    pytest.param(IGGARCH(components=2, r=0.01), IG2_PARAMS, id="iggarch-2"),
]


def update_loop(model, params, state, y):
    """States governing y_1..y_T from a plain Python loop over ``model.update``."""
    path = []
    for y_t in y:
        path.append(state)
        state = model.update(params, state, jnp.asarray(y_t))
    return jax.tree_util.tree_map(lambda *leaves: np.stack([np.asarray(v) for v in leaves]), *path)


# ---------------------------------------------------------------- simulator = update over its own data


@pytest.mark.parametrize(("model", "values"), UNIVARIATE)
def test_simulated_latent_path_is_update_over_the_simulated_data(model, values):
    params = _base.as_params(model, values)
    sim = model.simulate(params, 120, 3)
    states = update_loop(model, params, model.init_state(params, None), sim.y)
    np.testing.assert_allclose(sim.variance, np.asarray(model.variance(states)), rtol=1e-12)
    if isinstance(model, IGGARCH):
        # The IG shock of the simulation is the one the recursion and the density use, positive on the support.
        np.testing.assert_allclose(sim.shock, np.asarray(model.shock(params, states, sim.y)), rtol=1e-12)
        assert np.all(sim.shock > 0)
        if model.components == 2:
            np.testing.assert_allclose(sim.short_run, states[0], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(sim.long_run, states[1], rtol=1e-12)


def test_dcc_simulated_covariances_are_update_over_the_simulated_data():
    model = DCC()
    params = _base.as_params(model, DCC_PARAMS)
    sim = model.simulate(params, 60, 5, correlation=CORR)
    states = update_loop(model, params, model.init_state(params, None, q_bar=CORR), sim.y)
    np.testing.assert_allclose(sim.covariance, np.asarray(model.covariance(states)), rtol=1e-12)
    np.testing.assert_allclose(states.q_bar, np.broadcast_to(CORR, states.q_bar.shape))


def test_dcc_two_pass_filter_is_one_pass_over_update():
    """DCC filters in two passes (GARCH recursions, then q_update over u_t): the same states as one scan over
    ``update`` from ``init_state``, with the data's target or a fixed one."""
    model = DCC(mean="constant")
    params = _base.as_params(model, dict(DCC_PARAMS, mu=[0.01, 0.0, -0.02]))
    y = jnp.asarray(DCC().simulate(DCC_PARAMS, 80, 1, correlation=CORR).y)
    for q_bar in (None, jnp.asarray(CORR)):
        states, last = model.filter_states(params, y, q_bar)
        one_states, one_last = _observation.sequential_filter_states(model, params, y,
                                                                     state=model.init_state(params, y, q_bar))
        for a, b in zip(jax.tree_util.tree_leaves((states, last)), jax.tree_util.tree_leaves((one_states, one_last)),
                        strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)


# ---------------------------------------------------------------- program = priors + exact likelihood


@pytest.mark.parametrize("spec", [dict(vol="garch", dist="normal"), dict(vol="gjr", dist="t")])
def test_garch_program_is_priors_jacobian_and_exact_loglik(spec):
    """On the stick-breaking coordinates: the factor ``y`` is the exact pointwise log-likelihood at the program's
    deterministic (alpha, [gamma,] beta), and the log joint adds their priors and the autodiff Jacobian."""
    model = GARCH(**spec)
    y = jnp.asarray(np.random.default_rng(0).standard_normal(80))
    priors = model.prior_distributions()
    names = ("alpha", "gamma", "beta") if spec["vol"] == "gjr" else ("alpha", "beta")
    others = {k: v for k, v in {"mu": 0.01, "omega": 0.05, "nu": 6.0}.items() if k in model.param_names}
    coords = jnp.asarray(np.random.default_rng(1).normal(-1.0, 0.5, len(names)))
    total, trace = log_density(model.program, (y,), {}, {**others, "stationary_coords": coords})
    values = {n: float(trace[n]["value"]) for n in names}
    params = model.params_type(**others, **values)
    exact = np.asarray(garch.exact_loglik(model, params, y))
    np.testing.assert_allclose(np.asarray(trace["y"]["fn"].log_factor), exact, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(trace["vol"]["value"]) ** 2, model.filter(params, y)[:-1], rtol=1e-12)
    lower = model.negative_second_moment(params)
    _, log_jac = jnp.linalg.slogdet(jax.jacfwd(
        lambda c: jnp.stack([model._from_stationary_coords(c, lower)[0][n] for n in names]))(coords))
    expected = (sum(float(getattr(priors, n).log_prob(v)) for n, v in {**others, **values}.items())
                + float(log_jac) + exact.sum())
    np.testing.assert_allclose(float(total), expected, rtol=1e-10)


@pytest.mark.parametrize(("components", "values"), [(1, IG1_PARAMS), (2, IG2_PARAMS)])
def test_iggarch_program_is_priors_plus_exact_loglik(components, values):
    model = IGGARCH(components=components, r=0.01)
    y = jnp.asarray(model.simulate(values, 150, 7).y)
    params = _base.as_params(model, values)
    total, trace = log_density(model.program, (y,), {}, dict(params._asdict()))
    exact = np.asarray(iggarch.exact_loglik(model, params, y))
    assert np.all(np.isfinite(exact))
    np.testing.assert_allclose(np.asarray(trace["y"]["fn"].log_factor), exact, rtol=1e-12)
    priors = model.prior_distributions()
    expected = sum(float(getattr(priors, n).log_prob(getattr(params, n))) for n in model.param_names) + exact.sum()
    np.testing.assert_allclose(float(total), expected, rtol=1e-10)


@pytest.mark.parametrize("law", ["normal", "t"])
def test_dcc_program_is_priors_plus_exact_loglik(law):
    model = DCC(dist=law)
    values = dict(DCC_PARAMS, nu=7.0) if law == "t" else DCC_PARAMS
    params = _base.as_params(model, values)
    y = jnp.asarray(model.simulate(params, 100, 2, correlation=CORR).y)
    total, trace = log_density(model.program, (y,), {}, dict(params._asdict()))
    exact = np.asarray(dcc.exact_loglik(model, params, y))
    np.testing.assert_allclose(np.asarray(trace["y"]["fn"].log_factor), exact, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(trace["cov"]["value"]), model.filtered_covariances(params, y)[:-1],
                               rtol=1e-12)
    priors = model.prior_distributions()
    expected = sum(float(jnp.sum(getattr(priors, n).log_prob(getattr(params, n)))) for n in model.param_names)
    np.testing.assert_allclose(float(total), expected + exact.sum(), rtol=1e-10)


# ---------------------------------------------------------------- DCC against Engle's recursion written out


def naive_dcc(y, mu, omega, alpha, beta, a, b, nu=None):
    """Per-step log densities: GARCH(1,1) variances from arch's backcast, Engle's Q_t, N(mu, H_t) or the t."""
    T, k = y.shape
    eps = y - mu
    weights = 0.94 ** np.arange(min(75, T))
    start = weights @ (y - y.mean(axis=0))[: len(weights)] ** 2 / weights.sum()
    variance = omega + (alpha + beta) * start
    variances = []
    for t in range(T):
        variances.append(variance)
        variance = omega + alpha * eps[t] ** 2 + beta * variance
    variances = np.array(variances)
    u = eps / np.sqrt(variances)
    q_bar = u.T @ u / T
    q = q_bar.copy()
    out = np.empty(T)
    for t in range(T):
        d = np.diag(1 / np.sqrt(np.diag(q)))
        corr = d @ q @ d
        sd = np.sqrt(variances[t])
        cov = corr * np.outer(sd, sd)
        if nu is None:
            out[t] = stats.multivariate_normal(mu, cov).logpdf(y[t])
        else:
            out[t] = stats.multivariate_t(mu, cov * (nu - 2) / nu, df=nu).logpdf(y[t])
        q = (1 - a - b) * q_bar + a * np.outer(u[t], u[t]) + b * q
    return out, u, variances


@pytest.mark.parametrize("law", ["normal", "t"])
def test_dcc_loglik_equals_engles_recursion_and_the_multivariate_density(law):
    model = DCC(dist=law, mean="constant")
    values = dict(DCC_PARAMS, mu=[0.02, -0.01, 0.0], **({"nu": 6.0} if law == "t" else {}))
    y = DCC().simulate(DCC_PARAMS, 150, 9, correlation=CORR).y
    p = {k: np.asarray(v, dtype=float) for k, v in values.items()}
    reference, u, variances = naive_dcc(y, p["mu"], p["omega"], p["alpha"], p["beta"], p["dcc_a"], p["dcc_b"],
                                        p.get("nu"))
    ours = bayesvol.log_likelihood(model, values, y, pointwise=True)
    np.testing.assert_allclose(ours, reference, rtol=1e-10)
    # The second step of the two-step estimator runs the same Q recursion on the standardised residuals.
    step = dcc.DCCCorrelationStep(dist=law)
    step_params = step.params_type(dcc_a=values["dcc_a"], dcc_b=values["dcc_b"], nu=values.get("nu"))
    correlation_part = np.asarray(dcc.correlation_step_loglik(step, step_params, jnp.asarray(u)))
    np.testing.assert_allclose(correlation_part - 0.5 * np.log(variances).sum(axis=1), reference, rtol=1e-10)


# ---------------------------------------------------------------- bayesvol.simulate for every family


@pytest.mark.parametrize(("model", "values", "shape"), [
    (GARCH(), GARCH_PARAMS, (50,)),
    (GARCH(vol="gjr", dist="t"), GJR_PARAMS, (50,)),
    (IGGARCH(), IG1_PARAMS, (50,)),
    (IGGARCH(components=2), IG2_PARAMS, (50,)),
    (DCC(), DCC_PARAMS, (50, 3)),
], ids=["garch", "gjr", "iggarch-1", "iggarch-2", "dcc"])
def test_bayesvol_simulate_works_for_every_family(model, values, shape):
    sim = bayesvol.simulate(model, values, 50, seed=0)
    assert sim._fields[0] == "y" and sim.y.shape == shape and np.all(np.isfinite(sim.y))
    if len(shape) == 1:
        assert sim.variance.shape == shape and np.all(sim.variance > 0)
    else:
        assert sim.covariance.shape == (50, 3, 3)
        assert np.all(np.linalg.eigvalsh(sim.covariance) > 0)
    # An integer seed and the JAX key made from it draw the same path.
    by_key = model.simulate(_base.as_params(model, values), 50, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(by_key.y, sim.y)
