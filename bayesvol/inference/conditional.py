r"""One-step-ahead conditional moments of the returns at fixed parameters, for every model family.

For each $t$ the mean $m_t = E[y_t \mid y_{1:t-1}]$ and the per-coordinate variance
$v_t = \mathrm{Var}(y_t \mid y_{1:t-1})$, from which the results of maximum likelihood give the conditional
volatility $\sqrt{v_t}$, the residuals $y_t - m_t$ and the standardised residuals
$(y_t - m_t)/\sqrt{v_t}$, the quantities arch reports.

Observation-driven models (GARCH, GJR, EGARCH, IG-GARCH, DCC)
    Exact: the state path of the model's own recursion (``_observation.filter_states``), then the mean and
    variance of the emission on that path (the law of $y_t$ given the state for $t$).
Latent-state models
    From a filter's one-step-ahead (predicted) law of the state, one table row per family:

    * SV: the Bellman filter's Gaussian prediction $h_t \mid y_{1:t-1} \approx N(a_t, P_t)$, so
      $v_t = E[e^{h_t}] = e^{a_t + P_t/2}$ and $m_t = 0$.
    * DFSV: the DFSV Bellman filter's prediction of the joint state $(f_t, h_t[, h^{id}_t])$, so
      $m_t = \Lambda a^f_t$ and $v_t = \mathrm{diag}(\Lambda P^{ff}_t \Lambda') + \sigma^2_t$, where
      the predicted factor covariance $P^{ff}_t$ holds the factor shocks' variance
      $E[e^{h_t}] = e^{a^h_t + P^{hh}_t/2}$ and the idiosyncratic variances are $\sigma^2$ or
      $e^{a^{id}_t + P^{id}_t/2}$.
    * Wishart SV: the fully adapted particle filter (1000 particles, seed 0) for
      $E[\Omega_t^{-1} \mid y_{1:t-1}]$, $t \ge 2$, and $E[\Omega_1^{-1}] =
      S_0^{-1}/(\nu - k - 1)$; $m_t = 0$. Needs $\nu > k + 1$.

The Gaussian approximations of the Bellman filter make the latent-state moments approximate; the
observation-driven ones are exact.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

import bayesvol.filters.wishart_methods as wishart_methods
from bayesvol.filters.bellman import bellman_filter
from bayesvol.filters.dfsv_bellman import bellman_filter as dfsv_bellman_filter
from bayesvol.models import _base, _observation
from bayesvol.models._protocol import ObservationDrivenModel
from bayesvol.models.dfsv import DFSV
from bayesvol.models.sv import SV
from bayesvol.models.wishart_sv import WishartSV

__all__ = ["ConditionalMoments", "conditional_moments", "posterior_volatility"]


class ConditionalMoments(NamedTuple):
    """One-step-ahead conditional mean and variance of each observation (shape (T,) or (T, N) each).

    ``source`` says where they come from (the exact recursion or a filter's prediction).
    """

    mean: np.ndarray
    variance: np.ndarray
    source: str


@partial(jax.jit, static_argnums=0)
def _observation_driven(model, params, y):
    states, _ = _observation.filter_states(model, params, y)
    law = model.emission(params, states)
    return jnp.broadcast_to(law.mean, y.shape), jnp.broadcast_to(law.variance, y.shape)


@partial(jax.jit, static_argnums=0)
def _sv(model, params, y):
    out = bellman_filter(model, params, y)
    mean, var = out.predicted_mean[:, 0], out.predicted_covariance[:, 0, 0]
    return jnp.zeros_like(y), jnp.exp(mean + 0.5 * var)


@partial(jax.jit, static_argnums=0)
def _dfsv(model, params, y):
    out = dfsv_bellman_filter(model, params, y, 8)
    k, n = model.num_factors, y.shape[1]
    mean, cov = out.predicted_mean, out.predicted_covariance
    var = jnp.diagonal(cov, axis1=-2, axis2=-1)
    lam = params.lambda_r
    # The filter's predicted factor covariance already holds the shock variance E[exp(h_t)].
    common = jnp.einsum("ik,tkl,il->ti", lam, cov[:, :k, :k], lam)
    if model.idiosyncratic == "sv":
        idio = jnp.exp(mean[:, 2 * k:2 * k + n] + 0.5 * var[:, 2 * k:2 * k + n])
    else:
        idio = jnp.broadcast_to(params.sigma2, common.shape)
    return mean[:, :k] @ lam.T, common + idio


def _wishart(model, params, y):
    filtered = wishart_methods.filtered_forecasts(model, params, y)
    k = params.A.shape[0]
    first = jnp.linalg.inv(model.scale_matrix(params, model.steady_state(params))) / (params.nu - k - 1.0)
    cov = np.concatenate([np.asarray(first)[None], filtered[:-1]])
    return np.zeros_like(y), np.diagonal(cov, axis1=-2, axis2=-1)


# Latent-state family -> (one-step-ahead moments at fixed parameters, description of the source).
_LATENT = {
    SV: (_sv, "Bellman filter prediction (Gaussian approximation)"),
    DFSV: (_dfsv, "DFSV Bellman filter prediction (Gaussian approximation)"),
    WishartSV: (_wishart, "fully adapted particle filter (1000 particles, seed 0)"),
}


def conditional_moments(model, params, y) -> ConditionalMoments:
    """One-step-ahead conditional mean and variance of each observation at fixed parameters.

    Parameters
    ----------
    model : bayesvol model
        Any family; see the module notes for how each one is computed.
    params : dict or <Model>Params
        E.g. ``bayesvol.fit(...).params``.
    y : array_like or pandas object
        The data (one series, or a panel for the multivariate families).

    Returns
    -------
    ConditionalMoments
        Arrays of the data's shape.

    Raises
    ------
    ValueError
        If the moments are not finite (parameters outside the model's space, data outside an IG-GARCH
        support), naming the model.

    Examples
    --------
    >>> import bayesvol
    >>> from bayesvol.inference.conditional import conditional_moments
    >>> y = bayesvol.datasets.load("gbpusd")
    >>> params = {"mu": 0.0, "omega": 0.01, "alpha": 0.05, "beta": 0.9}
    >>> moments = conditional_moments(bayesvol.models.GARCH(), params, y)
    >>> moments.variance.shape == y.shape
    True
    """
    model = model.bind_data(y)
    values = jnp.asarray(model.validate_data(y).values)
    params = _base.as_params(model, params)
    model.check_parameters(params)
    if isinstance(model, ObservationDrivenModel):
        mean, variance = _observation_driven(model, params, values)
        source = "exact recursion"
    else:
        try:
            moments, source = _LATENT[type(model)]
        except KeyError:
            raise ValueError(f"no conditional moments are defined for {model!r}; families with them: "
                             f"the observation-driven ones and {', '.join(c.__name__ for c in _LATENT)}") from None
        mean, variance = moments(model, params, values)
    mean, variance = np.asarray(mean, dtype=np.float64), np.asarray(variance, dtype=np.float64)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance)) and np.all(variance > 0)):
        raise ValueError(f"the conditional moments of {model.describe()} are not finite and positive at these "
                         "parameters; check that they lie in the model's space and the data in its support")
    return ConditionalMoments(mean=mean, variance=variance, source=source)


def posterior_volatility(idata):
    r"""Posterior draws of each return's conditional standard deviation, dims ``(chain, draw, time[, asset])``.

    The posterior's ``vol`` for SV, the GARCH family, DCC and Wishart SV. DFSV's ``vol`` holds the factors'
    volatilities $e^{h_t/2}$; the per-asset one is $\sqrt{\mathrm{diag}(\Lambda\,\mathrm{diag}
    (e^{h_t})\Lambda' + \Sigma_t)}$, the square root of the diagonal of ``cov`` where the program stored it,
    else computed from ``lambda_r``, ``vol`` and ``sigma2`` (or ``vol_id``).

    Parameters
    ----------
    idata : xarray.DataTree
        A posterior from [`bayesvol.sample`][bayesvol.sample].

    Returns
    -------
    xarray.DataArray
    """
    posterior = getattr(idata, "posterior", None)
    if posterior is None or "vol" not in posterior:
        raise ValueError("idata has no posterior 'vol'; pass a posterior from bayesvol.sample")
    vol = posterior["vol"]
    if "factor" not in vol.dims:
        return vol
    if "cov" in posterior:
        cov = posterior["cov"]
        values = np.sqrt(np.diagonal(cov.transpose("chain", "draw", "time", "asset", "asset2").values, axis1=-2,
                                     axis2=-1))
        return xr.DataArray(values, dims=("chain", "draw", "time", "asset"),
                            coords={name: cov[name] for name in ("chain", "draw", "time", "asset")}, name="vol")
    common = (posterior["lambda_r"] ** 2 * vol**2).sum("factor")
    idio = posterior["vol_id"] ** 2 if "vol_id" in posterior else posterior["sigma2"]
    return np.sqrt(common + idio).transpose("chain", "draw", "time", "asset").rename("vol")
