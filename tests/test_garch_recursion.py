"""The GARCH/GJR variance path by a parallel prefix scan over affine maps equals the sequential recursion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesvol.models import GARCH, IGGARCH, _observation


@pytest.fixture(scope="module")
def y_fx(gbpusd):
    return jnp.asarray(np.asarray(gbpusd))  # 945 daily returns


def random_params(model, num_draws, seed, beta_range=(0.0, 0.995)):
    """Draws spread over the region the optimiser and NUTS visit (and beyond it in beta when asked)."""
    rng = np.random.default_rng(seed)
    draws = {"mu": rng.normal(0.0, 0.1, num_draws), "omega": rng.uniform(1e-4, 0.5, num_draws),
             "alpha": rng.uniform(0.0, 0.3, num_draws), "gamma": rng.uniform(-0.05, 0.3, num_draws),
             "beta": rng.uniform(*beta_range, num_draws), "nu": rng.uniform(2.5, 30.0, num_draws),
             "skew": rng.uniform(-0.9, 0.9, num_draws)}
    return {n: jnp.asarray(draws[n]) for n in model.param_names}


def both_paths(model, draws, y):
    """(states, last) from the associative and from the sequential recursion, for every draw (one compile)."""

    @jax.jit
    def run(values):
        def one(v):
            params = model.params_type(**v)
            return (_observation.affine_filter_states(model, params, y),
                    _observation.sequential_filter_states(model, params, y))
        return jax.vmap(one)(values)

    return run(draws)


def assert_relative(fast, slow, rtol):
    fast, slow = np.asarray(fast), np.asarray(slow)
    assert np.all(np.isfinite(slow))
    np.testing.assert_array_less(np.abs(fast - slow), rtol * np.abs(slow) + 1e-300)


CONFIGS = [("gjr", "constant", "backcast"), ("gjr", "zero", "backcast"), ("gjr", "constant", "sample"),
           ("gjr", "zero", "unconditional"), ("gjr", "constant", 0.7), ("garch", "constant", "backcast"),
           ("garch", "zero", "sample")]


@pytest.mark.parametrize(("vol", "mean", "start"), CONFIGS)
def test_associative_path_equals_sequential_scan(y_fx, vol, mean, start):
    """16 random parameter draws per model: relative difference below 1e-12.

    The prefix products of beta stay in [0, 1] and every offset is positive, so no digits cancel: the two
    orders of summation differ by a few units of rounding per term (about 1e-15 relative).
    """
    model = GARCH(vol=vol, dist="normal", mean=mean, variance_start=start)
    draws = random_params(model, 16, seed=7)
    (states, last), (states_seq, last_seq) = both_paths(model, draws, y_fx)
    assert states.shape == (16, y_fx.shape[0])
    assert_relative(states, states_seq, 1e-12)
    assert_relative(last, last_seq, 1e-12)


def test_filter_states_and_update_equal_a_python_loop(y_fx):
    """filter_states equals a Python loop over the one-step update, which is the affine map of the coefficients."""
    model = GARCH(vol="gjr", dist="skewt")
    params = model.params_type(mu=0.03, omega=0.02, alpha=0.05, gamma=0.08, beta=0.88, nu=7.0, skew=-0.1)
    assert hasattr(model, "affine_coefficients") and not hasattr(IGGARCH(), "affine_coefficients")
    states, last = _observation.filter_states(model, params, y_fx)
    # A plain Python loop over the model's one-step update.
    variance = float(model.init_state(params, y_fx))
    loop = []
    for y_t in np.asarray(y_fx):
        loop.append(variance)
        shock = y_t - 0.03
        variance = 0.02 + (0.05 + 0.08 * (shock < 0)) * shock**2 + 0.88 * variance
    assert_relative(states, np.array(loop), 1e-12)
    assert float(last) == pytest.approx(variance, rel=1e-12)
    slope, offset = model.affine_coefficients(params, jnp.asarray(-0.5))
    assert float(model.update(params, 2.0, -0.5)) == pytest.approx(float(slope) * 2.0 + float(offset), rel=1e-15)
    assert float(slope) == 0.88 and float(offset) == pytest.approx(0.02 + 0.13 * 0.53**2, rel=1e-15)


def test_gradients_of_the_two_recursions_agree(y_fx):
    """Reverse-mode gradients (the optimiser's and NUTS's) and forward-mode scores agree to 1e-10 relative."""
    model = GARCH(vol="gjr", dist="skewt")
    draws = random_params(model, 4, seed=11, beta_range=(0.5, 0.95))

    def total(values, filter_fn):
        params = model.params_type(**values)
        states, _ = filter_fn(model, params, y_fx)
        return jnp.sum(_observation.loglik_from_states(model, params, states, y_fx))

    @jax.jit
    def grads(values):
        def one(v):
            return (jax.grad(total)(v, _observation.affine_filter_states),
                    jax.grad(total)(v, _observation.sequential_filter_states))
        return jax.vmap(one)(values)

    fast, slow = grads(draws)
    for name in model.param_names:
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-10, atol=1e-10 * np.max(np.abs(slow[name])))


def test_non_stationary_trial_points(y_fx):
    """beta at and above one (an optimiser's or a user's trial point): same path, a finite likelihood (it is
    defined at non-stationary parameters; stationarity is imposed by the fit's coordinates and the prior),
    finite gradients."""
    model = GARCH(vol="gjr", dist="t")
    draws = random_params(model, 8, seed=3, beta_range=(1.0, 1.01))
    (states, last), (states_seq, last_seq) = both_paths(model, draws, y_fx)
    # The paths grow like beta^t (up to about 1e6 here) and still agree to rounding.
    assert np.max(np.asarray(states)) > 1e3
    assert_relative(states, states_seq, 1e-11)
    assert_relative(last, last_seq, 1e-11)
    values = {n: v[0] for n, v in draws.items()}

    def total(v):
        return jnp.sum(_observation.pointwise_loglik(model, model.params_type(**v), y_fx))

    value, grad = jax.value_and_grad(total)(values)
    assert np.isfinite(float(value))
    assert all(np.isfinite(float(g)) for g in grad.values())
    # The same total as the emission densities along the sequential path.
    path = _observation.sequential_filter_states(model, model.params_type(**values), y_fx)[0]
    params = model.params_type(**values)
    by_hand = sum(float(model.emission(params, path[t]).log_prob(y_fx[t])) for t in range(0, y_fx.shape[0], 1))
    np.testing.assert_allclose(float(value), by_hand, rtol=1e-10)
    # A path that overflows (beta = 3: after about 650 steps) is +inf from the same step on in both
    # recursions, never NaN.
    huge = dict(values, beta=jnp.asarray(3.0))
    states, last = _observation.affine_filter_states(model, model.params_type(**huge), y_fx)
    states_seq, _ = _observation.sequential_filter_states(model, model.params_type(**huge), y_fx)
    assert not np.any(np.isnan(np.asarray(states))) and float(last) == np.inf
    assert 0 < np.sum(np.isinf(np.asarray(states))) < y_fx.shape[0]
    np.testing.assert_array_equal(np.isinf(np.asarray(states)), np.isinf(np.asarray(states_seq)))


def test_unrolled_sequential_scan_is_the_same_recursion(y_fx):
    """The batch optimiser traces the loop unrolled by 8 (``scan_unroll``): the same path, setting restored."""
    model = GARCH(vol="gjr", dist="skewt")
    params = model.params_type(**{n: v[0] for n, v in random_params(model, 1, seed=5).items()})
    states, last = _observation.sequential_filter_states(model, params, y_fx)
    with _observation.scan_unroll(8):
        assert _observation._SCAN_UNROLL == 8
        unrolled, last_unrolled = _observation.sequential_filter_states(model, params, y_fx)
    assert _observation._SCAN_UNROLL == 1
    assert_relative(unrolled, states, 1e-14)
    assert_relative(last_unrolled, last, 1e-14)
