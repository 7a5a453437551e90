r"""Likelihood methods and filtered forecasts of the Wishart SV model
([`bayesvol.models.WishartSV`][bayesvol.models.WishartSV]).

* `eis_loglik` — efficient importance sampling with Wishart kernels (plain or sequential), the
  ``"eis"`` method of [`bayesvol.log_likelihood`][bayesvol.log_likelihood] and [`bayesvol.fit`][bayesvol.fit], with
  `eis_diagnostics`;
* `pf_loglik` — the fully adapted particle filter (the EIS code with zero kernels and resampling),
  the ``"pf"`` method;
* `wishart_eis_output` — the full output of the EIS sampler (weights, paths, kernels, diagnostics);
* `forecast_covariance` and `filtered_forecasts` — covariance forecasts
  $E[\Omega_{t+1}^{-1} \mid y_{1:t}]$ from the EIS draws or the particle filter.

The algorithm is in `bayesvol.filters.eis_wishart`; the transition scale and the emission density it
uses are those of the model (`bayesvol.models._wishart_linalg`,
`bayesvol.distributions.wishart.gaussian_precision_log_prob`).
"""

from __future__ import annotations

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from bayesvol.filters.eis_wishart import WishartEISResult, wishart_eis
from bayesvol.models._base import as_params
from bayesvol.models._wishart_linalg import steady_state

__all__ = ["EISKernels", "eis_diagnostics", "eis_loglik", "filtered_forecasts", "forecast_covariance", "pf_loglik",
           "wishart_eis_output"]


class EISKernels:
    r"""EIS auxiliary kernels $(c_t, C_t)$ held fixed: the ``kernels`` option of the ``"eis"`` likelihood.

    Compares and hashes by identity, so it can be a (static) likelihood option.
    """

    __slots__ = ("c", "C")

    def __init__(self, c, C):
        self.c, self.C = np.asarray(c, dtype=np.float64), np.asarray(C, dtype=np.float64)


@partial(jax.jit, static_argnames=("num_draws", "num_iterations", "tolerance", "antithetic", "resample"))
def _run_eis(params, y, seed, initial_kernels=None, *, num_draws, num_iterations, tolerance, antithetic, resample):
    T, k = y.shape
    half = num_draws // 2 if antithetic else num_draws
    key_diag, key_off, key_unif = jax.random.split(jax.random.PRNGKey(seed), 3)
    z_diag = jax.random.normal(key_diag, (T, half, k), dtype=y.dtype)
    z_off = jax.random.normal(key_off, (T, half, k * (k - 1) // 2), dtype=y.dtype)
    if antithetic:
        z_diag, z_off = jnp.concatenate([z_diag, -z_diag], axis=1), jnp.concatenate([z_off, -z_off], axis=1)
    chol_a = jnp.linalg.cholesky(params.A)
    omega0 = steady_state(chol_a, params.d)
    return wishart_eis(y, params.nu, params.d, chol_a, omega0, num_draws=num_draws, num_iterations=num_iterations,
                       tolerance=tolerance, z_diag=z_diag, z_offdiag=z_off,
                       resample_keys=jax.random.split(key_unif, T), resample=resample,
                       initial_kernels=initial_kernels)


def _eis_options(num_draws=128, num_iterations=10, tolerance=1e-2, seed=0, antithetic=True, resample=False,
                 num_particles=None):
    """Check the EIS options; returns ``(seed, static options of _run_eis)``."""
    if num_particles is not None:
        warnings.warn("the EIS option num_particles is now num_draws (num_particles is for particle filters)",
                      FutureWarning, stacklevel=3)
        num_draws = num_particles
    if isinstance(num_draws, bool) or not isinstance(num_draws, int) or num_draws < 2:
        raise ValueError(f"num_draws must be an integer >= 2, got {num_draws!r}")
    if antithetic and num_draws % 2:
        raise ValueError(f"antithetic draws need an even num_draws, got {num_draws}")
    if isinstance(num_iterations, bool) or not isinstance(num_iterations, int) or num_iterations < 0:
        raise ValueError(f"num_iterations must be a non-negative integer, got {num_iterations!r}")
    if not (isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and tolerance >= 0.0):
        raise ValueError(f"tolerance must be a non-negative number, got {tolerance!r}")
    return seed, {"num_draws": num_draws, "num_iterations": num_iterations, "tolerance": float(tolerance),
                  "antithetic": bool(antithetic), "resample": bool(resample)}


def _eis_loglik_output(params, y, options) -> WishartEISResult:
    options = dict(options)
    kernels = options.pop("kernels", None)
    seed, static = _eis_options(**options)
    if kernels is None:
        return _run_eis(params, y, seed, **static)
    if not isinstance(kernels, EISKernels) or kernels.c.shape != y.shape[:1] or kernels.C.shape != y.shape[:1] + (
            y.shape[1], y.shape[1]):
        raise ValueError("kernels must be EISKernels with c of shape (T,) and C of shape (T, k, k)")
    return _run_eis(params, y, seed, (jnp.asarray(kernels.c), jnp.asarray(kernels.C)),
                    **dict(static, num_iterations=0))


def eis_loglik(model, params, y, **options):
    """EIS log-likelihood split into T terms that add up to it (see
    `WishartEISResult`).

    Options: ``num_draws`` (128), ``num_iterations`` (10: the most EIS passes), ``tolerance`` (0.01: the
    passes stop when the kernels change by less, relatively), ``seed`` (0), ``antithetic`` (True),
    ``resample`` (False; True runs the final pass as a particle filter, see
    [`wishart_eis`][bayesvol.filters.eis_wishart.wishart_eis]), ``kernels`` (an `EISKernels` to use instead of
    running the EIS passes). Derivatives hold the EIS kernels fixed at their values for the given
    parameters (see `eis_kernels`).
    """
    model.check_parameters(params)
    return _eis_loglik_output(params, y, options).pointwise_log_likelihood


def eis_diagnostics(model, params, y, num_replications: int = 5, **options):
    """At the estimate: MC SD of the plain EIS log-likelihood over seeds, and the sequential EIS value."""
    options.pop("kernels", None)
    seed, static = _eis_options(**options)
    values = np.array([float(_run_eis(params, y, seed + 1 + r, **static).log_likelihood)
                       for r in range(num_replications)])
    sequential = float(_run_eis(params, y, seed, **dict(static, resample=True)).log_likelihood)
    return {"loglik_mc_sd": float(values.std(ddof=1)), "loglik_mc_replications": num_replications,
            "loglik_sequential_eis": sequential}


def pf_loglik(model, params, y, *, num_particles: int = 1000, seed: int = 0, antithetic: bool = True):
    r"""Fully adapted particle filter: propose $\Omega_t$ from $p(\Omega_t \mid \Omega_{t-1}, y_t)$.

    Normal–Wishart conjugacy makes that proposal and the predictive $p(y_t \mid \Omega_{t-1})$ exact, so
    this is the EIS code with ``num_iterations=0`` and ``resample=True``. The terms are estimates of the
    one-step-ahead predictive densities $\log p(y_t \mid y_{1:t-1})$. Options: ``num_particles``
    (1000), ``seed`` (0), ``antithetic`` (True).
    """
    seed, static = _eis_options(num_draws=num_particles, seed=seed, antithetic=antithetic, num_iterations=0,
                                resample=True)
    model.check_parameters(params)
    return _run_eis(params, y, seed, **static).pointwise_log_likelihood


def wishart_eis_output(model, params, y, **options) -> WishartEISResult:
    """Run the EIS sampler at ``params`` and return its full output (weights, paths, diagnostics).

    Options as for ``log_likelihood(..., method="eis")`` (see `eis_loglik`): ``num_draws``,
    ``num_iterations``, ``tolerance``, ``seed``, ``antithetic``, ``resample``, ``kernels``. See
    `bayesvol.filters.eis_wishart` for the algorithm and `forecast_covariance` for forecasts.
    """
    params = as_params(model, params)
    model.check_parameters(params)
    data = jnp.asarray(model.validate_data(y).values)
    return _eis_loglik_output(params, data, options)


def _forecast_params(model, params):
    params = as_params(model, params)
    model.check_parameters(params)
    k = params.A.shape[0]
    if not float(params.nu) > k + 1:
        raise ValueError(f"E[Omega^-1] is infinite unless nu > k + 1 = {k + 1}; got nu = {float(params.nu)}")
    return params, k


def forecast_covariance(model, params, y, *, method: str = "eis", **options) -> np.ndarray:
    r"""One-step-ahead covariance forecast $E[\Omega_{T+1}^{-1} \mid y_{1:T}]$ at ``params``.

    $E[\Omega_{T+1}^{-1}\mid\Omega_T] = S_T^{-1}/(\nu-k-1)$, averaged with the importance weights
    over the EIS draws of $\Omega_T$ (``method="eis"``; options as in `wishart_eis_output`), or
    over the fully adapted particle filter's filtering law (``method="pf"``: options ``num_particles`` (128),
    ``seed``, ``antithetic``; the EIS code with ``num_iterations=0`` and ``resample=True``, whose final
    weighted particles represent $p(\Omega_T \mid y_{1:T})$).
    Requires $\nu > k + 1$ (otherwise the expectation is infinite).
    """
    params, k = _forecast_params(model, params)
    if method not in ("eis", "pf"):
        raise ValueError(f"method must be 'eis' or 'pf', got {method!r}")
    if method == "pf":
        options = dict(options)
        options = dict(options, num_draws=options.pop("num_particles", 128), num_iterations=0, resample=True)
    out = wishart_eis_output(model, params, y, **options)
    weights = jnp.exp(out.log_weights - jax.scipy.special.logsumexp(out.log_weights))
    mean_s_inv = jnp.einsum("n,nij->ij", weights, out.scale_inverse_last)
    return np.asarray(mean_s_inv / (params.nu - k - 1.0))


def filtered_forecasts(model, params, y, *, num_particles: int = 1000, seed: int = 0) -> np.ndarray:
    r"""One-step-ahead covariance forecasts $E[\Omega_{t+1}^{-1} \mid y_{1:t}]$, $t = 1..T$.

    One pass of the fully adapted particle filter (see `pf_loglik`): row t (0-based) is the forecast
    for the return after ``y[t]``, using ``y[:t + 1]`` only. The last row is `forecast_covariance` with
    ``method="pf"``. Requires $\nu > k + 1$.
    """
    params, k = _forecast_params(model, params)
    out = wishart_eis_output(model, params, y, num_draws=num_particles, seed=seed, num_iterations=0, resample=True)
    return np.asarray(out.filtered_scale_inverse / (params.nu - k - 1.0))
