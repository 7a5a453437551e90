"""NumPyro's Wishart against scipy, and the Wishart SV helpers against independent computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import integrate, linalg, stats

import bayesvol  # noqa: F401  (float64)
from bayesvol.distributions import (
    matrix_power_psd,
    wishart_kernel_log_integral,
    wishart_kernel_product,
    wishart_sv_scale,
)

# Seed 003's simulation design (Philipov & Glickman's estimates): k = 3, nu = 14, d = 0.5.
SEED_A = np.array([[0.0238, 0.0057, 0.0145], [0.0057, 0.0239, 0.0056], [0.0145, 0.0056, 0.0330]])


def random_spd(rng, k, jitter=0.3):
    x = rng.normal(size=(k, k))
    return x @ x.T / k + jitter * np.eye(k)


# ---------------------------------------------------------------- what we rely on in numpyro.Wishart


@pytest.mark.parametrize("k, df", [(1, 0.7), (3, 14.0), (4, 6.3)])
def test_numpyro_wishart_log_prob_matches_scipy(k, df):
    rng = np.random.default_rng(k)
    scale = random_spd(rng, k)
    omegas = stats.wishart(df=df, scale=scale).rvs(size=6, random_state=rng).reshape(6, k, k)
    reference = stats.wishart(df=df, scale=scale).logpdf(np.moveaxis(omegas, 0, -1))
    for law in [
        dist.Wishart(df, scale_matrix=scale),
        dist.Wishart(df, rate_matrix=np.linalg.inv(scale)),
        dist.Wishart(df, scale_tril=np.linalg.cholesky(scale)),
    ]:
        np.testing.assert_allclose(np.asarray(law.log_prob(omegas)), reference, rtol=1e-12, atol=1e-9)


def test_numpyro_wishart_samples_have_the_right_mean_and_projections():
    scale = random_spd(np.random.default_rng(7), 3)
    draws = np.asarray(dist.Wishart(7.5, scale_matrix=scale).sample(jax.random.key(0), (40_000,)))
    standard_error = draws.std(axis=0, ddof=1) / np.sqrt(draws.shape[0])
    assert np.all(np.abs(draws.mean(axis=0) - 7.5 * scale) < 4.5 * standard_error)
    # For any fixed a, a' Omega a / a' S a is chi-square with nu degrees of freedom.
    for a in [np.array([1.0, 0.0, 0.0]), np.array([0.3, -1.0, 2.0])]:
        projection = np.einsum("i,nij,j->n", a, draws, a) / (a @ scale @ a)
        assert stats.kstest(projection, stats.chi2(7.5).cdf).pvalue > 1e-3


# ---------------------------------------------------------------- matrix powers


@pytest.mark.parametrize("power", [0.5, 0.3, 1.0, 2.0, -1.0, -0.5, 0.0])
def test_matrix_power_matches_scipy(power):
    matrix = random_spd(np.random.default_rng(1), 4)
    expected = np.real(linalg.fractional_matrix_power(matrix, power))
    np.testing.assert_allclose(np.asarray(matrix_power_psd(matrix, power)), expected, rtol=1e-10, atol=1e-12)


def test_matrix_power_identities_and_batches():
    rng = np.random.default_rng(2)
    matrices = np.stack([random_spd(rng, 3) for _ in range(5)])
    powers = np.linspace(-0.7, 1.3, 5)
    batched = np.asarray(matrix_power_psd(matrices, powers))
    for matrix, power, result in zip(matrices, powers, batched, strict=True):
        np.testing.assert_allclose(result, np.asarray(matrix_power_psd(matrix, power)), rtol=1e-13)
    root = np.asarray(matrix_power_psd(matrices, 0.5))
    np.testing.assert_allclose(root @ root, matrices, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(root, np.swapaxes(root, -1, -2), atol=1e-15)
    product = np.asarray(matrix_power_psd(matrices, 0.3)) @ np.asarray(matrix_power_psd(matrices, 0.45))
    np.testing.assert_allclose(product, np.asarray(matrix_power_psd(matrices, 0.75)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(matrix_power_psd(matrices, -1.0)), np.linalg.inv(matrices), rtol=1e-11)
    # A singular PSD matrix has a well-defined positive power.
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(np.asarray(matrix_power_psd(singular, 0.5)), singular / np.sqrt(2.0), atol=1e-15)


def symmetric_direction(rng, k):
    e = rng.normal(size=(k, k))
    return (e + e.T) / 2


@pytest.mark.parametrize(
    "name, matrix",
    [
        ("distinct", random_spd(np.random.default_rng(3), 3)),
        ("identity", np.eye(3)),
        ("repeated-pair", np.diag([2.0, 2.0, 5.0])),
        ("nearly-repeated", np.diag([1.0, 1.0 + 1e-9, 3.0])),
        ("seed-A", SEED_A),
    ],
)
@pytest.mark.parametrize("power", [0.5, 0.3, -1.0, 1.7])
def test_matrix_power_derivatives_match_finite_differences(name, matrix, power):
    rng = np.random.default_rng(4)
    direction = symmetric_direction(rng, matrix.shape[0])
    step = 1e-6 * np.abs(np.linalg.eigvalsh(matrix)).min()

    def along(t, p):
        return matrix_power_psd(matrix + t * direction, p)

    tangent_matrix = np.asarray(jax.jvp(lambda t: along(t, power), (0.0,), (1.0,))[1])
    finite_difference = (np.asarray(along(step, power)) - np.asarray(along(-step, power))) / (2 * step)
    assert np.all(np.isfinite(tangent_matrix))
    np.testing.assert_allclose(tangent_matrix, finite_difference, rtol=1e-5, atol=1e-7 * np.abs(tangent_matrix).max())
    tangent_power = np.asarray(jax.jvp(lambda p: along(0.0, p), (power,), (1.0,))[1])
    fd_power = (np.asarray(along(0.0, power + 1e-6)) - np.asarray(along(0.0, power - 1e-6))) / 2e-6
    np.testing.assert_allclose(tangent_power, fd_power, rtol=1e-6, atol=1e-9)
    # Reverse mode (what NUTS and the optimiser use) agrees with forward mode.
    gradient = np.asarray(jax.grad(lambda m: jnp.sum(matrix_power_psd(m, power) * direction))(jnp.asarray(matrix)))
    np.testing.assert_allclose(np.sum(gradient * direction), np.sum(tangent_matrix * direction), rtol=1e-10)


def test_differentiating_eigh_itself_fails_at_repeated_eigenvalues():
    # The reason matrix_power_psd carries its own derivative rule.
    naive = jax.grad(lambda m: jnp.sum(jnp.linalg.eigh(m)[1] ** 2 * jnp.linalg.eigh(m)[0]))(jnp.eye(3))
    assert not np.all(np.isfinite(np.asarray(naive)))
    assert np.all(np.isfinite(np.asarray(jax.grad(lambda m: jnp.sum(matrix_power_psd(m, 0.5)))(jnp.eye(3)))))


# ---------------------------------------------------------------- the Wishart SV scale


def test_wishart_sv_scale_matches_written_out_formula():
    rng = np.random.default_rng(5)
    omega = np.linalg.inv(random_spd(rng, 3) * 0.02)
    d, nu = 0.5, 14.0
    a_root = np.real(linalg.sqrtm(SEED_A))
    expected = a_root @ np.real(linalg.fractional_matrix_power(omega, d)) @ a_root.T / nu
    np.testing.assert_allclose(np.asarray(wishart_sv_scale(SEED_A, omega, d, nu)), expected, rtol=1e-10)
    chol = np.linalg.cholesky(SEED_A)
    expected_chol = chol @ np.real(linalg.fractional_matrix_power(omega, d)) @ chol.T / nu
    np.testing.assert_allclose(np.asarray(wishart_sv_scale(SEED_A, omega, d, nu, root="cholesky")), expected_chol)
    # E[Omega_t | Omega_{t-1}] = nu S = A^{1/2} Omega^d A^{1/2}: d = 0 gives A, and A = I, d = 1 a random walk.
    np.testing.assert_allclose(np.asarray(wishart_sv_scale(SEED_A, omega, 0.0, nu)) * nu, SEED_A, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(wishart_sv_scale(np.eye(3), omega, 1.0, nu)) * nu, omega, rtol=1e-12)
    with pytest.raises(ValueError, match="root must be"):
        wishart_sv_scale(SEED_A, omega, d, nu, root="eigen")


def test_symmetric_root_makes_the_scale_equivariant_to_asset_order():
    rng = np.random.default_rng(6)
    omega = random_spd(rng, 3)
    permutation = np.eye(3)[[2, 0, 1]]
    scale = np.asarray(wishart_sv_scale(SEED_A, omega, 0.6, 9.0))
    permuted = np.asarray(
        wishart_sv_scale(permutation @ SEED_A @ permutation.T, permutation @ omega @ permutation.T, 0.6, 9.0)
    )
    np.testing.assert_allclose(permuted, permutation @ scale @ permutation.T, rtol=1e-11)
    # The Cholesky root does not have this property.
    scale_chol = np.asarray(wishart_sv_scale(SEED_A, omega, 0.6, 9.0, root="cholesky"))
    permuted_chol = np.asarray(
        wishart_sv_scale(
            permutation @ SEED_A @ permutation.T, permutation @ omega @ permutation.T, 0.6, 9.0, root="cholesky"
        )
    )
    assert not np.allclose(permuted_chol, permutation @ scale_chol @ permutation.T, rtol=1e-6)


def test_wishart_sv_scale_batches_and_differentiates():
    rng = np.random.default_rng(8)
    omegas = np.stack([random_spd(rng, 3) for _ in range(4)])
    scales = np.asarray(wishart_sv_scale(SEED_A, omegas, 0.5, 14.0))
    assert scales.shape == (4, 3, 3)
    assert np.all(np.linalg.eigvalsh(scales) > 0)
    np.testing.assert_allclose(scales[2], np.asarray(wishart_sv_scale(SEED_A, omegas[2], 0.5, 14.0)), rtol=1e-13)

    def log_density_of_next(a, d, nu):
        scale = wishart_sv_scale(a, jnp.eye(3) * 30.0, d, nu)
        return dist.Wishart(nu, scale_matrix=scale).log_prob(jnp.eye(3) * 25.0)

    gradients = jax.grad(log_density_of_next, argnums=(0, 1, 2))(jnp.asarray(SEED_A), 0.5, 14.0)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in gradients)
    # At Omega = I the d-derivative involves log(1) = 0 on a repeated spectrum: must still be finite.
    d_gradient = jax.grad(lambda d: jnp.sum(wishart_sv_scale(SEED_A, jnp.eye(3), d, 14.0)))(0.5)
    assert np.isfinite(float(d_gradient))


# ---------------------------------------------------------------- the Wishart kernel integral (EIS)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_kernel_with_normal_observation_gives_multivariate_t(k):
    # Omega ~ W(nu, S), y | Omega ~ N(0, Omega^-1)  =>  y ~ t_{nu-k+1}(0, S^-1 / (nu-k+1)).
    rng = np.random.default_rng(10 + k)
    scale, nu = random_spd(rng, k), k + 1.7
    for y in rng.normal(size=(4, k)) * 2.0:
        log_marginal = -0.5 * k * np.log(2 * np.pi) + float(wishart_kernel_log_integral(nu, scale, 1.0, np.outer(y, y)))
        reference = stats.multivariate_t(np.zeros(k), np.linalg.inv(scale) / (nu - k + 1), df=nu - k + 1).logpdf(y)
        assert log_marginal == pytest.approx(reference, abs=1e-10)


@pytest.mark.parametrize("c1, c2", [(0.0, 0.0), (1.0, 0.3), (-1.5, 2.0), (3.2, -0.9), (0.4, 7.0)])
def test_kernel_integral_in_one_dimension_by_quadrature(c1, c2):
    # W_1(nu, s) is a gamma law with shape nu/2 and scale 2 s.
    nu, s = 4.3, 0.8
    log_density = stats.gamma(nu / 2, scale=2 * s).logpdf
    # In logs: with C2 < 0 the kernel alone overflows where the gamma density underflows.
    integral, _ = integrate.quad(
        lambda w: np.exp(log_density(w) + 0.5 * c1 * np.log(w) - 0.5 * c2 * w), 0, np.inf, epsabs=0, epsrel=1e-12
    )
    actual = float(wishart_kernel_log_integral(nu, np.array([[s]]), c1, np.array([[c2]])))
    assert actual == pytest.approx(np.log(integral), abs=1e-9)


def test_kernel_integral_by_monte_carlo_with_indefinite_c2():
    rng = np.random.default_rng(20)
    k, nu = 3, 9.0
    scale = random_spd(rng, k)
    c1 = 1.7
    # C2 indefinite, with S^-1 + 2 C2 still positive definite so the estimator has a finite variance.
    c2 = np.diag([0.6, -0.15, 0.2]) + 0.05
    assert np.all(np.linalg.eigvalsh(np.linalg.inv(scale) + 2 * c2) > 0)
    omegas = stats.wishart(df=nu, scale=scale).rvs(size=400_000, random_state=rng)
    kernel = np.exp(0.5 * c1 * np.linalg.slogdet(omegas)[1] - 0.5 * np.einsum("ij,nji->n", c2, omegas))
    estimate = np.log(kernel.mean())
    standard_error = kernel.std(ddof=1) / kernel.mean() / np.sqrt(kernel.size)  # delta method for the log
    assert abs(float(wishart_kernel_log_integral(nu, scale, c1, c2)) - estimate) < 4.5 * standard_error


def test_kernel_product_is_the_normalised_product():
    rng = np.random.default_rng(30)
    k, nu, c1 = 3, 7.0, 2.5
    scale = random_spd(rng, k)
    y = rng.normal(size=k)
    c2 = np.outer(y, y) + np.diag([0.3, -0.1, 0.2])
    product = wishart_kernel_product(nu, scale, c1, c2)
    assert float(product.concentration) == nu + c1
    np.testing.assert_allclose(
        np.asarray(product.scale_matrix), np.linalg.inv(np.linalg.inv(scale) + c2), rtol=1e-11, atol=1e-13
    )
    log_chi = float(wishart_kernel_log_integral(nu, scale, c1, c2))
    for omega in stats.wishart(df=nu, scale=scale).rvs(size=5, random_state=rng):
        unnormalised = (
            stats.wishart(df=nu, scale=scale).logpdf(omega)
            + 0.5 * c1 * np.linalg.slogdet(omega)[1]
            - 0.5 * np.trace(c2 @ omega)
        )
        assert float(product.log_prob(omega)) == pytest.approx(unnormalised - log_chi, abs=1e-10)


def test_kernel_integral_divergence_batches_and_gradients():
    scale = np.eye(2)
    diverging = [
        (3.0, -3.0, np.zeros((2, 2))),  # nu + c1 = 0 <= k - 1
        (3.0, 1.0, -2.0 * np.eye(2)),  # S^-1 + C2 = -I
        (3.0, 1.0, np.diag([0.5, -1.0])),  # S^-1 + C2 singular
    ]
    gradient_in_all_arguments = jax.grad(wishart_kernel_log_integral, argnums=(0, 1, 2, 3))
    for nu, c1, c2 in diverging:
        assert float(wishart_kernel_log_integral(nu, scale, c1, c2)) == np.inf
        gradients = gradient_in_all_arguments(nu, jnp.asarray(scale), c1, jnp.asarray(c2))
        assert all(np.all(np.isfinite(np.asarray(g))) for g in gradients)
    c2_batch = np.stack([np.eye(2) * t for t in (0.0, 0.5, 2.0)])
    batched = np.asarray(wishart_kernel_log_integral(np.array([3.0, 4.0, 5.0]), scale, 1.0, c2_batch))
    singles = [
        float(wishart_kernel_log_integral(nu, scale, 1.0, c2)) for nu, c2 in zip([3.0, 4.0, 5.0], c2_batch, strict=True)
    ]
    np.testing.assert_allclose(batched, singles, rtol=1e-13)

    def log_chi(params):
        nu, c1, c2_scale = params
        return wishart_kernel_log_integral(nu, jnp.asarray(SEED_A), c1, c2_scale * jnp.eye(3))

    point = jnp.array([14.0, 1.3, 25.0])
    gradient = np.asarray(jax.grad(log_chi)(point))
    for index in range(3):
        step = np.zeros(3)
        step[index] = 1e-5 * float(point[index])
        finite_difference = (float(log_chi(point + step)) - float(log_chi(point - step))) / (2 * step[index])
        assert gradient[index] == pytest.approx(finite_difference, rel=1e-6)
