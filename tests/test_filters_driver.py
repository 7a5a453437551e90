"""The filter driver: its scans against plain Python loops, the shared output fields of every filter, and the
Kalman filter run through it against a naive NumPy Kalman loop."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayesvol
from bayesvol.filters import (
    LinearGaussianSSM,
    _driver,
    bellman_filter,
    efficient_importance_sampling,
    kalman_filter,
    kalman_smoother,
    particle_filter,
    sv_qml_filter,
)

RNG = np.random.default_rng(11)


class ToyResult(NamedTuple):
    log_likelihood: jax.Array
    pointwise_log_likelihood: jax.Array
    filtered_mean: jax.Array
    filtered_variance: jax.Array

    filtered_means = _driver.alias("filtered_mean")


def _toy_filter(y, decay=0.7, **options):
    """An exponentially weighted mean of y, scored by a unit normal density around the previous mean."""

    def score(mean, y_t):
        return -0.5 * (y_t - mean) ** 2 - 0.5 * jnp.log(2.0 * jnp.pi)

    def outputs(loglik, mean):
        return {"pointwise_log_likelihood": loglik, "filtered_mean": mean, "filtered_variance": mean**2}

    def init(y_0):
        return y_0, outputs(score(0.0, y_0), y_0)

    def step(mean, y_t):
        new = decay * mean + (1.0 - decay) * y_t
        return new, outputs(score(mean, y_t), new)

    return _driver.run_filter(ToyResult, init, step, y, **options)


def _toy_loop(y, decay=0.7):
    means, logliks, mean = [], [], 0.0
    for t, y_t in enumerate(np.asarray(y)):
        logliks.append(-0.5 * (y_t - mean) ** 2 - 0.5 * np.log(2.0 * np.pi))
        mean = y_t if t == 0 else decay * mean + (1.0 - decay) * y_t
        means.append(mean)
    return np.array(logliks), np.array(means)


@pytest.mark.parametrize("num_steps", [1, 2, 25])
def test_run_filter_equals_python_loop(num_steps):
    y = jnp.asarray(RNG.normal(size=num_steps))
    out = _toy_filter(y)
    logliks, means = _toy_loop(y)
    np.testing.assert_allclose(np.asarray(out.pointwise_log_likelihood), logliks, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.asarray(out.filtered_mean), means, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.asarray(out.filtered_variance), means**2, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(float(out.log_likelihood), logliks.sum(), rtol=1e-13)
    assert out.filtered_means is out.filtered_mean
    jitted = jax.jit(_toy_filter)(y)
    np.testing.assert_allclose(np.asarray(jitted.filtered_mean), means, rtol=1e-13, atol=1e-13)


def test_scan_steps_reverse_and_carry_equal_loops():
    x = jnp.asarray(RNG.normal(size=9))

    def step(carry, x_t):
        new = 0.5 * carry + x_t
        return new, new

    _, forward = _driver.scan_steps(step, x, carry=jnp.zeros(()))
    _, backward = _driver.scan_steps(step, x, carry=jnp.zeros(()), reverse=True)
    _, from_init = _driver.scan_steps(step, x, init=lambda x_0: (x_0 + 1.0, x_0 + 1.0))
    _, back_init = _driver.scan_steps(step, x, init=lambda x_last: (x_last, x_last), reverse=True)
    expect_f, expect_b, expect_i = [], [0.0] * 9, []
    carry = 0.0
    for value in np.asarray(x):
        carry = 0.5 * carry + value
        expect_f.append(carry)
    carry = 0.0
    for t in range(8, -1, -1):
        carry = 0.5 * carry + float(x[t])
        expect_b[t] = carry
    carry = float(x[0]) + 1.0
    expect_i.append(carry)
    for value in np.asarray(x[1:]):
        carry = 0.5 * carry + value
        expect_i.append(carry)
    np.testing.assert_allclose(np.asarray(forward), expect_f, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(backward), expect_b, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(back_init), expect_b, rtol=1e-13)
    np.testing.assert_allclose(np.asarray(from_init), expect_i, rtol=1e-13)
    with pytest.raises(ValueError, match="exactly one"):
        _driver.scan_steps(step, x)


@pytest.mark.parametrize("num_steps, length", [(1, 3), (7, 3), (10, 3), (10, 20)])
def test_blocks_generate_inputs_per_block(num_steps, length):
    """Inputs generated a block at a time equal a loop that draws each block's numbers with the same keys."""
    y = jnp.asarray(RNG.normal(size=num_steps))
    key, tail_key = jax.random.split(jax.random.PRNGKey(3))

    def generate(block_key, size):
        return jax.random.normal(block_key, (size, 2))

    def init(y_0):
        return y_0, {"pointwise_log_likelihood": y_0, "filtered_mean": y_0, "filtered_variance": y_0}

    def step(carry, inputs):
        y_t, noise = inputs
        new = carry + y_t * noise[0] + noise[1]
        return new, {"pointwise_log_likelihood": noise[0], "filtered_mean": new, "filtered_variance": noise[1]}

    out = _driver.run_filter(ToyResult, init, step, y, blocks=_driver.Blocks(length, generate, key, tail_key))
    num_blocks, tail = divmod(num_steps - 1, length)
    noise = [generate(k, length) for k in jax.random.split(key, num_blocks)] if num_blocks else []
    if tail or not num_blocks:
        noise.append(generate(tail_key, tail))
    noise = np.concatenate(noise)
    carry, means = float(y[0]), [float(y[0])]
    for t in range(1, num_steps):
        carry = carry + float(y[t]) * noise[t - 1, 0] + noise[t - 1, 1]
        means.append(carry)
    np.testing.assert_allclose(np.asarray(out.filtered_mean), means, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(out.pointwise_log_likelihood[1:]), noise[:, 0])


def test_associative_scan_matches_sequential_scan():
    """A step that is associative (a running sum and count) gives the same output by either scan."""
    y = jnp.asarray(RNG.normal(size=13))

    def outputs(total, count):
        mean = total / count
        return {"pointwise_log_likelihood": -0.5 * mean**2, "filtered_mean": mean, "filtered_variance": 1.0 / count}

    def init(y_0):
        return (y_0, jnp.ones(())), outputs(y_0, 1.0)

    def step(carry, y_t):
        total, count = carry[0] + y_t, carry[1] + 1.0
        return (total, count), outputs(total, count)

    sequential = _driver.run_filter(ToyResult, init, step, y)
    parallel = _driver.run_filter(ToyResult, lambda y_t: (y_t, jnp.ones(())), lambda prefix, _: outputs(*prefix), y,
                                  combine=lambda a, b: (a[0] + b[0], a[1] + b[1]))
    for name in ToyResult._fields:
        np.testing.assert_allclose(np.asarray(getattr(parallel, name)), np.asarray(getattr(sequential, name)),
                                   rtol=1e-12, atol=1e-14)


def _sv_case():
    model = bayesvol.models.SV()
    params = {"mu": -1.0, "phi": 0.95, "sigma": 0.2}
    return model, params, bayesvol.simulate(model, params, 40, seed=2).y


def test_every_filter_has_the_common_fields():
    model, params, y = _sv_case()
    ssm = LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.zeros(1), 0.1 * jnp.eye(1),
                            jnp.eye(1), jnp.zeros(1), jnp.eye(1))
    outputs = {
        "particle_filter": particle_filter(model, params, y, 0, 64),
        "auxiliary_particle_filter": particle_filter(model, params, y, 0, 64, proposal="auxiliary"),
        "eis": efficient_importance_sampling(model, params, y, 0, 8),
        "bellman": bellman_filter(model, params, y, num_newton_steps=3),
        "kalman": kalman_filter(ssm, y),
        "qml": sv_qml_filter(model, params, y),
    }
    num_steps = y.shape[0]
    for name, out in outputs.items():
        fields = out._fields
        assert fields[:2] == ("log_likelihood", "pointwise_log_likelihood"), name
        assert "filtered_mean" in fields, name
        assert ("filtered_variance" in fields) != ("filtered_covariance" in fields), name
        assert out.pointwise_log_likelihood.shape == (num_steps,), name
        assert out.filtered_mean.shape[0] == num_steps, name
        np.testing.assert_allclose(float(jnp.sum(out.pointwise_log_likelihood)), float(out.log_likelihood),
                                   rtol=1e-10, err_msg=name)
        # The older name stays readable.
        assert out.predictive_log_likelihoods is out.pointwise_log_likelihood, name
    # The EIS filtering moments weigh the same draws: finite, and the last equals the smoothed one.
    eis = outputs["eis"]
    assert np.all(np.isfinite(np.asarray(eis.filtered_mean))) and np.all(np.asarray(eis.filtered_variance) >= 0.0)
    np.testing.assert_allclose(float(eis.filtered_mean[-1]), float(eis.smoothed_mean[-1]), rtol=1e-10)


def test_multivariate_filters_have_the_common_fields():
    """The DFSV Bellman filter, the Rao-Blackwellised particle filter and the Wishart EIS (plain and sequential)
    follow the same result convention, and their older attribute names stay readable."""
    from bayesvol.filters.dfsv_bellman import bellman_filter as dfsv_bellman_filter
    from bayesvol.filters.eis_wishart import wishart_eis
    from bayesvol.filters.rbpf import rao_blackwellised_particle_filter
    from bayesvol.models._base import as_params
    from bayesvol.models._wishart_linalg import steady_state

    model = bayesvol.models.DFSV(num_factors=1)
    params = as_params(model, {"lambda_r": np.array([[1.0], [0.7]]), "Phi_f": np.array([[0.2]]),
                               "Phi_h": np.array([[0.9]]), "mu": np.array([-0.5]), "Q_h": np.array([[0.05]]),
                               "sigma2": np.array([0.3, 0.4])})
    y = jnp.asarray(bayesvol.simulate(model, params, 15, seed=1).y)
    bellman = dfsv_bellman_filter(model, params, y, 4)
    particle = rao_blackwellised_particle_filter(model, params, y, jax.random.PRNGKey(0), 50)
    for name, out in {"dfsv_bellman": bellman, "rbpf": particle}.items():
        assert out._fields[:2] == ("log_likelihood", "pointwise_log_likelihood"), name
        assert out.filtered_mean.shape == (15, 2), name                     # the joint state (f, h)
        np.testing.assert_allclose(float(out.log_likelihood), float(jnp.sum(out.pointwise_log_likelihood)),
                                   rtol=1e-12, err_msg=name)
        assert out.loglik is out.pointwise_log_likelihood, name
    assert bellman.filtered_covariance.shape == (15, 2, 2)
    assert bellman.filtered_cov is bellman.filtered_covariance
    assert bellman.predicted_cov is bellman.predicted_covariance
    assert particle.filtered_variance.shape == (15, 2) and particle.ess.shape == (15,)

    wishart = bayesvol.models.WishartSV()
    a = np.array([[1.2, 0.3], [0.3, 0.8]])
    returns = jnp.asarray(bayesvol.simulate(wishart, {"nu": 9.0, "d": 0.6, "A": a}, 15, seed=2).y)
    chol_a = jnp.linalg.cholesky(jnp.asarray(a))
    for resample in (False, True):
        out = wishart_eis(returns, 9.0, 0.6, chol_a, steady_state(chol_a, 0.6), num_draws=8, num_iterations=1,
                          key=jax.random.PRNGKey(1), resample=resample)
        assert out._fields[:2] == ("log_likelihood", "pointwise_log_likelihood")
        assert out.pointwise_log_likelihood.shape == (15,)
        np.testing.assert_allclose(float(out.log_likelihood), float(jnp.sum(out.pointwise_log_likelihood)),
                                   rtol=1e-12)
        assert out.loglik is out.log_likelihood and out.pointwise is out.pointwise_log_likelihood
        assert (out.filtered_scale_inverse is None) != resample


def _naive_kalman(m0, p0, f, c, q, h, d, r, y):
    """Textbook covariance-form Kalman filter and RTS smoother, one NumPy step at a time."""
    num_steps = y.shape[0]
    logliks, means, covs, pred_means, pred_covs = [], [], [], [], []
    mean, cov = m0, p0
    for t in range(num_steps):
        if t > 0:
            mean, cov = f[t] @ mean + c[t], f[t] @ cov @ f[t].T + q[t]
        pred_means.append(mean)
        pred_covs.append(cov)
        s = h @ cov @ h.T + r
        v = y[t] - h @ mean - d
        logliks.append(-0.5 * (v @ np.linalg.solve(s, v) + np.linalg.slogdet(2.0 * np.pi * s)[1]))
        gain = cov @ h.T @ np.linalg.inv(s)
        mean = mean + gain @ v
        cov = cov - gain @ s @ gain.T
        means.append(mean)
        covs.append(cov)
    smoothed_means, smoothed_covs = [means[-1]], [covs[-1]]
    for t in range(num_steps - 2, -1, -1):
        gain = covs[t] @ f[t + 1].T @ np.linalg.inv(pred_covs[t + 1])
        smoothed_means.insert(0, means[t] + gain @ (smoothed_means[0] - pred_means[t + 1]))
        smoothed_covs.insert(0, covs[t] + gain @ (smoothed_covs[0] - pred_covs[t + 1]) @ gain.T)
    return [np.array(v) for v in (logliks, means, covs, pred_means, pred_covs, smoothed_means, smoothed_covs)]


def test_kalman_filter_through_driver_equals_naive_loop():
    num_steps, n, p = 30, 3, 2
    f = 0.3 * RNG.normal(size=(num_steps, n, n))
    a = RNG.normal(size=(num_steps, n, n))
    q = 0.1 * np.einsum("tij,tkj->tik", a, a) + 0.05 * np.eye(n)
    c = RNG.normal(size=(num_steps, n))
    h = RNG.normal(size=(p, n))
    d = RNG.normal(size=p)
    r = np.array([[0.5, 0.1], [0.1, 0.4]])
    m0, p0 = RNG.normal(size=n), 2.0 * np.eye(n)
    y = RNG.normal(size=(num_steps, p))
    ssm = LinearGaussianSSM(m0, p0, f, c, q, h, d, r)
    out = kalman_filter(ssm, y)
    smooth = kalman_smoother(ssm, y)
    logliks, means, covs, pred_means, pred_covs, smoothed_means, smoothed_covs = _naive_kalman(
        m0, p0, f, c, q, h, d, r, y)
    np.testing.assert_allclose(np.asarray(out.pointwise_log_likelihood), logliks, rtol=1e-10)
    np.testing.assert_allclose(float(out.log_likelihood), logliks.sum(), rtol=1e-11)
    np.testing.assert_allclose(np.asarray(out.filtered_mean), means, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(out.filtered_covariance), covs, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(out.predicted_mean), pred_means, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(out.predicted_covariance), pred_covs, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(smooth.smoothed_mean), smoothed_means, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(smooth.smoothed_covariance), smoothed_covs, rtol=1e-9, atol=1e-10)
    assert smooth.smoothed_means is smooth.smoothed_mean
