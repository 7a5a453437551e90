"""InverseGaussian against scipy, the Christoffersen-Heston-Jacobs density, quadrature and its own samples."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

import bayesvol  # noqa: F401  (float64)
from bayesvol.distributions import InverseGaussian

MEANS = [0.01, 0.5, 1.0, 7.0, 300.0]
CONCENTRATIONS = [1e-3, 0.2, 1.0, 25.0, 4000.0]
PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)

# Compiled once per input shape, shared by the parameter grids.
log_pdf = jax.jit(lambda mean, concentration, y: InverseGaussian(mean, concentration).log_prob(y))
cdf = jax.jit(lambda mean, concentration, y: InverseGaussian(mean, concentration).cdf(y))


def scipy_law(mean, concentration):
    # scipy's invgauss(mu, scale=s) has mean mu * s and shape s.
    return stats.invgauss(mean / concentration, scale=concentration)


def points(mean):
    return mean * np.logspace(-4, 3, 57)


@pytest.mark.parametrize("mean", MEANS)
@pytest.mark.parametrize("concentration", CONCENTRATIONS)
def test_log_prob_and_cdf_match_scipy(mean, concentration):
    y = points(mean)
    reference = scipy_law(mean, concentration).logpdf(y)
    finite = np.isfinite(reference)
    actual = np.asarray(log_pdf(mean, concentration, y))
    np.testing.assert_allclose(actual[finite], reference[finite], rtol=1e-12, atol=1e-8)
    # Where scipy underflows to -inf the density is below exp(-700); ours must be very negative too.
    assert np.all(actual[~finite] < -700)
    np.testing.assert_allclose(
        np.asarray(cdf(mean, concentration, y)), scipy_law(mean, concentration).cdf(y), rtol=1e-9, atol=1e-14
    )


@pytest.mark.parametrize("delta", [0.05, 1.0, 3.0, 40.0])
def test_standard_matches_christoffersen_heston_jacobs_density(delta):
    law = InverseGaussian.standard(delta)
    assert float(law.mean) == delta and float(law.concentration) == pytest.approx(delta**2)
    y = delta * np.logspace(-3, 2, 41)
    written_out = np.log(delta) - 0.5 * np.log(2 * np.pi * y**3) - 0.5 * (np.sqrt(y) - delta / np.sqrt(y)) ** 2
    np.testing.assert_allclose(np.asarray(law.log_prob(y)), written_out, rtol=1e-12, atol=1e-10)
    assert float(law.reciprocal_mean()) == pytest.approx(1 / delta + 1 / delta**2, rel=1e-14)


@given(mean=st.floats(0.05, 50.0), concentration=st.floats(0.05, 500.0))
@PROPERTY_SETTINGS
def test_density_integrates_to_one_and_moments_by_quadrature(mean, concentration):
    def pdf(y):
        return float(np.exp(log_pdf(mean, concentration, y)))

    # Break the range at the mode (the peak of a concentrated density), the mean and multiples of the
    # exponential decay scale 2 mean^2 / concentration of the right tail, so quad never has to find them.
    ratio = 1.5 * mean / concentration
    mode = mean * (np.sqrt(1 + ratio**2) - ratio)
    decay_scale = 2 * mean**2 / concentration
    breaks = np.unique([0.0, mode, mean, *(c * decay_scale for c in (1.0, 10.0, 50.0) if c * decay_scale > mean)])
    limits = list(zip(breaks, [*breaks[1:], np.inf], strict=True))

    def integral(function):
        return sum(integrate.quad(function, a, b, epsabs=1e-12, epsrel=1e-11, limit=200)[0] for a, b in limits)

    assert integral(pdf) == pytest.approx(1.0, abs=1e-8)
    assert integral(lambda y: y * pdf(y)) == pytest.approx(mean, rel=1e-7)
    assert integral(lambda y: (y - mean) ** 2 * pdf(y)) == pytest.approx(mean**3 / concentration, rel=1e-6)
    reciprocal = float(InverseGaussian(mean, concentration).reciprocal_mean())
    assert integral(lambda y: pdf(y) / y) == pytest.approx(reciprocal, rel=1e-7)


@pytest.mark.parametrize("mean, concentration, seed", [(1.0, 0.05, 0), (2.0, 4.0, 1), (0.3, 900.0, 2)])
def test_samples_follow_cdf_and_moments(mean, concentration, seed):
    law = InverseGaussian(mean, concentration)
    y = np.asarray(law.sample(jax.random.key(seed), (20_000,)))
    assert np.all(y > 0)
    assert stats.kstest(y, lambda v: np.asarray(law.cdf(v))).pvalue > 1e-3
    assert stats.kstest(y, scipy_law(mean, concentration).cdf).pvalue > 1e-3
    for values, expected in [(y, mean), (1.0 / y, float(law.reciprocal_mean()))]:
        standard_error = values.std(ddof=1) / np.sqrt(values.size)
        assert abs(values.mean() - expected) < 4.5 * standard_error
    # Var(y) has Monte Carlo error from the fourth moment: E(y - mu)^4 = 15 mu^7 / lambda^3 + 3 mu^6 / lambda^2.
    variance = mean**3 / concentration
    fourth_central = 15 * mean**7 / concentration**3 + 3 * variance**2
    variance_error = np.sqrt((fourth_central - variance**2) / y.size)
    assert abs(y.var(ddof=1) - variance) < 4.5 * variance_error


def test_outside_support_is_minus_inf_with_finite_gradients():
    values = jnp.array([-3.0, -1e-300, 0.0, jnp.inf])
    law = InverseGaussian(1.5, 2.0, validate_args=False)
    np.testing.assert_array_equal(np.asarray(law.log_prob(values)), -np.inf)
    with pytest.warns(UserWarning, match="Out-of-support"):
        np.testing.assert_array_equal(np.asarray(InverseGaussian(1.5, 2.0).log_prob(values[:3])), -np.inf)

    def total(mean, concentration, value):
        # Mix points inside and outside: the outside ones must not poison the gradient with NaN.
        return jnp.sum(InverseGaussian(mean, concentration).log_prob(jnp.stack([value, 1.0 + value])))

    for value in [-2.0, 0.0]:
        gradients = jax.jit(jax.grad(total, argnums=(0, 1, 2)))(1.5, 2.0, value)
        assert all(np.isfinite(np.asarray(g)) for g in gradients)
    np.testing.assert_array_equal(np.asarray(law.cdf(jnp.array([-1.0, 0.0, jnp.inf]))), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("mean, concentration", [(1e-3, 1e-3), (0.7, 3.0), (20.0, 5000.0)])
def test_gradients_match_finite_differences(mean, concentration):
    y = mean * jnp.array([0.01, 0.5, 1.0, 2.0, 50.0])

    def total(log_mean, log_concentration):
        return jnp.sum(InverseGaussian(jnp.exp(log_mean), jnp.exp(log_concentration)).log_prob(y))

    point = (np.log(mean), np.log(concentration))
    gradient = jax.grad(total, argnums=(0, 1))(*point)
    step = 1e-6
    for index in range(2):
        shifted_up, shifted_down = list(point), list(point)
        shifted_up[index] += step
        shifted_down[index] -= step
        finite_difference = (total(*shifted_up) - total(*shifted_down)) / (2 * step)
        np.testing.assert_allclose(gradient[index], finite_difference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "mean, concentration",
    [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (1.0, -2.0), (np.array([1.0, -1.0]), 1.0)],
)
def test_invalid_parameters_raise(mean, concentration):
    with pytest.raises(ValueError, match=r"must satisfy (mean|concentration) > 0"):
        InverseGaussian(mean, concentration, validate_args=True)
    with pytest.raises(ValueError, match="must satisfy"):
        InverseGaussian.standard(-np.abs(np.asarray(mean, dtype=float)) - 0.5, validate_args=True)
