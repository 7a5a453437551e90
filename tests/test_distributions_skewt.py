"""SkewedStudentT and StandardizedStudentT against arch, scipy, quadrature and their own samples."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from arch.univariate import SkewStudent
from hypothesis import given, settings
from hypothesis import strategies as st
from numpyro.infer import MCMC, NUTS
from scipy import integrate, stats
from scipy.special import gammaln

import bayesvol  # noqa: F401  (float64)
from bayesvol.distributions import SkewedStudentT, StandardizedStudentT, second_moment_below_zero
from bayesvol.distributions._student_t import student_t_cdf, student_t_quantile

ARCH_SKEWT = SkewStudent()
DFS = [2.05, 2.5, 3.5, 5.0, 10.0, 40.0, 200.0]
SKEWS = [-0.95, -0.5, 0.0, 0.3, 0.9, 0.999]
POINTS = np.concatenate([-np.logspace(-3, 3, 25), [0.0], np.logspace(-3, 3, 25)])
PROBABILITIES = np.concatenate([np.logspace(-12, -1, 12), np.linspace(0.1, 0.9, 17), 1.0 - np.logspace(-8, -1, 8)])
PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)

# Compiled once per input shape, so that parameter grids do not recompile the Newton loops.
skewed_log_pdf = jax.jit(lambda df, skew, z: SkewedStudentT(df, skew).log_prob(z))
skewed_cdf = jax.jit(lambda df, skew, z: SkewedStudentT(df, skew).cdf(z))
skewed_icdf = jax.jit(lambda df, skew, q: SkewedStudentT(df, skew).icdf(q))
standardized_log_pdf = jax.jit(lambda df, z: StandardizedStudentT(df).log_prob(z))
standardized_cdf = jax.jit(lambda df, z: StandardizedStudentT(df).cdf(z))
standardized_icdf = jax.jit(lambda df, q: StandardizedStudentT(df).icdf(q))


def unit_t(df):
    return stats.t(df, scale=np.sqrt((df - 2.0) / df))


def assert_log_density_close(actual, reference):
    # Deep in the tails the log density is in the hundreds; allow 1e-8 absolute or 1e-12 relative.
    np.testing.assert_allclose(actual, reference, rtol=1e-12, atol=1e-8)


# ---------------------------------------------------------------- log density against independent code


@pytest.mark.parametrize("df", DFS)
@pytest.mark.parametrize("skew", SKEWS)
def test_skewed_log_prob_matches_arch(df, skew):
    reference = ARCH_SKEWT.loglikelihood([df, skew], POINTS, np.ones_like(POINTS), individual=True)
    assert_log_density_close(np.asarray(skewed_log_pdf(df, skew, POINTS)), reference)


@pytest.mark.parametrize("df", DFS)
def test_standardized_log_prob_matches_scipy(df):
    reference = unit_t(df).logpdf(POINTS)
    assert_log_density_close(np.asarray(standardized_log_pdf(df, POINTS)), reference)
    assert_log_density_close(np.asarray(skewed_log_pdf(df, 0.0, POINTS)), reference)


@pytest.mark.parametrize("df", DFS)
@pytest.mark.parametrize("skew", SKEWS)
def test_skewed_cdf_and_icdf_match_arch(df, skew):
    cdf = np.asarray(skewed_cdf(df, skew, POINTS))
    np.testing.assert_allclose(cdf, ARCH_SKEWT.cdf(POINTS, [df, skew]), rtol=1e-10, atol=1e-13)
    probabilities = PROBABILITIES
    # arch forms 0.5 + (q - (1 - skew)/2)/(1 + skew) before inverting, which rounds the upper tail probability
    # by ~1e-16 / (1 - q) relative; the quantile inherits that divided by df.
    rtol = 1e-9 + 1e-16 / (1.0 - probabilities) / df
    quantiles = np.asarray(skewed_icdf(df, skew, probabilities))
    reference = ARCH_SKEWT.ppf(probabilities, [df, skew])
    assert np.all(np.abs(quantiles - reference) <= 1e-12 + rtol * np.abs(reference))


@pytest.mark.parametrize("df", DFS)
def test_standardized_cdf_and_icdf_match_scipy(df):
    reference = unit_t(df)
    np.testing.assert_allclose(np.asarray(standardized_cdf(df, POINTS)), reference.cdf(POINTS), rtol=1e-10, atol=1e-13)
    probabilities = PROBABILITIES
    quantiles = np.asarray(standardized_icdf(df, probabilities))
    np.testing.assert_allclose(quantiles, reference.ppf(probabilities), rtol=1e-9, atol=1e-12)


def test_student_t_quantile_far_tail_and_edges():
    df = np.array([2.0001, 3.0, 30.0, 1e4])[:, None]
    tail = np.logspace(-100, -2, 30)
    edges = np.array([0.0, 0.5, 1.0, -0.1, 1.1])
    quantiles = np.asarray(student_t_quantile(df, np.concatenate([tail, edges])[None, :]))
    np.testing.assert_allclose(quantiles[:, :30], stats.t.ppf(tail[None, :], df), rtol=1e-9)
    assert (
        np.all(quantiles[:, 30] == -np.inf) and np.all(quantiles[:, 31] == 0.0) and np.all(quantiles[:, 32] == np.inf)
    )
    assert np.all(np.isnan(quantiles[:, 33:]))


@pytest.mark.parametrize("df, skew", [(2.1, -0.9), (4.0, 0.4), (12.0, 0.0), (60.0, 0.95)])
def test_icdf_inverts_cdf(df, skew):
    x = np.linspace(-25.0, 25.0, POINTS.size)  # the shape of POINTS, already compiled
    cdf = skewed_cdf(df, skew, x)
    # Probabilities close to 1 carry an absolute rounding error of ~1e-16, i.e. dx ~ 1e-16 / f(x); where the
    # distribution function has rounded to exactly 1 nothing can be inverted.
    invertible = np.asarray(cdf) < 1.0 - 1e-13
    assert invertible.sum() > 0.75 * x.size
    tolerance = 1e-9 + 1e-15 / np.exp(np.asarray(skewed_log_pdf(df, skew, x)))
    error = np.abs(np.asarray(skewed_icdf(df, skew, cdf)) - x)
    assert np.all(error[invertible] <= tolerance[invertible])
    q = np.linspace(1e-6, 1 - 1e-6, PROBABILITIES.size)
    np.testing.assert_allclose(np.asarray(skewed_cdf(df, skew, skewed_icdf(df, skew, q))), q, rtol=1e-11, atol=1e-14)


# ---------------------------------------------------------------- closed-form moments


@pytest.mark.parametrize("df", [2.05, 3.5, 4.5, 8.0, 50.0])
@pytest.mark.parametrize("skew", [-0.9, -0.2, 0.0, 0.6])
def test_closed_form_moments_match_arch(df, skew):
    law = SkewedStudentT(df, skew)
    assert float(law.mean) == 0.0 and float(law.variance) == 1.0
    lower_second = ARCH_SKEWT.partial_moment(2, 0.0, [df, skew])
    np.testing.assert_allclose(float(law.second_moment_below_zero()), lower_second, rtol=1e-10)
    if df > 3:
        np.testing.assert_allclose(float(law.skewness()), ARCH_SKEWT.moment(3, [df, skew]), rtol=1e-10, atol=1e-12)
    else:
        assert np.isnan(float(law.skewness()))
    if df > 4:
        np.testing.assert_allclose(float(law.kurtosis()), ARCH_SKEWT.moment(4, [df, skew]), rtol=1e-10)
        np.testing.assert_allclose(float(law.kurtosis(excess=True)), ARCH_SKEWT.moment(4, [df, skew]) - 3.0, rtol=1e-9)
    else:
        assert float(law.kurtosis()) == np.inf


def test_standardized_moments():
    law = StandardizedStudentT(jnp.array([3.0, 5.0, 10.0]))
    np.testing.assert_allclose(np.asarray(law.kurtosis()), [np.inf, 9.0, 4.0])
    np.testing.assert_allclose(np.asarray(law.skewness())[1:], 0.0)
    assert np.isnan(float(law.skewness()[0]))
    np.testing.assert_allclose(np.asarray(law.second_moment_below_zero()), 0.5)
    np.testing.assert_allclose(np.asarray(law.variance), 1.0)


def test_second_moment_below_zero_dispatch():
    assert float(second_moment_below_zero(dist.Normal(0.0, 1.0))) == pytest.approx(0.5, abs=1e-15)
    # A non-standard normal against quadrature of x^2 phi over x < 0.
    loc, scale = 0.7, 1.8
    reference, _ = integrate.quad(lambda x: x**2 * stats.norm(loc, scale).pdf(x), -np.inf, 0.0, epsabs=1e-13)
    assert float(second_moment_below_zero(dist.Normal(loc, scale))) == pytest.approx(reference, rel=1e-10)
    assert float(second_moment_below_zero(StandardizedStudentT(6.0))) == 0.5
    law = SkewedStudentT(6.0, -0.4)
    assert float(second_moment_below_zero(law)) == float(law.second_moment_below_zero())
    assert second_moment_below_zero(SkewedStudentT(jnp.full((2, 3), 6.0), 0.1)).shape == (2, 3)
    with pytest.raises(TypeError, match="supported laws"):
        second_moment_below_zero(dist.Laplace(0.0, 1.0))


@given(df=st.floats(2.5, 80.0), skew=st.floats(-0.95, 0.95))
@PROPERTY_SETTINGS
def test_density_integrates_to_one_with_unit_variance(df, skew):
    # Hansen's constants, written out independently of the package: the two pieces meet at z = -a/b.
    c = np.exp(gammaln((df + 1) / 2) - gammaln(df / 2)) / np.sqrt(np.pi * (df - 2))
    a = 4 * skew * c * (df - 2) / (df - 1)
    kink = -a / np.sqrt(1 + 3 * skew**2 - a**2)

    def pdf(z):
        return float(np.exp(skewed_log_pdf(df, skew, z)))

    def integral(function):
        left, _ = integrate.quad(function, -np.inf, kink, epsabs=1e-11, epsrel=1e-11, limit=200)
        right, _ = integrate.quad(function, kink, np.inf, epsabs=1e-11, epsrel=1e-11, limit=200)
        return left + right

    assert integral(pdf) == pytest.approx(1.0, abs=1e-8)
    assert integral(lambda z: z * pdf(z)) == pytest.approx(0.0, abs=1e-7)
    # The variance integrand decays like |z|^(1-df): slow for df near 2, so a looser bound there.
    assert integral(lambda z: z * z * pdf(z)) == pytest.approx(1.0, abs=1e-6 if df > 3 else 1e-4)
    lower, _ = integrate.quad(lambda z: z * z * pdf(z), -np.inf, min(kink, 0.0), epsabs=1e-11, limit=200)
    if kink < 0.0:
        lower += integrate.quad(lambda z: z * z * pdf(z), kink, 0.0, epsabs=1e-12)[0]
    expected = float(SkewedStudentT(df, skew).second_moment_below_zero())
    assert lower == pytest.approx(expected, abs=1e-6 if df > 3 else 1e-4)


@given(df=st.floats(2.2, 80.0))
@PROPERTY_SETTINGS
def test_standardized_density_integrates_to_one_with_unit_variance(df):
    def pdf(z):
        return float(np.exp(standardized_log_pdf(df, z)))

    total = sum(integrate.quad(pdf, *limits, epsabs=1e-11, epsrel=1e-11)[0] for limits in [(-np.inf, 0), (0, np.inf)])
    assert total == pytest.approx(1.0, abs=1e-8)
    half_variance, _ = integrate.quad(lambda z: z * z * pdf(z), -np.inf, 0.0, epsabs=1e-11, limit=200)
    assert 2.0 * half_variance == pytest.approx(1.0, abs=1e-6 if df > 3 else 1e-3)


# ---------------------------------------------------------------- sampling


@pytest.mark.parametrize("df, skew, seed", [(2.5, -0.7, 0), (5.0, 0.0, 1), (8.0, 0.5, 2), (30.0, -0.95, 3)])
def test_samples_follow_cdf(df, skew, seed):
    law = SkewedStudentT(df, skew)
    draws = np.asarray(law.sample(jax.random.key(seed), (20_000,)))
    result = stats.kstest(draws, lambda x: np.asarray(law.cdf(x)))
    assert result.pvalue > 1e-3, result


@pytest.mark.parametrize("df, seed", [(2.3, 4), (7.0, 5)])
def test_standardized_samples_follow_cdf(df, seed):
    law = StandardizedStudentT(df)
    draws = np.asarray(law.sample(jax.random.key(seed), (20_000,)))
    assert stats.kstest(draws, lambda x: np.asarray(law.cdf(x))).pvalue > 1e-3
    assert stats.kstest(draws, unit_t(df).cdf).pvalue > 1e-3


def assert_within_monte_carlo_error(values, expected, multiple=4.5):
    """Sample mean of ``values`` within ``multiple`` standard errors (estimated from the sample) of ``expected``."""
    standard_error = values.std(ddof=1) / np.sqrt(values.size)
    assert abs(values.mean() - expected) < multiple * standard_error, (values.mean(), expected, standard_error)


def test_sample_moments_match_closed_forms():
    # df = 30 keeps the eighth moment (needed for the kurtosis' Monte Carlo error) finite.
    law = SkewedStudentT(30.0, -0.6)
    z = np.asarray(law.sample(jax.random.key(11), (200_000,)))
    assert_within_monte_carlo_error(z, 0.0)
    assert_within_monte_carlo_error(z**2, 1.0)
    assert_within_monte_carlo_error(z**3, float(law.skewness()))
    assert_within_monte_carlo_error(z**4, float(law.kurtosis()))
    assert_within_monte_carlo_error(z**2 * (z < 0), float(law.second_moment_below_zero()))


def test_heavy_tailed_sample_mean_and_lower_moment():
    law = SkewedStudentT(5.0, 0.4)
    z = np.asarray(law.sample(jax.random.key(12), (200_000,)))
    assert_within_monte_carlo_error(z, 0.0)
    assert_within_monte_carlo_error(z**2 * (z < 0), float(law.second_moment_below_zero()))


# ---------------------------------------------------------------- support, validation, gradients


def test_log_prob_at_infinity_is_minus_inf_never_nan():
    values = jnp.array([-jnp.inf, jnp.inf])
    for law_class, params in [(SkewedStudentT, (2.01, 0.99)), (StandardizedStudentT, (3.0,))]:
        # Without validation the formula itself must give -inf (this is also what runs under jit) ...
        unchecked = law_class(*params, validate_args=False)
        assert np.all(np.asarray(unchecked.log_prob(values)) == -np.inf)
        assert np.all(np.asarray(jax.jit(lambda law, v: law.log_prob(v))(unchecked, values)) == -np.inf)
        # ... and with validation NumPyro warns that +-inf is outside the real line.
        with pytest.warns(UserWarning, match="Out-of-support"):
            assert np.all(np.asarray(law_class(*params, validate_args=True).log_prob(values)) == -np.inf)
    np.testing.assert_array_equal(np.asarray(SkewedStudentT(4.0, 0.3).cdf(values)), [0.0, 1.0])


@pytest.mark.parametrize(
    "make",
    [
        lambda: SkewedStudentT(2.0, 0.0, validate_args=True),
        lambda: SkewedStudentT(jnp.array([3.0, 1.5]), 0.0, validate_args=True),
        lambda: SkewedStudentT(5.0, 1.0, validate_args=True),
        lambda: SkewedStudentT(5.0, -1.2, validate_args=True),
        lambda: StandardizedStudentT(2.0, validate_args=True),
    ],
)
def test_invalid_parameters_raise(make):
    with pytest.raises(ValueError, match=r"must satisfy (df > 2|-1 < skew < 1)"):
        make()


def central_difference(function, x, step):
    return (function(x + step) - function(x - step)) / (2.0 * step)


GRADIENT_POINTS = [(2.0005, 0.0), (2.01, 0.999), (2.01, -0.999), (3.0, 0.5), (25.0, -0.3), (500.0, 0.9)]


GRADIENT_VALUES = jnp.array([-40.0, -1.3, -0.01, 0.0, 0.2, 3.0, 60.0])
# Each function of (df, skew) is compiled once, with its gradient, for all parameter points.
FUNCTIONS_OF_PARAMETERS = {
    "log_prob": lambda d, s: jnp.sum(SkewedStudentT(d, s).log_prob(GRADIENT_VALUES)),
    "cdf": lambda d, s: SkewedStudentT(d, s).cdf(-0.4),
    "icdf": lambda d, s: SkewedStudentT(d, s).icdf(0.3),
    "E[z^2 1{z<0}]": lambda d, s: SkewedStudentT(d, s).second_moment_below_zero(),
}
VALUE_AND_GRADIENT = {
    name: (jax.jit(function), jax.jit(jax.grad(function, argnums=(0, 1))))
    for name, function in FUNCTIONS_OF_PARAMETERS.items()
}
log_prob_value_gradient = jax.jit(jax.vmap(jax.grad(lambda v, d, s: SkewedStudentT(d, s).log_prob(v)), (0, None, None)))


@pytest.mark.parametrize("df, skew", GRADIENT_POINTS)
@pytest.mark.parametrize("name", list(FUNCTIONS_OF_PARAMETERS))
def test_gradients_finite_and_match_finite_differences(name, df, skew):
    value, gradient = VALUE_AND_GRADIENT[name]
    grad_df, grad_skew = gradient(df, skew)
    assert np.isfinite(grad_df) and np.isfinite(grad_skew)
    # Relative steps keep the stencil inside the parameter space right up to its edges.
    fd_df = central_difference(lambda d: value(d, skew), df, 1e-5 * (df - 2.0))
    fd_skew = central_difference(lambda s: value(df, s), skew, 1e-5 * (1.0 - abs(skew)))
    np.testing.assert_allclose(grad_df, fd_df, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(grad_skew, fd_skew, rtol=1e-4, atol=1e-7)
    if name == "log_prob":
        assert np.all(np.isfinite(np.asarray(log_prob_value_gradient(GRADIENT_VALUES, df, skew))))


def test_student_t_cdf_df_derivative_against_scipy():
    x = np.array([-30.0, -2.0, -0.3, 0.0, 0.8, 5.0])
    for df in [2.5, 7.0, 90.0]:
        grad = np.asarray(jax.vmap(jax.grad(student_t_cdf), in_axes=(None, 0))(df, jnp.asarray(x)))
        step = 1e-4 * df
        reference = (stats.t.cdf(x, df + step) - stats.t.cdf(x, df - step)) / (2 * step)
        np.testing.assert_allclose(grad, reference, rtol=1e-6, atol=1e-12)


def test_student_t_cdf_second_derivatives_against_scipy():
    """Hessian in (df, x), as Newton-type optimisers take it through the GJR persistence.

    References: second central differences of scipy's t.cdf in df (step h = 1e-3 df: truncation error of
    order h^2 relative, about 1e-6, rounding about 1e-16 / h^2 < 1e-10), a central difference of scipy's
    density in df for the cross term, and the density's closed-form derivative in x.
    """
    hessian = jax.jit(jax.hessian(student_t_cdf, argnums=(0, 1)))
    for df in [2.5, 7.0, 40.0]:
        for x in [-4.0, -0.7, 0.0, 1.3]:
            (d_dfdf, d_dfdx), (_, d_xx) = hessian(df, x)
            h = 1e-3 * df
            ref_dfdf = (stats.t.cdf(x, df + h) - 2 * stats.t.cdf(x, df) + stats.t.cdf(x, df - h)) / h**2
            ref_dfdx = (stats.t.pdf(x, df + h) - stats.t.pdf(x, df - h)) / (2 * h)
            ref_xx = -(df + 1.0) * x / (df + x**2) * stats.t.pdf(x, df)
            np.testing.assert_allclose(d_dfdf, ref_dfdf, rtol=1e-3, atol=1e-8)
            np.testing.assert_allclose(d_dfdx, ref_dfdx, rtol=1e-4, atol=1e-10)
            np.testing.assert_allclose(d_xx, ref_xx, rtol=1e-10, atol=1e-14)


def test_sample_is_differentiable_in_df():
    def mean_of_draws(df):
        return jnp.mean(SkewedStudentT(df, 0.3).sample(jax.random.key(0), (64,)) ** 2)

    assert np.isfinite(float(jax.grad(mean_of_draws)(6.0)))


# ---------------------------------------------------------------- inside a NumPyro model


def test_nuts_recovers_df_and_skew():
    true_df, true_skew = 6.0, -0.4
    y = SkewedStudentT(true_df, true_skew).sample(jax.random.key(21), (2000,))

    def model(y):
        df = numpyro.sample("df", dist.Uniform(2.0, 40.0))
        skew = numpyro.sample("skew", dist.Uniform(-1.0, 1.0))
        numpyro.sample("y", SkewedStudentT(df, skew), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=300, num_samples=300, num_chains=1, progress_bar=False)
    mcmc.run(jax.random.key(22), y)
    draws = mcmc.get_samples()
    for name, truth in [("df", true_df), ("skew", true_skew)]:
        mean, sd = float(draws[name].mean()), float(draws[name].std())
        assert abs(mean - truth) < 4.0 * sd, (name, mean, sd)
    assert float(draws["skew"].std()) < 0.05 and float(draws["df"].std()) < 1.5
