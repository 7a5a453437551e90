"""Resampling schemes for particle filters, in log-weight space.

All functions take *normalised* log-weights (``logsumexp(log_weights) == 0``) and are pure JAX, so they
can be traced inside ``lax.scan`` and mapped with ``vmap``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "effective_sample_size",
    "normalise_log_weights",
    "smooth_resample",
    "smooth_resample_from_uniform",
    "systematic_ancestors",
    "systematic_resample",
]


def normalise_log_weights(log_weights):
    """Normalised log-weights and the log of their (unnormalised) sum.

    Returns ``(log_weights - c, c)`` with ``c = logsumexp(log_weights)``. When every weight is zero
    (``c = -inf``) the weights are set to uniform, so later steps see finite numbers; ``c`` stays ``-inf``
    and carries the information that the likelihood estimate is zero.
    """
    log_weights = jnp.where(jnp.isnan(log_weights), -jnp.inf, log_weights)
    log_total = jax.scipy.special.logsumexp(log_weights)
    num = log_weights.shape[0]
    finite = jnp.isfinite(log_total)
    normalised = jnp.where(finite, log_weights - jnp.where(finite, log_total, 0.0), -jnp.log(num))
    return normalised, log_total


def effective_sample_size(log_weights):
    r"""Effective sample size $1 / \sum_i W_i^2$ of normalised log-weights (between 1 and N)."""
    return jnp.exp(-jax.scipy.special.logsumexp(2.0 * log_weights))


def systematic_resample(key, log_weights, num_samples: int | None = None):
    r"""Ancestor indices by systematic resampling.

    Parameters
    ----------
    key : jax.Array
        PRNG key; it is used for one uniform draw only.
    log_weights : jax.Array
        Normalised log-weights, shape ``(N,)``.
    num_samples : int, optional
        Number of indices to draw (default ``N``).

    Returns
    -------
    jax.Array
        Integer indices, shape ``(num_samples,)``, non-decreasing.

    Notes
    -----
    With one $U \sim \mathrm{Uniform}(0, 1)$ and points $u_j = (U + j)/M$, $j = 0, \dots,
    M-1$, index $A_j$ is the first $i$ with cumulative weight $C_i \ge u_j$. Particle
    $i$ is therefore copied $K_i - K_{i-1}$ times where $K_i = \#\{j: u_j \le C_i\}
    = \lfloor M C_i - U \rfloor + 1$ (clipped to $[0, M]$). The indices are built from these counts
    with one scatter-add and one cumulative sum, $O(N + M)$, instead of a binary search per point.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import bayesvol
    >>> from bayesvol.filters.resampling import systematic_resample
    >>> log_w = jnp.log(jnp.array([0.5, 0.0, 0.25, 0.25]))
    >>> systematic_resample(jax.random.PRNGKey(0), log_w).tolist()
    [0, 0, 2, 3]
    """
    return systematic_ancestors(jax.random.uniform(key, dtype=log_weights.dtype), log_weights, num_samples)


def systematic_ancestors(uniform, log_weights, num_samples: int | None = None):
    """[`systematic_resample`][bayesvol.filters.resampling.systematic_resample] given its uniform draw ``uniform`` in
[0, 1) instead of a key.

    Lets a filter draw the uniforms of all its steps in one vectorised call before its scan.
    """
    num = log_weights.shape[0]
    num_samples = num if num_samples is None else num_samples
    cumulative = jnp.cumsum(jnp.exp(log_weights))
    counts_up_to = jnp.clip(jnp.floor(num_samples * cumulative - uniform).astype(jnp.int32) + 1, 0, num_samples)
    marks = jnp.zeros(num_samples + 1, dtype=jnp.int32).at[counts_up_to].add(1)
    # Rounding can leave the last cumulative weight just below the last point; clip to a valid index.
    return jnp.minimum(jnp.cumsum(marks)[:num_samples], num - 1)


def smooth_resample(key, particles, log_weights):
    r"""Continuous ("smooth") resampling of scalar particles (Malik & Pitt 2011).

    Draws from a piecewise-linear interpolation of the weighted empirical distribution function at
    systematic points, so the resampled values — and a likelihood estimate built on them with common
    random numbers — move continuously with the particles and weights.

    Parameters
    ----------
    key : jax.Array
        PRNG key (one uniform draw).
    particles : jax.Array
        Scalar particles, shape ``(N,)``.
    log_weights : jax.Array
        Normalised log-weights, shape ``(N,)``.

    Returns
    -------
    jax.Array
        New equally weighted particles, shape ``(N,)``.

    Notes
    -----
    Sort the particles, $x_{(1)} \le \dots \le x_{(N)}$, with weights $\pi_{(i)}$. The
    distribution is split into $N + 1$ regions of mass $\lambda_0 = \pi_{(1)}/2$,
    $\lambda_i = (\pi_{(i)} + \pi_{(i+1)})/2$ and $\lambda_N = \pi_{(N)}/2$. The two end regions
    are point masses at $x_{(1)}$ and $x_{(N)}$; region $i$ is uniform on
    $[x_{(i)}, x_{(i+1)}]$. A point $u$ falling at fraction $f$ of region $i$ maps to
    $x_{(i)} + f (x_{(i+1)} - x_{(i)})$, which is continuous in $u$, in the particles and in the
    weights as long as coincident particles carry equal weights (true of the bootstrap filter, whose weight
    is a function of the particle alone). Cost $O(N \log N)$ for the sort.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import bayesvol
    >>> from bayesvol.filters.resampling import smooth_resample
    >>> x = jnp.array([0.0, 1.0, 2.0, 3.0])
    >>> new = smooth_resample(jax.random.PRNGKey(0), x, jnp.full(4, -jnp.log(4.0)))
    >>> bool(jnp.all((new >= 0.0) & (new <= 3.0)))
    True
    """
    return smooth_resample_from_uniform(jax.random.uniform(key, dtype=particles.dtype), particles, log_weights)


def smooth_resample_from_uniform(uniform, particles, log_weights):
    """[`smooth_resample`][bayesvol.filters.resampling.smooth_resample] given its uniform draw ``uniform`` in
[0, 1) instead of a key."""
    if particles.ndim != 1:
        raise ValueError(f"smooth resampling needs scalar particles (shape (N,)), got shape {particles.shape}")
    num = particles.shape[0]
    order = jnp.argsort(particles)
    sorted_x = particles[order]
    sorted_w = jnp.exp(log_weights[order])
    masses = jnp.concatenate([sorted_w[:1] / 2.0, (sorted_w[:-1] + sorted_w[1:]) / 2.0, sorted_w[-1:] / 2.0])
    upper_edges = jnp.cumsum(masses)
    lower_edges = upper_edges - masses
    points = (uniform + jnp.arange(num)) / num
    region = jnp.clip(jnp.searchsorted(upper_edges, points, side="right"), 0, num)
    padded = jnp.concatenate([sorted_x[:1], sorted_x, sorted_x[-1:]])
    left, right = padded[region], padded[region + 1]
    mass = masses[region]
    safe_mass = jnp.where(mass > 0.0, mass, 1.0)
    fraction = jnp.clip(jnp.where(mass > 0.0, (points - lower_edges[region]) / safe_mass, 0.5), 0.0, 1.0)
    return left + fraction * (right - left)
