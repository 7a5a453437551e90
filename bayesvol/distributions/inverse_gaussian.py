r"""Inverse Gaussian law, the shock of the IG-GARCH model of Christoffersen, Heston and Jacobs (2006)."""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax, random
from jax.scipy.special import log_ndtr, ndtr
from numpyro.distributions import constraints
from numpyro.distributions.util import promote_shapes, validate_sample

from bayesvol.distributions._common import DescriptiveValidation

__all__ = ["InverseGaussian"]


class InverseGaussian(DescriptiveValidation):
    r"""Inverse Gaussian (Wald) law with mean $\mu$ and shape $\lambda$.

    Parameters
    ----------
    mean : array_like
        Mean $\mu > 0$.
    concentration : array_like
        Shape $\lambda > 0$; larger values concentrate the law around its mean.
    validate_args : bool, optional
        Check that both parameters are positive on construction (raises `ValueError`).

    Notes
    -----
    The density on $y > 0$ is

    $$
    f(y;\mu,\lambda) = \sqrt{\frac{\lambda}{2\pi y^3}}
    \exp\left\{-\frac{\lambda (y-\mu)^2}{2\mu^2 y}\right\},
    $$

    with $E[y] = \mu$, $\operatorname{Var}[y] = \mu^3/\lambda$,
    $E[1/y] = 1/\mu + 1/\lambda$ and distribution function

    $$
    F(y) = \Phi\left(\sqrt{\lambda/y}\,(y/\mu - 1)\right)
    + e^{2\lambda/\mu}\,\Phi\left(-\sqrt{\lambda/y}\,(y/\mu + 1)\right),
    $$

    whose second term is evaluated on the log scale so that it neither overflows nor loses digits when
    $\lambda/\mu$ is large. The log density is $-\infty$ for $y \le 0$ and at
    $y = \infty$, with zero (not NaN) gradients there.

    ``scipy.stats.invgauss(mu, scale=s)`` has mean ``mu * s`` and shape ``s``, so this law is
    ``invgauss(mean / concentration, scale=concentration)``.

    The one-parameter law $IG(\delta)$ of Christoffersen, Heston and Jacobs (2006), with density
    $\delta (2\pi y^3)^{-1/2} \exp\{-(\sqrt{y} - \delta/\sqrt{y})^2/2\}$, is the case
    $\mu = \delta$, $\lambda = \delta^2$ ([`standard`][bayesvol.distributions.InverseGaussian.standard]); then
    $E[1/y] = 1/\delta + 1/\delta^2$.

    Draws use the transformation of Michael, Schucany and Haas (1976): with $w = \chi^2_1$ and
    $\phi = \mu w / (2\lambda)$, the smaller root $x = \mu / (1 + \phi + \sqrt{\phi^2 + 2\phi})$
    (the usual formula rearranged to avoid cancellation) is kept with probability $\mu/(\mu + x)$,
    otherwise $\mu^2/x$. The choice between roots is discrete, so draws are not reparametrised.

    References
    ----------
    Christoffersen, P., Heston, S. and Jacobs, K. (2006). Option valuation with conditional skewness.
    *Journal of Econometrics*, 131, 253-284.

    Michael, J. R., Schucany, W. R. and Haas, R. W. (1976). Generating random variates using
    transformations with multiple roots. *The American Statistician*, 30(2), 88-90.

    Examples
    --------
    >>> import jax
    >>> from bayesvol.distributions import InverseGaussian
    >>> law = InverseGaussian.standard(2.0)
    >>> float(law.mean), float(law.concentration)
    (2.0, 4.0)
    >>> float(law.reciprocal_mean())
    0.75
    >>> law.sample(jax.random.key(0), (3,)).shape
    (3,)
    >>> float(InverseGaussian(2.0, 4.0, validate_args=False).log_prob(-1.0))  # outside the support
    -inf
    """

    arg_constraints = {"mean": constraints.positive, "concentration": constraints.positive}
    support = constraints.positive
    reparametrized_params = []
    pytree_data_fields = ("_mean", "concentration")
    _requirements = {"mean": "mean > 0", "concentration": "concentration > 0"}

    def __init__(self, mean, concentration, *, validate_args=None):
        mean, concentration = jnp.asarray(mean, dtype=float), jnp.asarray(concentration, dtype=float)
        batch_shape = lax.broadcast_shapes(jnp.shape(mean), jnp.shape(concentration))
        # The mean is stored privately because Distribution.mean is a read-only property.
        self._mean, self.concentration = promote_shapes(mean, concentration, shape=batch_shape)
        super().__init__(batch_shape, validate_args=validate_args)

    @classmethod
    def standard(cls, delta, *, validate_args=None):
        r"""The one-parameter $IG(\delta)$ of Christoffersen, Heston and Jacobs: mean $\delta$,
        shape $\delta^2$.

        Parameters
        ----------
        delta : array_like
            $\delta > 0$.
        validate_args : bool, optional
            As for the class.

        Returns
        -------
        InverseGaussian
        """
        delta = jnp.asarray(delta, dtype=float)
        return cls(delta, delta**2, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        key_normal, key_uniform = random.split(key)
        shape = sample_shape + self.batch_shape
        mu, shape_param = self._mean, self.concentration
        w = random.normal(key_normal, shape) ** 2
        phi = mu * w / (2.0 * shape_param)
        smaller_root = mu / (1.0 + phi + jnp.sqrt(phi * (phi + 2.0)))
        keep_smaller = random.uniform(key_uniform, shape) * (mu + smaller_root) <= mu
        return jnp.where(keep_smaller, smaller_root, mu**2 / smaller_root)

    @validate_sample
    def log_prob(self, value):
        mu, shape_param = self._mean, self.concentration
        value = jnp.asarray(value, dtype=float)
        inside = (value > 0.0) & (value < jnp.inf)
        # Evaluate the formula at a harmless point outside the support, so neither the value nor its
        # gradient can become NaN there; the where below then discards it.
        y = jnp.where(inside, value, 1.0)
        log_density = 0.5 * (jnp.log(shape_param) - jnp.log(2.0 * jnp.pi) - 3.0 * jnp.log(y)) - shape_param * (
            y - mu
        ) ** 2 / (2.0 * mu**2 * y)
        return jnp.where(inside, log_density, -jnp.inf)

    def cdf(self, value):
        """Distribution function $P(y \\le value)$; 0 for ``value <= 0``."""
        mu, shape_param = self._mean, self.concentration
        value = jnp.asarray(value, dtype=float)
        positive = value > 0.0
        finite_positive = positive & (value < jnp.inf)
        y = jnp.where(finite_positive, value, 1.0)
        root = jnp.sqrt(shape_param / y)
        # exp(2 lambda / mu) Phi(-r) computed as exp(2 lambda / mu + log Phi(-r)): the exponent stays moderate.
        second = jnp.exp(2.0 * shape_param / mu + log_ndtr(-root * (y / mu + 1.0)))
        probability = ndtr(root * (y / mu - 1.0)) + second
        probability = jnp.where(finite_positive, jnp.minimum(probability, 1.0), 1.0)
        return jnp.where(positive, probability, 0.0)

    @property
    def mean(self):
        return jnp.broadcast_to(self._mean, self.batch_shape)

    @property
    def variance(self):
        return jnp.broadcast_to(self._mean**3 / self.concentration, self.batch_shape)

    def reciprocal_mean(self):
        r"""$E[1/y] = 1/\mu + 1/\lambda$ ($1/\delta + 1/\delta^2$ for
[`standard`][bayesvol.distributions.InverseGaussian.standard])."""
        return jnp.broadcast_to(1.0 / self._mean + 1.0 / self.concentration, self.batch_shape)
