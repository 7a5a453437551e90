r"""Standardised Student t innovation laws (mean 0, variance 1) for GARCH-type models.

* [`StandardizedStudentT`][bayesvol.distributions.StandardizedStudentT] — the symmetric Student t rescaled to unit
variance.
* [`SkewedStudentT`][bayesvol.distributions.SkewedStudentT] — Hansen's (1994) skewed t, the law of
``arch.univariate.SkewStudent``.
* [`second_moment_below_zero`][bayesvol.distributions.second_moment_below_zero] — $E[z^2 1\{z<0\}]$ for any supported
innovation law, the
  quantity that enters the persistence $\alpha + \beta + \gamma E[z^2 1\{z<0\}]$ of a GJR-GARCH model.

Both laws are NumPyro distributions: they broadcast over batch shapes, work under ``jit``, ``vmap`` and
``grad`` and can be used as likelihoods in NUTS or SVI. Their distribution functions, quantiles and the
lower second moment are differentiable in ``df`` as well (see ``bayesvol/distributions/_student_t.py``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax, random
from jax.scipy.special import gammaln, ndtr
from numpyro.distributions import Normal, constraints
from numpyro.distributions.util import promote_shapes, validate_sample

from bayesvol.distributions._common import DescriptiveValidation
from bayesvol.distributions._student_t import (
    student_t_cdf,
    student_t_quantile,
    student_t_upper_quantile,
)

__all__ = ["SkewedStudentT", "StandardizedStudentT", "second_moment_below_zero"]


def _log_unit_t_normaliser(df):
    r"""Log of $c = \Gamma(\frac{\nu+1}{2}) / (\sqrt{\pi(\nu-2)}\,\Gamma(\frac{\nu}{2}))$."""
    return gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * jnp.log(jnp.pi * (df - 2.0))


def _unit_t_scale(df):
    """Scale that turns a standard t variate into a unit-variance one."""
    return jnp.sqrt((df - 2.0) / df)


def _unit_t_abs_moments(df):
    """E|X|, E|X|^3 and E X^4 for the unit-variance t (inf/nan where they do not exist)."""
    # c (df - 2) written with sqrt(df - 2) so that it stays finite as df -> 2.
    c_times_kappa = jnp.exp(gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df)) * jnp.sqrt(df - 2.0) / jnp.sqrt(jnp.pi)
    first = 2.0 * c_times_kappa / (df - 1.0)
    safe_df3 = jnp.where(df > 3.0, df, 5.0)
    safe_c_kappa3 = jnp.where(df > 3.0, c_times_kappa, 1.0)
    third = 4.0 * safe_c_kappa3 * (safe_df3 - 2.0) / ((safe_df3 - 1.0) * (safe_df3 - 3.0))
    third = jnp.where(df > 3.0, third, jnp.inf)
    safe_df4 = jnp.where(df > 4.0, df, 6.0)
    fourth = jnp.where(df > 4.0, 3.0 * (safe_df4 - 2.0) / (safe_df4 - 4.0), jnp.inf)
    return first, third, fourth


def _hansen_constants(df, skew):
    r"""Hansen's $a$, $b$ and $\log c$.

    $a = 4\lambda c (\nu-2)/(\nu-1) = 2 \lambda E|X|$ is the mean of the two-piece variate
    $u = b z + a$ and $b^2 = 1 + 3\lambda^2 - a^2$ its variance.
    """
    log_c = _log_unit_t_normaliser(df)
    first_abs_moment, _, _ = _unit_t_abs_moments(df)
    a = 2.0 * skew * first_abs_moment
    b = jnp.sqrt(1.0 + 3.0 * skew**2 - a**2)
    return a, b, log_c


def _unit_t_partial_moments(df, upper, log_c):
    r"""Partial moments $\int_{-\infty}^{y} x^k g(x)\,dx$, k = 0, 1, 2, of the unit-variance t density g.

    k = 1 has an elementary antiderivative $P_1$; integrating $x \cdot x g(x)$ by parts leaves
    $\int P_1$, a multiple of the standard t distribution function with $\nu-2$ degrees of
    freedom, and the multiple is exactly 1: $P_2(y) = y P_1(y) + T_{\nu-2}(y)$. Both terms are
    positive for $y \le 0$, so no digits cancel where the lower moment is taken.
    """
    kappa = df - 2.0
    zeroth = student_t_cdf(df, upper / _unit_t_scale(df))
    first = -jnp.exp(log_c) * kappa / (df - 1.0) * jnp.exp(-0.5 * (df - 1.0) * jnp.log1p(upper**2 / kappa))
    second = upper * first + student_t_cdf(kappa, upper)
    return zeroth, first, second


class StandardizedStudentT(DescriptiveValidation):
    r"""Student t law rescaled to mean 0 and variance 1.

    Parameters
    ----------
    df : array_like
        Degrees of freedom $\nu > 2$.
    validate_args : bool, optional
        Check that ``df > 2`` on construction (raises `ValueError`).

    Notes
    -----
    With $\nu > 2$ the density is

    $$
    f(z;\nu) = \frac{\Gamma(\frac{\nu+1}{2})}{\sqrt{\pi(\nu-2)}\,\Gamma(\frac{\nu}{2})}
    \left(1 + \frac{z^2}{\nu-2}\right)^{-(\nu+1)/2},
    $$

    i.e. $z = \sqrt{(\nu-2)/\nu}\, T$ with $T$ a standard t variate (``scipy.stats.t(df,
    scale=sqrt((df-2)/df))``, ``arch.univariate.StudentsT``). Samples use $z = N\sqrt{(\nu-2)/V}$
    with $N$ standard normal and $V \sim \chi^2_\nu$, which is reparametrised in ``df``.
    Kurtosis $3(\nu-2)/(\nu-4)$ for $\nu > 4$, infinite otherwise; by symmetry
    $E[z^2 1\{z<0\}] = 1/2$.

    Examples
    --------
    >>> import jax
    >>> from bayesvol.distributions import StandardizedStudentT
    >>> law = StandardizedStudentT(5.0)
    >>> draws = law.sample(jax.random.key(0), (4,))
    >>> draws.shape
    (4,)
    >>> round(float(law.cdf(0.0)), 6)
    0.5
    >>> round(float(law.kurtosis()), 6)
    9.0
    """

    arg_constraints = {"df": constraints.greater_than(2.0)}
    support = constraints.real
    reparametrized_params = ["df"]
    pytree_data_fields = ("df",)
    _requirements = {"df": "df > 2 (a finite variance)"}

    def __init__(self, df, *, validate_args=None):
        self.df = jnp.asarray(df, dtype=float)
        super().__init__(jnp.shape(self.df), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        key_normal, key_chi2 = random.split(key)
        shape = sample_shape + self.batch_shape
        normal = random.normal(key_normal, shape)
        chi2 = random.chisquare(key_chi2, self.df, shape)
        return normal * jnp.sqrt((self.df - 2.0) / chi2)

    @validate_sample
    def log_prob(self, value):
        df = self.df
        return _log_unit_t_normaliser(df) - 0.5 * (df + 1.0) * jnp.log1p(value**2 / (df - 2.0))

    def cdf(self, value):
        """Distribution function $P(z \\le value)$."""
        return student_t_cdf(self.df, value / _unit_t_scale(self.df))

    def icdf(self, q):
        """Quantile function; ``nan`` outside ``[0, 1]``."""
        return _unit_t_scale(self.df) * student_t_quantile(self.df, q)

    @property
    def mean(self):
        return jnp.zeros(self.batch_shape)

    @property
    def variance(self):
        return jnp.ones(self.batch_shape)

    def skewness(self):
        """Skewness: 0 for ``df > 3``, ``nan`` (undefined) otherwise."""
        return jnp.where(self.df > 3.0, 0.0, jnp.nan)

    def kurtosis(self, excess: bool = False):
        """Kurtosis $E[z^4] = 3(\\nu-2)/(\\nu-4)$ for ``df > 4``, ``inf`` otherwise.

        Parameters
        ----------
        excess : bool
            Subtract 3 (the normal kurtosis).
        """
        _, _, fourth = _unit_t_abs_moments(self.df)
        return fourth - 3.0 if excess else fourth

    def second_moment_below_zero(self):
        r"""$E[z^2 1\{z<0\}] = 1/2$ (symmetry and unit variance)."""
        return jnp.full(self.batch_shape, 0.5)


class SkewedStudentT(DescriptiveValidation):
    r"""Hansen's (1994) skewed Student t, standardised to mean 0 and variance 1.

    Parameters
    ----------
    df : array_like
        Degrees of freedom $\nu > 2$ (tail thickness), ``eta`` in ``arch``.
    skew : array_like
        Skewness parameter $-1 < \lambda < 1$, ``lambda`` in ``arch``; ``0`` gives
        [`StandardizedStudentT`][bayesvol.distributions.StandardizedStudentT], positive values a longer right tail.
    validate_args : bool, optional
        Check ``df > 2`` and ``|skew| < 1`` on construction (raises `ValueError`).

    Notes
    -----
    With $c = \Gamma(\frac{\nu+1}{2}) / (\sqrt{\pi(\nu-2)}\,\Gamma(\frac{\nu}{2}))$,
    $a = 4\lambda c\,\frac{\nu-2}{\nu-1}$ and $b^2 = 1 + 3\lambda^2 - a^2$, the density is

    $$
    f(z;\nu,\lambda) = b c \left(1 + \frac{1}{\nu-2}
    \left(\frac{b z + a}{1 + \operatorname{sgn}(z + a/b)\,\lambda}\right)^2\right)^{-(\nu+1)/2}.
    $$

    It is the same law as ``arch.univariate.SkewStudent`` with parameters ``(eta, lambda) = (df, skew)``.
    Writing $u = b z + a$ and $G$ for the unit-variance t distribution function,
    $u/(1-\lambda)$ below zero and $u/(1+\lambda)$ above zero follow the unit-variance t
    density, with masses $(1-\lambda)/2$ and $(1+\lambda)/2$. Hence

    $$
    F(z) = \begin{cases} (1-\lambda)\, G\!\left(\frac{u}{1-\lambda}\right) & u < 0 \\
    1 - (1+\lambda)\, G\!\left(-\frac{u}{1+\lambda}\right) & u \ge 0, \end{cases}
    $$

    the quantile function inverts each piece, and a draw is $z = (u - a)/b$ with
    $u = -(1-\lambda)|X|$ with probability $(1-\lambda)/2$ and $u = (1+\lambda)|X|$
    otherwise, $X$ a unit-variance t variate. The draw is reparametrised in ``df``; the side is a
    discrete choice, so it is not in ``skew``.

    With $m_k = E|X|^k$ ($m_1 = 2c(\nu-2)/(\nu-1)$,
    $m_3 = 4c(\nu-2)^2/((\nu-1)(\nu-3))$, $m_4 = 3(\nu-2)/(\nu-4)$) the raw moments of
    $u$ are $E u = a$, $E u^2 = 1 + 3\lambda^2$,
    $E u^3 = 4\lambda(1+\lambda^2) m_3$ and $E u^4 = (1 + 10\lambda^2 + 5\lambda^4) m_4$;
    skewness and kurtosis are the third and fourth central moments of $u$ over $b^3$ and
    $b^4$. Skewness exists for $\nu > 3$ (``nan`` otherwise), kurtosis for $\nu > 4$
    (``inf`` otherwise).

    $E[z^2 1\{z<0\}]$ integrates $(u-a)^2/b^2$ over $u < a$ piece by piece with the
    partial moments of the unit-variance t: $P_1(y) = \int_{-\infty}^{y} x g = -c\frac{\nu-2}{\nu-1}
    (1 + \frac{y^2}{\nu-2})^{-(\nu-1)/2}$ and $\int_{-\infty}^{y} x^2 g = y P_1(y) + T_{\nu-2}(y)$
    (by parts), $T_{\nu-2}$ the standard t distribution function with $\nu-2$ degrees of
    freedom.

    References
    ----------
    Hansen, B. E. (1994). Autoregressive conditional density estimation. *International Economic
    Review*, 35(3), 705-730.

    Examples
    --------
    >>> import jax
    >>> from bayesvol.distributions import SkewedStudentT
    >>> law = SkewedStudentT(df=8.0, skew=-0.2)
    >>> law.batch_shape
    ()
    >>> z = law.sample(jax.random.key(1), (1000,))
    >>> z.shape
    (1000,)
    >>> bool(law.log_prob(0.3) < 0)
    True
    >>> round(float(law.icdf(law.cdf(-1.5))), 8)
    -1.5
    >>> bool(law.second_moment_below_zero() > 0.5)  # left-skewed: more variance below zero
    True
    """

    arg_constraints = {"df": constraints.greater_than(2.0), "skew": constraints.open_interval(-1.0, 1.0)}
    support = constraints.real
    reparametrized_params = ["df"]
    pytree_data_fields = ("df", "skew")
    _requirements = {"df": "df > 2 (a finite variance)", "skew": "-1 < skew < 1"}

    def __init__(self, df, skew=0.0, *, validate_args=None):
        df, skew = jnp.asarray(df, dtype=float), jnp.asarray(skew, dtype=float)
        batch_shape = lax.broadcast_shapes(jnp.shape(df), jnp.shape(skew))
        self.df, self.skew = promote_shapes(df, skew, shape=batch_shape)
        super().__init__(batch_shape, validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        key_side, key_normal, key_chi2 = random.split(key, 3)
        shape = sample_shape + self.batch_shape
        df, skew = self.df, self.skew
        unit_t_magnitude = jnp.abs(random.normal(key_normal, shape)) * jnp.sqrt(
            (df - 2.0) / random.chisquare(key_chi2, df, shape)
        )
        below = random.uniform(key_side, shape) < 0.5 * (1.0 - skew)
        u = jnp.where(below, -(1.0 - skew) * unit_t_magnitude, (1.0 + skew) * unit_t_magnitude)
        a, b, _ = _hansen_constants(df, skew)
        return (u - a) / b

    @validate_sample
    def log_prob(self, value):
        df, skew = self.df, self.skew
        a, b, log_c = _hansen_constants(df, skew)
        u = b * value + a
        piece_scale = jnp.where(u < 0.0, 1.0 - skew, 1.0 + skew)
        return jnp.log(b) + log_c - 0.5 * (df + 1.0) * jnp.log1p((u / piece_scale) ** 2 / (df - 2.0))

    def cdf(self, value):
        """Distribution function $P(z \\le value)$."""
        df, skew = self.df, self.skew
        a, b, _ = _hansen_constants(df, skew)
        u = b * value + a
        scale = _unit_t_scale(df)
        below = (1.0 - skew) * student_t_cdf(df, u / ((1.0 - skew) * scale))
        # 1 - (1+skew) G(-u/(1+skew)) keeps relative precision in the upper tail piece's own terms.
        above = 1.0 - (1.0 + skew) * student_t_cdf(df, -u / ((1.0 + skew) * scale))
        return jnp.where(u < 0.0, below, above)

    def icdf(self, q):
        """Quantile function; ``nan`` outside ``[0, 1]``."""
        df, skew = self.df, self.skew
        q = jnp.asarray(q, dtype=float)
        valid = (q >= 0.0) & (q <= 1.0)
        q_safe = jnp.where(valid, q, 0.5)
        below = q_safe < 0.5 * (1.0 - skew)
        # Tail probability of the unit-variance t inside the chosen piece; at most 1/2 by construction.
        tail = jnp.where(below, q_safe / (1.0 - skew), (1.0 - q_safe) / (1.0 + skew))
        magnitude = student_t_upper_quantile(df, jnp.clip(tail, 0.0, 0.5)) * _unit_t_scale(df)
        u = jnp.where(below, -(1.0 - skew) * magnitude, (1.0 + skew) * magnitude)
        a, b, _ = _hansen_constants(df, skew)
        return jnp.where(valid, (u - a) / b, jnp.nan)

    @property
    def mean(self):
        return jnp.zeros(self.batch_shape)

    @property
    def variance(self):
        return jnp.ones(self.batch_shape)

    def _central_moments_of_u(self):
        df, skew = self.df, self.skew
        a, b, _ = _hansen_constants(df, skew)
        _, third_abs, fourth_abs = _unit_t_abs_moments(df)
        raw2 = 1.0 + 3.0 * skew**2
        raw3 = 4.0 * skew * (1.0 + skew**2) * third_abs
        raw4 = (1.0 + 10.0 * skew**2 + 5.0 * skew**4) * fourth_abs
        central3 = raw3 - 3.0 * a * raw2 + 2.0 * a**3
        central4 = raw4 - 4.0 * a * raw3 + 6.0 * a**2 * raw2 - 3.0 * a**4
        return b, central3, central4

    def skewness(self):
        """Skewness $E[z^3]$ for ``df > 3``; ``nan`` where the third moment does not exist."""
        b, central3, _ = self._central_moments_of_u()
        return jnp.where(self.df > 3.0, central3 / b**3, jnp.nan)

    def kurtosis(self, excess: bool = False):
        """Kurtosis $E[z^4]$ for ``df > 4``; ``inf`` otherwise.

        Parameters
        ----------
        excess : bool
            Subtract 3 (the normal kurtosis).
        """
        b, _, central4 = self._central_moments_of_u()
        kurtosis = jnp.where(self.df > 4.0, central4 / b**4, jnp.inf)
        return kurtosis - 3.0 if excess else kurtosis

    def second_moment_below_zero(self):
        r"""$E[z^2 1\{z<0\}]$ in closed form (see Notes); ``1/2`` when ``skew = 0``."""
        df, skew = self.df, self.skew
        a, b, log_c = _hansen_constants(df, skew)
        scale_below, scale_above = 1.0 - skew, 1.0 + skew
        # z < 0 means u < a: all of the lower piece up to min(a, 0), plus [0, a) of the upper piece if a > 0.
        # Both limits go through one stacked call, which halves the compiled code under jit and grad.
        limits = jnp.stack([jnp.minimum(a, 0.0) / scale_below, jnp.maximum(a, 0.0) / scale_above])
        (p0, q0), (p1, q1), (p2, q2) = _unit_t_partial_moments(df, limits, log_c)
        # At 0 the partial moments are known: 1/2, -E|X|/2 and 1/2.
        r0, r2 = 0.5, 0.5
        r1 = -0.5 * _unit_t_abs_moments(df)[0]
        below = scale_below * (scale_below**2 * p2 - 2.0 * a * scale_below * p1 + a**2 * p0)
        above = scale_above * (scale_above**2 * (q2 - r2) - 2.0 * a * scale_above * (q1 - r1) + a**2 * (q0 - r0))
        return (below + above) / b**2


def second_moment_below_zero(distribution):
    r"""$E[z^2 1\{z<0\}]$ for an innovation law, as needed by the GJR-GARCH persistence.

    Parameters
    ----------
    distribution : numpyro.distributions.Distribution
        A `numpyro.distributions.Normal` (any location and scale), a
        [`StandardizedStudentT`][bayesvol.distributions.StandardizedStudentT], a
        [`SkewedStudentT`][bayesvol.distributions.SkewedStudentT], or any object with a ``second_moment_below_zero()``
        method.

    Returns
    -------
    jax.Array
        One value per batch element of ``distribution``.

    Raises
    ------
    TypeError
        For a law without a closed form here.

    Notes
    -----
    For $N(\mu, \sigma^2)$: $(\mu^2 + \sigma^2)\,\Phi(-\mu/\sigma) - \mu\sigma\,\phi(\mu/\sigma)$,
    which is $1/2$ for the standard normal. The t laws are documented on their classes.

    Examples
    --------
    >>> import numpyro.distributions as dist
    >>> from bayesvol.distributions import second_moment_below_zero
    >>> float(second_moment_below_zero(dist.Normal(0.0, 1.0)))
    0.5
    """
    if isinstance(distribution, Normal):
        mu, sigma = distribution.loc, distribution.scale
        standardised = mu / sigma
        density = jnp.exp(-0.5 * standardised**2) / jnp.sqrt(2.0 * jnp.pi)
        value = (mu**2 + sigma**2) * ndtr(-standardised) - mu * sigma * density
        return jnp.broadcast_to(value, distribution.batch_shape)
    method = getattr(distribution, "second_moment_below_zero", None)
    if callable(method):
        return method()
    raise TypeError(
        f"no closed form for E[z^2 1{{z<0}}] under {type(distribution).__name__}; supported laws are "
        "numpyro.distributions.Normal, StandardizedStudentT and SkewedStudentT"
    )
