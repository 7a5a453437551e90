r"""Student t building blocks: distribution function, quantile and partial moments, differentiable in ``df``.

JAX's regularised incomplete beta function $I_w(a, b)$ has no derivative in $a$, yet the GJR
persistence of a skewed-t GARCH model depends on the t distribution function through ``df`` and is
differentiated by NUTS and by the MLE optimiser. The distribution function here therefore carries its own
JVP: the derivative in ``x`` is the density, the derivative in ``df`` a central difference of the
incomplete beta in its first argument with a relative step of ``2e-5`` (truncation error of order
``1e-10`` relative, far below what any sampler or optimiser notices). Quantiles are found by Newton's
method on the log tail probability and differentiated by the implicit-function theorem, so no derivative
flows through the iterations. The inner functions are jitted so that eager calls reuse compiled code
instead of re-tracing the Newton loop each time.

Everything here refers to the *standard* t law with density
$\Gamma(\frac{\nu+1}{2}) / (\sqrt{\nu\pi}\,\Gamma(\frac{\nu}{2})) (1 + x^2/\nu)^{-(\nu+1)/2}$.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import betainc, betaln, gammaln, ndtri

_RELATIVE_DF_STEP = 2e-5
_NEWTON_ITERATIONS = 12
# Largest Newton move in log x per iteration: a bad start cannot throw an iterate to 0 or infinity.
_MAX_LOG_STEP = 2.0


@jax.jit
def student_t_log_pdf(df, x):
    """Log density of the standard Student t law with ``df`` degrees of freedom."""
    return (
        gammaln(0.5 * (df + 1.0))
        - gammaln(0.5 * df)
        - 0.5 * jnp.log(jnp.pi * df)
        - 0.5 * (df + 1.0) * jnp.log1p(x * x / df)
    )


@jax.jit
def _cdf_value(df, x):
    x_squared = x * x
    # For |x| > 1 the tail mass is I_w(df/2, 1/2) / 2 with w = df / (df + x^2), accurate in relative terms
    # however far out. Near 0, w is within rounding of 1 and 1 - w loses the digits of x^2, so there use the
    # central mass P(|T| < |x|) = I_v(1/2, df/2) with v = x^2 / (df + x^2); the tail beyond |x| <= 1 is at
    # least P(|T| > 1) / 2 > 0.15 for any df, so subtracting the central mass from 1/2 costs no precision.
    # One incomplete-beta call serves both regions (its arguments are swapped), halving the compiled code.
    outer = x_squared > 1.0
    half_df = 0.5 * df
    incomplete_beta = betainc(
        jnp.where(outer, half_df, 0.5),
        jnp.where(outer, 0.5, half_df),
        jnp.where(outer, df, x_squared) / (df + x_squared),
    )
    tail_beyond_abs_x = jnp.where(outer, 0.5 * incomplete_beta, 0.5 - 0.5 * incomplete_beta)
    return jnp.where(x > 0, 1.0 - tail_beyond_abs_x, tail_beyond_abs_x)


@jax.custom_jvp
def _cdf(df, x):
    return _cdf_value(df, x)


@jax.jit
def _cdf_df_derivative(df, x):
    # The difference of the differentiable ``_cdf`` (not of ``_cdf_value``), so that the derivative itself
    # has derivatives: second derivatives in ``df`` are nested central differences, those in ``x`` and across
    # come from the density (e.g. the Hessian of a skewed-t GJR objective in the unconstrained coordinates of
    # maximum likelihood, where the persistence enters the stick-breaking map).
    step = _RELATIVE_DF_STEP * df
    return (_cdf(df + step, x) - _cdf(df - step, x)) / (2.0 * step)


@_cdf.defjvp
def _cdf_jvp(primals, tangents):
    df, x = primals
    df_dot, x_dot = tangents
    value = _cdf(df, x)  # not _cdf_value: a derivative of this rule then goes through the rule again
    density = jnp.exp(student_t_log_pdf(df, x))
    return value, density * x_dot + _cdf_df_derivative(df, x) * df_dot


def student_t_cdf(df, x):
    """Distribution function of the standard t law, differentiable in ``df`` and ``x``."""
    df, x = jnp.broadcast_arrays(jnp.asarray(df, dtype=float), jnp.asarray(x, dtype=float))
    return _cdf(df, x)


def _initial_log_upper_quantile(df, log_tail):
    """Starting point for Newton: the better of a normal-based and a tail-based approximation."""
    z = -ndtri(jnp.exp(log_tail))
    # Cornish-Fisher correction of the normal quantile: accurate in the centre and for large df.
    x_centre = z + (z**3 + z) / (4.0 * df) + (5.0 * z**5 + 16.0 * z**3 + 3.0 * z) / (96.0 * df**2)
    # I_w(a, 1/2) ~ w^a / (a B(a, 1/2)) for small w = df / (df + x^2): accurate far in the tail.
    half_df = 0.5 * df
    log_w = jnp.minimum((jnp.log(2.0) + log_tail + jnp.log(half_df) + betaln(half_df, 0.5)) / half_df, 0.0)
    x_tail = jnp.sqrt(df * jnp.expm1(-log_w))
    candidates = jnp.stack([jnp.log(jnp.maximum(x_centre, 1e-300)), jnp.log(jnp.maximum(x_tail, 1e-300))])
    misfit = jnp.abs(jnp.log(_cdf_value(df, -jnp.exp(candidates))) - log_tail)
    misfit = jnp.where(jnp.isfinite(misfit), misfit, jnp.inf)
    return jnp.where(misfit[0] <= misfit[1], candidates[0], candidates[1])


@jax.jit
def _upper_quantile_value(df, tail):
    """x >= 0 with P(T > x) = tail, for 0 <= tail <= 1/2 (inf at 0, 0 at 1/2)."""
    interior = (tail > 0.0) & (tail < 0.5)
    safe_tail = jnp.where(interior, tail, 0.25)
    log_tail = jnp.log(safe_tail)

    def newton_step(_, log_x):
        # Newton in log x on log P(T > x): in the tail log P is nearly linear in log x, so steps are exact
        # there, and the log-log scale cannot produce negative iterates.
        x = jnp.exp(log_x)
        log_sf = jnp.log(_cdf_value(df, -x))
        slope = -jnp.exp(log_x + student_t_log_pdf(df, x) - log_sf)
        step = jnp.clip((log_sf - log_tail) / slope, -_MAX_LOG_STEP, _MAX_LOG_STEP)
        return log_x - jnp.where(jnp.isfinite(step), step, 0.0)

    log_x = lax.fori_loop(0, _NEWTON_ITERATIONS, newton_step, _initial_log_upper_quantile(df, log_tail))
    x = jnp.exp(log_x)
    return jnp.where(interior, x, jnp.where(tail <= 0.0, jnp.inf, 0.0))


@jax.custom_jvp
def _upper_quantile(df, tail):
    return _upper_quantile_value(df, tail)


@_upper_quantile.defjvp
def _upper_quantile_jvp(primals, tangents):
    df, tail = primals
    df_dot, tail_dot = tangents
    x = _upper_quantile_value(df, tail)
    # P(T > x; df) = tail  =>  -f(x) dx + d/d(df)[1 - F(x)] d(df) = d(tail); F(-x) = 1 - F(x).
    density = jnp.exp(student_t_log_pdf(df, x))
    dsf_ddf = _cdf_df_derivative(df, -x)
    finite = jnp.isfinite(x) & (density > 0)
    safe_density = jnp.where(finite, density, 1.0)
    x_dot = jnp.where(finite, (dsf_ddf * df_dot - tail_dot) / safe_density, 0.0)
    return x, x_dot


def student_t_upper_quantile(df, tail):
    """``x >= 0`` such that ``P(T > x) = tail`` for ``0 <= tail <= 1/2``; differentiable in both arguments."""
    df, tail = jnp.broadcast_arrays(jnp.asarray(df, dtype=float), jnp.asarray(tail, dtype=float))
    return _upper_quantile(df, tail)


def student_t_quantile(df, q):
    """Quantile function of the standard t law (``-inf`` at 0, ``inf`` at 1)."""
    q = jnp.asarray(q, dtype=float)
    valid = (q >= 0.0) & (q <= 1.0)
    safe_q = jnp.where(valid, q, 0.5)
    magnitude = student_t_upper_quantile(df, jnp.minimum(safe_q, 1.0 - safe_q))
    return jnp.where(valid, jnp.where(safe_q < 0.5, -magnitude, magnitude), jnp.nan)
