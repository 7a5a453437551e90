"""Dynamic factor stochastic volatility (DFSV): VAR(1) factors whose log-variances follow a VAR(1)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jax import lax
from numpyro.distributions import constraints
from numpyro.infer import init_to_median

from bayesvol._validation import MIN_OBSERVATIONS, as_panel_values
from bayesvol.distributions.priors import ScaledBeta
from bayesvol.models import _dfsv_kalman as kalman
from bayesvol.models._dfsv_priors import (
    IdentifiedLoadings,
    LoadingsTransform,
    ScaledLKJ,
    StationaryMatrix,
    StationaryTransform,
    loadings_from_free,
    num_free_loadings,
    solve_discrete_lyapunov,
    stationary_from_unconstrained,
    unconstrained_from_stationary,
)

__all__ = ["DFSV", "DFSVParams", "DFSVSimulation", "default_priors"]

IDIOSYNCRATIC = ("constant", "sv")


class DFSVParams(NamedTuple):
    """Parameters of :class:`DFSV`; the idiosyncratic ones not used by a model are ``None``.

    Shapes: ``lambda_r`` (N, K), ``Phi_f`` (K, K), ``Phi_h`` (K, K), ``mu`` (K,), ``Q_h`` (K, K),
    ``sigma2`` (N,) with constant idiosyncratic variances, ``mu_id``, ``phi_id``, ``sigma_id`` (N,) with
    idiosyncratic SV.
    """

    lambda_r: jax.Array
    Phi_f: jax.Array
    Phi_h: jax.Array
    mu: jax.Array
    Q_h: jax.Array
    sigma2: jax.Array | None = None
    mu_id: jax.Array | None = None
    phi_id: jax.Array | None = None
    sigma_id: jax.Array | None = None


class DFSVSimulation(NamedTuple):
    """Simulated DFSV data: returns ``y`` (T, N), factors ``f`` (T, K), factor log-variances ``h`` (T, K) and,
    with idiosyncratic SV, the idiosyncratic log-variances ``h_id`` (T, N) (else ``None``)."""

    y: np.ndarray
    h: np.ndarray
    f: np.ndarray
    h_id: np.ndarray | None = None


class PanelIndex(NamedTuple):
    """Labels of a validated panel: ``time`` (the data's index, or ``None``) and ``assets`` (column names)."""

    time: pd.Index | None
    assets: tuple


class Panel(NamedTuple):
    """A validated return panel: float64 values (T, N) and its labels."""

    values: np.ndarray
    index: PanelIndex


def default_priors(num_factors: int = 1) -> dict:
    r"""Default priors for a model with ``num_factors`` factors.

    * ``lambda_r``: free loadings iid :math:`N(0, 1)` (:class:`IdentifiedLoadings`);
    * ``Phi_f``: :math:`\Phi_f = A\,\mathrm{chol}(I + AA')^{-1}` with :math:`A_{ij} \sim N(0, 0.5^2)`, so
      factor autocorrelation is centred on zero (:class:`StationaryMatrix`);
    * ``Phi_h``: the same map with :math:`A_{kk} \sim N(3, 2^2)` (a scalar :math:`\phi = a/\sqrt{1+a^2}`
      has prior median 0.95) and off-diagonal :math:`A_{ij} \sim N(0, 0.5^2)`;
    * ``mu``: :math:`N(0, 10^2)` per factor, as the SV model's :math:`\mu`;
    * ``Q_h``: :class:`ScaledLKJ`, shock standard deviations :math:`\mathrm{HalfNormal}(1)` (the SV model's
      :math:`\sigma`) and an :math:`\mathrm{LKJ}(2)` correlation;
    * ``sigma2``: :math:`\mathrm{InverseGamma}(2, 0.1)` per asset, which keeps idiosyncratic variances away
      from zero (Heywood cases);
    * ``mu_id``, ``phi_id``, ``sigma_id``: the SV model's defaults, :math:`N(0, 10^2)`,
      :math:`(\phi + 1)/2 \sim \mathrm{Beta}(5, 1.5)`, :math:`\mathrm{HalfNormal}(1)`.
    """
    k = int(num_factors)
    eye = jnp.eye(k)
    return {
        "lambda_r": IdentifiedLoadings(k),
        "Phi_f": StationaryMatrix(k, dist.Normal(0.0, 0.5)),
        "Phi_h": StationaryMatrix(k, dist.Normal(3.0 * eye, jnp.where(eye > 0, 2.0, 0.5)).to_event(2)),
        "mu": dist.Normal(0.0, 10.0),
        "Q_h": ScaledLKJ(k, dist.HalfNormal(1.0), 2.0),
        "sigma2": dist.InverseGamma(2.0, 0.1),
        "mu_id": dist.Normal(0.0, 10.0),
        "phi_id": ScaledBeta(5.0, 1.5, -1.0, 1.0),
        "sigma_id": dist.HalfNormal(1.0),
    }


def _merge_priors(num_factors: int, overrides: Mapping | None, allowed: tuple) -> dict:
    """Defaults updated by user priors, each checked and brought to the form the program expects."""
    merged = default_priors(num_factors)
    for name, prior in dict(overrides or {}).items():
        if name not in allowed:
            raise ValueError(f"unknown parameter {name!r} in priors; this model has {', '.join(allowed)}")
        if not isinstance(prior, dist.Distribution):
            raise TypeError(f"prior for {name!r} must be a numpyro distribution, got {type(prior).__name__}")
        if name == "lambda_r":
            if not isinstance(prior, IdentifiedLoadings):
                prior = IdentifiedLoadings(num_factors, prior)
            elif prior.num_factors != num_factors:
                raise ValueError(f"prior for 'lambda_r' is for {prior.num_factors} factors; the model has "
                                 f"{num_factors}")
        elif name in ("Phi_f", "Phi_h"):
            if not isinstance(prior, StationaryMatrix):
                prior = StationaryMatrix(num_factors, prior)
            elif prior.dim != num_factors:
                raise ValueError(f"prior for {name!r} is {prior.dim}x{prior.dim}; the model has {num_factors} factors")
        elif name == "Q_h":
            if prior.event_shape != (num_factors, num_factors) or prior.support.event_dim != 2:
                raise ValueError(f"prior for 'Q_h' must be a law over {num_factors}x{num_factors} covariance matrices "
                                 f"(e.g. ScaledLKJ({num_factors}, ...)); got event shape {prior.event_shape}")
        elif prior.batch_shape != () or prior.event_shape != ():
            raise ValueError(f"prior for {name!r} must be a scalar distribution (it applies to each element); got "
                             f"batch shape {prior.batch_shape} and event shape {prior.event_shape}")
        merged[name] = prior
    return merged


@dataclass(frozen=True)
class DFSV:
    r"""Dynamic factor stochastic volatility model for an ``N``-asset return panel with ``K`` factors.

    Parameters
    ----------
    num_factors : int
        ``K``, at least 1 and at most the number of assets.
    idiosyncratic : {"constant", "sv"}
        Constant idiosyncratic variances ``sigma2`` or an AR(1) log-variance per asset (``mu_id``,
        ``phi_id``, ``sigma_id``).
    priors : mapping, optional
        Parameter name -> NumPyro distribution, overriding :func:`default_priors`. Scalar laws apply to each
        element of ``mu``, ``sigma2``, ``mu_id``, ``phi_id``, ``sigma_id``; for ``lambda_r`` a scalar law is
        the prior of each free loading; for ``Phi_f``/``Phi_h`` a real-support law is the prior of the
        unconstrained matrix :math:`A` (see :class:`StationaryMatrix`); ``Q_h`` takes a law over covariance
        matrices such as :class:`ScaledLKJ`.
    num_assets : int, optional
        ``N``; by default taken from the data (a given value is checked against it).
    marginalize_factors : bool
        In the NumPyro program, integrate the factors out with a Kalman filter given the log-variances
        (Rao-Blackwellisation; default) or sample them as latent variables (for checks).
    store_covariance : bool
        Add the conditional covariance ``cov`` and correlation ``corr`` of the returns, each (T, N, N), to the
        posterior (memory grows as draws x T x N^2).

    Notes
    -----
    .. math::

        r_t &= \Lambda f_t + \varepsilon_t, \qquad \varepsilon_t \sim N(0, \Sigma_t),\quad
        \Sigma_t = \mathrm{diag}(\sigma^2) \text{ or } \mathrm{diag}(e^{h^{id}_{1,t}}, \dots, e^{h^{id}_{N,t}}), \\
        f_t &= \Phi_f f_{t-1} + \nu_t, \qquad \nu_t \sim N(0, \mathrm{diag}(e^{h_{1,t}}, \dots, e^{h_{K,t}})), \\
        h_t &= \mu + \Phi_h (h_{t-1} - \mu) + \eta_t, \qquad \eta_t \sim N(0, Q_h), \\
        h^{id}_{i,t} &= \mu^{id}_i + \phi^{id}_i (h^{id}_{i,t-1} - \mu^{id}_i) + \sigma^{id}_i \eta^{id}_{i,t}.

    Start: :math:`h_1` from its stationary law :math:`N(\mu, \Gamma_h)`, :math:`\Gamma_h = \Phi_h \Gamma_h \Phi_h'
    + Q_h`; :math:`f_1 \mid h_1 \sim N(0, \Gamma_f(h_1))` with :math:`\Gamma_f(h) = \Phi_f \Gamma_f(h) \Phi_f' +
    \mathrm{diag}(e^{h})`, the stationary law of the factors were their log-variances held at :math:`h_1`;
    :math:`h^{id}_{i,1}` from its stationary law.

    Identification: :math:`\Lambda` is lower-triangular in its first ``K`` rows with a unit diagonal, so factor
    ``k`` is measured in the units of asset ``k`` and asset ``k`` does not load on factors after ``k``. The
    first ``K`` columns of the data must therefore be assets that each carry a distinct factor. Stationarity
    of :math:`\Phi_f` and :math:`\Phi_h` is enforced by :class:`StationaryTransform`.

    Examples
    --------
    >>> import numpy as np
    >>> import bayesvol
    >>> model = bayesvol.models.DFSV(num_factors=1)
    >>> params = {"lambda_r": np.array([[1.0], [0.8], [0.5]]), "Phi_f": np.array([[0.2]]),
    ...           "Phi_h": np.array([[0.95]]), "mu": np.array([-0.5]), "Q_h": np.array([[0.04]]),
    ...           "sigma2": np.array([0.2, 0.3, 0.4])}
    >>> sim = bayesvol.simulate(model, params, num_timesteps=200, seed=1)
    >>> sim.y.shape, sim.f.shape, sim.h.shape
    ((200, 3), (200, 1), (200, 1))
    """

    num_factors: int = 1
    idiosyncratic: str = "constant"
    priors: Mapping | None = field(default=None, compare=False, hash=False, repr=False)
    num_assets: int | None = None
    marginalize_factors: bool = True
    store_covariance: bool = False
    _prior_items: tuple = field(default=(), init=False, repr=False)

    params_type = DFSVParams

    def __post_init__(self):
        k = self.num_factors
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"num_factors must be a positive integer, got {k!r}")
        object.__setattr__(self, "num_factors", int(k))
        if self.idiosyncratic not in IDIOSYNCRATIC:
            raise ValueError(f"idiosyncratic must be 'constant' or 'sv', got {self.idiosyncratic!r}")
        if self.num_assets is not None:
            n = self.num_assets
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"num_assets must be a positive integer, got {n!r}")
            if n < k:
                raise ValueError(f"{k} factors are not identified from {n} assets: num_factors must not exceed "
                                 "the number of assets")
            object.__setattr__(self, "num_assets", int(n))
        for flag in ("marginalize_factors", "store_covariance"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        merged = _merge_priors(k, self.priors, self.param_names)
        # Keep the user's priors as a tuple so models hash and compare by value (static jit argument).
        object.__setattr__(self, "_prior_items", tuple((n, merged[n]) for n in self.param_names
                                                        if self.priors and n in self.priors))
        object.__setattr__(self, "priors", None)
        object.__setattr__(self, "_merged", merged)

    # --- names and priors ------------------------------------------------------------------------
    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the free parameters, in a fixed order."""
        common = ("lambda_r", "Phi_f", "Phi_h", "mu")
        if self.idiosyncratic == "constant":
            return common + ("sigma2", "Q_h")
        return common + ("Q_h", "mu_id", "phi_id", "sigma_id")

    def prior_distributions(self, num_assets: int | None = None) -> DFSVParams:
        """The prior of each parameter (``None`` for unused ones).

        ``lambda_r``'s law is built for ``num_assets`` assets (default: the model's ``num_assets``, else
        ``K``, which suffices for checking supports). Element-wise priors are scalar laws.
        """
        n = num_assets or self.num_assets or self.num_factors
        values = {name: self._merged[name] for name in self.param_names}
        values["lambda_r"] = values["lambda_r"].with_num_assets(n)
        return DFSVParams(**values)

    def param_transforms(self) -> dict:
        """Bijection from the unconstrained space of each parameter (used by maximum likelihood)."""
        priors = self.prior_distributions()
        out = {}
        for name in self.param_names:
            if name == "lambda_r":
                out[name] = LoadingsTransform(self.num_factors)
            elif name in ("Phi_f", "Phi_h"):
                out[name] = StationaryTransform()
            else:
                out[name] = dist.transforms.biject_to(getattr(priors, name).support)
        return out

    # --- data and parameter checks ---------------------------------------------------------------
    def validate_data(self, y) -> Panel:
        """Check a return panel (T x N array or DataFrame) and return it as float64 with its labels.

        Raises
        ------
        ValueError
            If ``y`` is not two-dimensional, holds NaN or inf, has fewer than 20 rows, fewer assets than
            factors, a constant column, linearly dependent columns, or a column count other than
            ``num_assets``.
        """
        values, time, columns = as_panel_values(y)
        if columns is not None:
            assets = tuple(str(c) for c in columns)
        else:
            assets = tuple(f"asset{i}" for i in range(values.shape[-1])) if values.ndim == 2 else ()
        if values.ndim != 2:
            raise ValueError(f"y must be a T x N panel of returns (time in rows, assets in columns); got shape "
                             f"{values.shape}")
        num_timesteps, num_assets = values.shape
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = (int(i[0]) for i in np.nonzero(bad))
            when = time[row] if time is not None else row
            kind = "NaN" if np.isnan(values[row, col]) else "inf"
            raise ValueError(f"y holds {int(bad.sum())} non-finite value(s) (first: {kind} at row {when}, column "
                             f"{assets[col]!r}); drop or fill missing returns first (datasets.log_returns keeps "
                             "only dates where every series has a price)")
        if num_timesteps < MIN_OBSERVATIONS:
            raise ValueError(f"y has {num_timesteps} time steps; at least {MIN_OBSERVATIONS} are needed")
        if self.num_assets is not None and num_assets != self.num_assets:
            raise ValueError(f"y has {num_assets} columns but the model was built with num_assets={self.num_assets}")
        if num_assets < self.num_factors:
            raise ValueError(f"y has {num_assets} asset(s) but the model has {self.num_factors} factors: K factors "
                             "are not identified from fewer than K assets; lower num_factors")
        constant = np.flatnonzero(np.ptp(values, axis=0) == 0.0)
        if constant.size:
            raise ValueError(f"column {assets[constant[0]]!r} of y is constant; its variance cannot be estimated")
        centred = values - values.mean(axis=0)
        singular = np.linalg.svd(centred / centred.std(axis=0), compute_uv=False)
        if singular[-1] < 1e-8 * singular[0] * math.sqrt(num_timesteps):
            raise ValueError(f"the columns of y are linearly dependent (the {num_assets} x {num_assets} sample "
                             "covariance is singular), e.g. a series repeated or a cross rate that is a "
                             "combination of others; each asset needs its own idiosyncratic noise — drop the "
                             "redundant series")
        return Panel(values, PanelIndex(time, assets))

    def check_params(self, params: DFSVParams, num_assets: int | None = None) -> DFSVParams:
        """Check the shapes of ``params`` against ``K`` and ``N`` (from ``lambda_r`` unless given)."""
        k = self.num_factors
        lam = params.lambda_r
        if jnp.ndim(lam) != 2 or jnp.shape(lam)[1] != k:
            raise ValueError(f"lambda_r must be an N x {k} matrix; got shape {jnp.shape(lam)}")
        n = jnp.shape(lam)[0]
        if num_assets is not None and n != num_assets:
            raise ValueError(f"lambda_r has {n} rows but the data have {num_assets} assets")
        if n < k:
            raise ValueError(f"lambda_r has {n} rows; K={k} factors need at least {k} assets")
        expected = {"Phi_f": (k, k), "Phi_h": (k, k), "mu": (k,), "Q_h": (k, k), "sigma2": (n,), "mu_id": (n,),
                    "phi_id": (n,), "sigma_id": (n,)}
        for name in self.param_names[1:]:
            shape = jnp.shape(getattr(params, name))
            if shape != expected[name]:
                raise ValueError(f"{name} must have shape {expected[name]} for K={k} factors and N={n} assets; got "
                                 f"{shape}")
        return params

    # --- the latent-state protocol ---------------------------------------------------------------
    def _state_dim(self, params) -> tuple[int, int]:
        return self.num_factors, jnp.shape(params.lambda_r)[0]

    def initial(self, params: DFSVParams) -> JointStateLaw:
        """Law of the first state ``x_1 = (f_1, h_1[, h_id_1])`` (see Notes of :class:`DFSV`)."""
        stationary_h = solve_discrete_lyapunov(params.Phi_h, params.Q_h)
        id_loc = id_scale = None
        if self.idiosyncratic == "sv":
            id_loc, id_scale = params.mu_id, params.sigma_id / jnp.sqrt(1.0 - params.phi_id**2)
        return JointStateLaw(jnp.zeros(self.num_factors), params.mu, jnp.linalg.cholesky(stationary_h),
                             params.Phi_f, id_loc, id_scale, stationary_start=True)

    def transition(self, params: DFSVParams, state_prev, y_prev=None) -> JointStateLaw:
        """Law of ``x_t`` given ``x_{t-1}``: ``h_t`` (and ``h_id_t``) Gaussian AR, then ``f_t | h_t`` Gaussian."""
        k = self.num_factors
        f_prev, h_prev = state_prev[..., :k], state_prev[..., k:2 * k]
        h_loc = params.mu + (h_prev - params.mu) @ params.Phi_h.T
        id_loc = id_scale = None
        if self.idiosyncratic == "sv":
            id_prev = state_prev[..., 2 * k:]
            id_loc = params.mu_id + params.phi_id * (id_prev - params.mu_id)
            id_scale = jnp.broadcast_to(params.sigma_id, id_loc.shape)
        return JointStateLaw(f_prev @ params.Phi_f.T, h_loc, jnp.linalg.cholesky(params.Q_h), params.Phi_f,
                             id_loc, id_scale)

    def emission(self, params: DFSVParams, state):
        """Law of ``r_t`` given the state: ``N(Lambda f_t, Sigma_t)`` with diagonal ``Sigma_t``."""
        k = self.num_factors
        loc = state[..., :k] @ params.lambda_r.T
        return dist.Normal(loc, jnp.sqrt(self._idio_var(params, state[..., 2 * k:]))).to_event(1)

    def _idio_var(self, params, h_id):
        """Idiosyncratic variances: ``sigma2`` or ``exp(h_id)``."""
        if self.idiosyncratic == "constant":
            return params.sigma2
        return jnp.exp(h_id)

    # --- simulation ------------------------------------------------------------------------------
    def simulate(self, params: DFSVParams, num_timesteps: int, key) -> DFSVSimulation:
        """Simulate by the recipe of the model definition, one time step at a time.

        Per step: (1) the factor log-variances ``h_t`` from their VAR(1); (2) factor shocks
        ``nu_t ~ N(0, diag(exp(h_t)))``; (3) ``f_t = Phi_f f_{t-1} + nu_t``; (4) with idiosyncratic SV, each
        ``h_id_t`` from its AR(1); (5) ``eps_t ~ N(0, Sigma_t)``; (6) ``r_t = Lambda f_t + eps_t``.
        """
        params = self.check_params(params)
        k, n = self._state_dim(params)
        shocks = jax.random.normal(key, (4, num_timesteps, max(k, n)))
        out = simulate_from_shocks(self, params, shocks[0, :, :k], shocks[1, :, :k], shocks[2, :, :n],
                                   shocks[3, :, :n])
        return DFSVSimulation(*(None if v is None else np.asarray(v) for v in out))

    # --- the NumPyro program ---------------------------------------------------------------------
    def _sample_params(self, num_assets: int) -> DFSVParams:
        """Parameter sites; the structured matrices are sampled on their unconstrained scale."""
        k, n = self.num_factors, num_assets
        priors = self.prior_distributions(n)
        num_free = num_free_loadings(n, k)
        free = (numpyro.sample("lambda_r_free", priors.lambda_r.free_prior.expand([num_free]).to_event(1))
                if num_free else jnp.zeros(0))
        values = {"lambda_r": numpyro.deterministic("lambda_r", loadings_from_free(free, n, k))}
        for name in ("Phi_f", "Phi_h"):
            unconstrained = numpyro.sample(f"{name}_free", getattr(priors, name).base)
            values[name] = numpyro.deterministic(name, stationary_from_unconstrained(unconstrained))
        values["mu"] = numpyro.sample("mu", priors.mu.expand([k]).to_event(1))
        values["Q_h"] = numpyro.sample("Q_h", priors.Q_h)
        for name in self.param_names[4:]:
            if name != "Q_h":
                values[name] = numpyro.sample(name, getattr(priors, name).expand([n]).to_event(1))
        return DFSVParams(**values)

    def program(self, y):
        """NumPyro program: priors, non-centred log-variance paths, and returns.

        With ``marginalize_factors=True`` the factors are integrated out by a Kalman filter given the
        log-variances (the ``y_marginal`` factor); deterministic ``f_mean``/``f_sd`` are the smoothed mean and
        standard deviation of the factors given each draw's parameters and log-variances. Otherwise the
        factors are sampled (non-centred, ``f_std``) and ``y`` is observed given them.
        """
        num_timesteps, n = y.shape
        k = self.num_factors
        params = self._sample_params(n)
        z_h = numpyro.sample("h_std", dist.Normal(0.0, 1.0).expand([num_timesteps, k]).to_event(2))
        h = numpyro.deterministic("h", logvol_path(params.mu, params.Phi_h, params.Q_h, z_h))
        numpyro.deterministic("vol", jnp.exp(0.5 * h))
        h_id = None
        if self.idiosyncratic == "sv":
            z_id = numpyro.sample("h_id_std", dist.Normal(0.0, 1.0).expand([num_timesteps, n]).to_event(2))
            h_id = numpyro.deterministic("h_id", ar1_paths(params.mu_id, params.phi_id, params.sigma_id, z_id))
            numpyro.deterministic("vol_id", jnp.exp(0.5 * h_id))
        idio_var = self._idio_var(params, h_id)
        if self.marginalize_factors:
            # Kalman filter value, gradient by Fisher's identity from the smoothed moments (kalman.marginal_loglik).
            out = kalman.marginal_loglik(params.lambda_r, params.Phi_f, h, idio_var, y)
            numpyro.factor("y_marginal", out.total)
            numpyro.deterministic("loglik_y", out.loglik)
            numpyro.deterministic("f_mean", out.smoothed_mean)
            numpyro.deterministic("f_sd", jnp.sqrt(jnp.diagonal(out.smoothed_cov, axis1=-2, axis2=-1)))
        else:
            z_f = numpyro.sample("f_std", dist.Normal(0.0, 1.0).expand([num_timesteps, k]).to_event(2))
            f = numpyro.deterministic("f", factor_path(params.Phi_f, h, z_f))
            emission = dist.Normal(f @ params.lambda_r.T, jnp.sqrt(idio_var)).to_event(1)
            numpyro.deterministic("loglik_y", emission.log_prob(y))
            with numpyro.plate("time", num_timesteps):
                numpyro.sample("y", emission, obs=y)
        if self.store_covariance:
            cov = conditional_covariance(params.lambda_r, h, idio_var)
            numpyro.deterministic("cov", cov)
            sd = jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1))
            numpyro.deterministic("corr", cov / (sd[..., :, None] * sd[..., None, :]))

    # --- hooks used by bayesvol.sample -------------------------------------------------------------
    @property
    def latent_sites(self) -> tuple[str, ...]:
        """Sample sites of the program that are not parameters."""
        return (("h_std",) + (("h_id_std",) if self.idiosyncratic == "sv" else ())
                + (() if self.marginalize_factors else ("f_std",)))

    @property
    def hidden_sites(self) -> tuple[str, ...]:
        """Sites left out of the posterior group (unconstrained coordinates and the likelihood terms)."""
        return ("h_std", "h_id_std", "f_std", "lambda_r_free", "Phi_f_free", "Phi_h_free", "loglik_y")

    @property
    def dense_mass_sites(self) -> tuple[str, ...]:
        """The parameters' sample sites, which share one dense mass matrix under NUTS."""
        names = ["lambda_r_free", "Phi_f_free", "Phi_h_free"] + [n for n in self.param_names[3:]]
        if self.num_assets == self.num_factors == 1:
            names.remove("lambda_r_free")
        return tuple(names)

    @property
    def deterministic_sites(self) -> tuple[str, ...]:
        """Deterministic sites of the program (drawn by SVI's predictive)."""
        sites = ["lambda_r", "Phi_f", "Phi_h", "h", "vol", "loglik_y"]
        sites += ["h_id", "vol_id"] if self.idiosyncratic == "sv" else []
        sites += ["f_mean", "f_sd"] if self.marginalize_factors else ["f"]
        sites += ["cov", "corr"] if self.store_covariance else []
        return tuple(sites)

    @property
    def loglik_kind(self) -> str:
        """What ``log_likelihood["y"]`` of the InferenceData holds."""
        if self.marginalize_factors:
            return ("conditional on the log-variances, factors integrated out: log p(r_t | r_{1:t-1}, h_{1:t}, "
                    "theta) from a Kalman filter")
        return "conditional on the latent state: log p(r_t | f_t, h_t, theta)"

    def pointwise_loglik_draws(self, draws: dict, y):
        """Per-draw, per-time log-likelihood (the program's ``loglik_y``), shape (chain, draw, time)."""
        return np.asarray(draws["loglik_y"])

    def predictive_draws(self, draws: dict, key):
        """Replicated returns given each draw's parameters and log-variances, factors drawn afresh."""
        lead = draws["h"].shape[:-2]
        names = list(self.param_names) + ["h"] + (["h_id"] if self.idiosyncratic == "sv" else [])
        flat = {n: jnp.reshape(jnp.asarray(draws[n]), (-1,) + np.shape(draws[n])[len(lead):]) for n in names}
        num_timesteps, k = flat["h"].shape[1:]

        def one(key_i, values):
            params = DFSVParams(**{n: values[n] for n in self.param_names})
            n_assets = params.lambda_r.shape[0]
            key_f, key_e = jax.random.split(key_i)
            f = factor_path(params.Phi_f, values["h"], jax.random.normal(key_f, (num_timesteps, k)))
            idio_var = self._idio_var(params, values.get("h_id"))
            eps = jnp.sqrt(idio_var) * jax.random.normal(key_e, (num_timesteps, n_assets))
            return f @ params.lambda_r.T + eps

        y_rep = jax.vmap(one)(jax.random.split(key, flat["h"].shape[0]), flat)
        return np.asarray(y_rep).reshape(lead + y_rep.shape[1:])

    def site_dims(self, index, y):
        """ArviZ dims and coords: ``time``, ``asset`` (and ``asset2``), ``factor`` (and ``factor2``)."""
        num_timesteps, n = np.shape(y)
        time = index.time if isinstance(index, PanelIndex) else index
        assets = index.assets if isinstance(index, PanelIndex) and index.assets else tuple(range(n))
        factors = [f"f{k + 1}" for k in range(self.num_factors)]
        coords = {"time": np.arange(num_timesteps) if time is None else np.asarray(time), "asset": list(assets),
                  "asset2": list(assets), "factor": factors, "factor2": factors}
        dims = {"y": ["time", "asset"], "lambda_r": ["asset", "factor"], "Phi_f": ["factor", "factor2"],
                "Phi_h": ["factor", "factor2"], "Q_h": ["factor", "factor2"], "mu": ["factor"],
                "sigma2": ["asset"], "mu_id": ["asset"], "phi_id": ["asset"], "sigma_id": ["asset"],
                "h": ["time", "factor"], "vol": ["time", "factor"], "f": ["time", "factor"],
                "f_mean": ["time", "factor"], "f_sd": ["time", "factor"], "h_id": ["time", "asset"],
                "vol_id": ["time", "asset"], "cov": ["time", "asset", "asset2"], "corr": ["time", "asset", "asset2"]}
        return dims, coords

    # --- maximum likelihood ----------------------------------------------------------------------
    def start_values(self, y) -> list[dict]:
        """Start values for maximum likelihood from principal components of ``y``.

        The leading ``K`` eigenvectors of the sample covariance are rotated to the identified form (an LQ
        factorisation of their first ``K`` rows), giving loadings, factor variances (``mu``) and residual
        variances; ``Phi_f = 0`` and a few persistence levels for ``Phi_h``.
        """
        y = np.asarray(y, dtype=np.float64)
        k = self.num_factors
        loadings, factor_var, resid_var = principal_factors(y, k)
        starts = []
        for persistence, shock_var in ((0.95, 0.05), (0.98, 0.01), (0.8, 0.2)):
            start = {"lambda_r": loadings, "Phi_f": np.zeros((k, k)), "Phi_h": persistence * np.eye(k),
                     "mu": np.log(factor_var), "Q_h": shock_var * np.eye(k)}
            if self.idiosyncratic == "constant":
                start["sigma2"] = resid_var
            else:
                start.update(mu_id=np.log(resid_var), phi_id=np.full(y.shape[1], persistence),
                             sigma_id=np.full(y.shape[1], math.sqrt(shock_var)))
            starts.append(start)
        return starts

    def nuts_options(self, y, dense_mass: bool = True) -> dict:
        """NUTS settings used by :func:`bayesvol.sample`: a start and an initial mass matrix (marginalised program).

        Start (``init_strategy``): the parameters are the first of :meth:`start_values` (principal
        components); the log-variance paths are smoothed by the Bellman filter at those parameters
        (:func:`bayesvol.models.dfsv_filters.filter_states`) and mapped to the program's standardised
        innovations ``h_std`` (and ``h_id_std``). Real-valued sites get a jitter of standard deviation 0.1
        drawn with each chain's key, so chains start apart.

        Mass matrix (``inverse_mass_matrix``, with ``dense_mass``): the inverse of the curvature of the
        negative log density in the parameters' unconstrained coordinates at that start, log-variance
        innovations held fixed. The curvature is the complete-data one (the derivative of the
        Fisher-identity gradient with the factors' smoothing moments held fixed), at least the observed one,
        so the initial momentum scales err on the small side. Warm-up adapts both further.

        Without them warm-up starts at ``h = mu`` with a unit mass matrix, and on ``T = 1000`` its first
        windows run at the maximum tree depth with step sizes near 1e-3. The full-latent program
        (``marginalize_factors=False``) keeps the defaults (an empty dict).
        """
        if not self.marginalize_factors:
            return {}
        init = self._nuts_init_strategy(y)
        if not dense_mass:
            return {"init_strategy": init}
        return {"init_strategy": init, "inverse_mass_matrix": self._initial_inverse_mass(y, init)}

    def _initial_inverse_mass(self, y, init) -> dict:
        from numpyro.infer.util import initialize_model

        y = jnp.asarray(y, dtype=jnp.float64)
        info = initialize_model(jax.random.PRNGKey(0), self.program, model_args=(y,), init_strategy=init)
        sites = tuple(n for n in self.dense_mass_sites if n in info.param_info.z)
        point = info.param_info.z
        flat, unravel = jax.flatten_util.ravel_pytree({n: point[n] for n in sites})

        def gradient(x):
            return jax.grad(lambda x: info.potential_fn({**point, **unravel(x)}))(x)

        curvature = np.asarray(jax.jit(jax.jacfwd(gradient))(flat))
        curvature = 0.5 * (curvature + curvature.T)
        eigval, eigvec = np.linalg.eigh(curvature)
        if not np.all(np.isfinite(eigval)) or eigval.max() <= 0:
            return {}
        # Directions of non-positive curvature get the scale of the flattest positive one.
        eigval = np.maximum(eigval, eigval[eigval > 0].min())
        return {sites: jnp.asarray((eigvec / eigval) @ eigvec.T)}

    def _nuts_init_strategy(self, y):
        from bayesvol.models.dfsv_filters import filter_states

        y = np.asarray(y, dtype=np.float64)
        k, n = self.num_factors, y.shape[1]
        start = self.start_values(y)[0]
        states = filter_states(self, start, y, method="bellman")
        mu, phi_h, q_h = (np.asarray(start[name]) for name in ("mu", "Phi_h", "Q_h"))
        h = states.h_smoothed
        chol_q = np.linalg.cholesky(q_h)
        chol_0 = np.linalg.cholesky(np.asarray(solve_discrete_lyapunov(phi_h, q_h)))
        z_h = np.vstack([np.linalg.solve(chol_0, h[0] - mu),
                         np.linalg.solve(chol_q, (h[1:] - mu - (h[:-1] - mu) @ phi_h.T).T).T])
        rows, cols = np.nonzero(np.tri(n, k, -1, dtype=bool))
        values = {"h_std": z_h, "mu": mu, "Q_h": q_h, "lambda_r_free": np.asarray(start["lambda_r"])[rows, cols],
                  "Phi_f_free": np.asarray(unconstrained_from_stationary(start["Phi_f"])),
                  "Phi_h_free": np.asarray(unconstrained_from_stationary(phi_h))}
        if self.idiosyncratic == "constant":
            values["sigma2"] = np.asarray(start["sigma2"])
        else:
            mu_id, phi_id, sigma_id = (np.asarray(start[name]) for name in ("mu_id", "phi_id", "sigma_id"))
            h_id = states.h_id_smoothed
            values.update(mu_id=mu_id, phi_id=phi_id, sigma_id=sigma_id,
                          h_id_std=np.vstack([(h_id[0] - mu_id) * np.sqrt(1.0 - phi_id**2) / sigma_id,
                                              (h_id[1:] - mu_id - phi_id * (h_id[:-1] - mu_id)) / sigma_id]))
        return partial(_init_near, values={name: jnp.asarray(v) for name, v in values.items()})

    def describe(self) -> str:
        """One line naming the model, for titles and attrs."""
        idio = "constant idiosyncratic variances" if self.idiosyncratic == "constant" else "idiosyncratic SV"
        return f"DFSV (K={self.num_factors} factor{'s' if self.num_factors > 1 else ''}, {idio})"


# Sites of the program with real support, where a start value can be jittered freely.
_REAL_SITES = ("h_std", "h_id_std", "mu", "mu_id", "lambda_r_free", "Phi_f_free", "Phi_h_free")


def _init_near(site=None, values=None, jitter: float = 0.1):
    """Init strategy: ``values[name]`` (plus N(0, jitter^2) noise on real-valued sites, from the chain's key);
    sites not in ``values`` start at their prior median."""
    if site is None:
        return partial(_init_near, values=values, jitter=jitter)
    if site["type"] == "sample" and not site["is_observed"] and site["name"] in values:
        value = values[site["name"]]
        key = site["kwargs"].get("rng_key")
        if site["name"] in _REAL_SITES and key is not None:
            value = value + jitter * jax.random.normal(key, jnp.shape(value))
        return value
    return init_to_median(site, num_samples=15)


# --- the joint state law (latent-state protocol) -------------------------------------------------
class JointStateLaw(dist.Distribution):
    r"""Law of the joint state :math:`x_t = (f_t, h_t[, h^{id}_t])`: :math:`h_t` Gaussian, then :math:`f_t \mid h_t`.

    :math:`h_t \sim N(h_{loc}, LL')`, :math:`h^{id}_t \sim N(id_{loc}, \mathrm{diag}(id_{scale}^2))` and
    :math:`f_t \mid h_t \sim N(f_{loc}, \mathrm{diag}(e^{h_t}))`, or with ``stationary_start``
    :math:`N(0, \Gamma_f(h_t))`, :math:`\Gamma_f(h) = \Phi_f \Gamma_f(h) \Phi_f' + \mathrm{diag}(e^{h})`.
    """

    arg_constraints = {}
    support = constraints.real_vector
    pytree_data_fields = ("f_loc", "h_loc", "h_scale_tril", "Phi_f", "id_loc", "id_scale")
    pytree_aux_fields = ("stationary_start",)

    def __init__(self, f_loc, h_loc, h_scale_tril, Phi_f, id_loc=None, id_scale=None, *, stationary_start=False,
                 validate_args=None):
        self.f_loc, self.h_loc, self.h_scale_tril, self.Phi_f = f_loc, h_loc, h_scale_tril, Phi_f
        self.id_loc, self.id_scale, self.stationary_start = id_loc, id_scale, stationary_start
        k = jnp.shape(h_loc)[-1]
        n_id = 0 if id_loc is None else jnp.shape(id_loc)[-1]
        shapes = [jnp.shape(f_loc)[:-1], jnp.shape(h_loc)[:-1]] + ([] if id_loc is None else [jnp.shape(id_loc)[:-1]])
        super().__init__(batch_shape=jnp.broadcast_shapes(*shapes), event_shape=(2 * k + n_id,),
                         validate_args=validate_args)

    def _factor_chol(self, h):
        if self.stationary_start:
            cov = solve_discrete_lyapunov(self.Phi_f, jnp.exp(h)[..., :, None] * jnp.eye(h.shape[-1]))
            return jnp.linalg.cholesky(cov)
        return jnp.exp(0.5 * h)[..., :, None] * jnp.eye(h.shape[-1])

    def sample(self, key, sample_shape=()):
        k = jnp.shape(self.h_loc)[-1]
        shape = tuple(sample_shape) + self.batch_shape
        key_h, key_f, key_id = jax.random.split(key, 3)
        h = self.h_loc + jnp.einsum("...ij,...j->...i", self.h_scale_tril, jax.random.normal(key_h, shape + (k,)))
        f = self.f_loc + jnp.einsum("...ij,...j->...i", self._factor_chol(h), jax.random.normal(key_f, shape + (k,)))
        parts = [jnp.broadcast_to(f, shape + (k,)), h]
        if self.id_loc is not None:
            n_id = jnp.shape(self.id_loc)[-1]
            parts.append(self.id_loc + self.id_scale * jax.random.normal(key_id, shape + (n_id,)))
        return jnp.concatenate(parts, axis=-1)

    def log_prob(self, value):
        k = jnp.shape(self.h_loc)[-1]
        f, h = value[..., :k], value[..., k:2 * k]
        out = dist.MultivariateNormal(self.h_loc, scale_tril=self.h_scale_tril).log_prob(h)
        out = out + dist.MultivariateNormal(self.f_loc, scale_tril=self._factor_chol(h)).log_prob(f)
        if self.id_loc is not None:
            out = out + dist.Normal(self.id_loc, self.id_scale).log_prob(value[..., 2 * k:]).sum(-1)
        return out


# --- paths and moments ---------------------------------------------------------------------------
def logvol_path(mu, Phi_h, Q_h, z):
    """Factor log-variance path from standard-normal innovations ``z`` (T, K), non-centred.

    ``h_1 = mu + chol(Gamma_h) z_1`` and ``h_t = mu + Phi_h (h_{t-1} - mu) + chol(Q_h) z_t``.
    """
    first = mu + jnp.linalg.cholesky(solve_discrete_lyapunov(Phi_h, Q_h)) @ z[0]
    shocks = z[1:] @ jnp.linalg.cholesky(Q_h).T

    def step(h_prev, shock):
        h_t = mu + Phi_h @ (h_prev - mu) + shock
        return h_t, h_t

    _, rest = lax.scan(step, first, shocks)
    return jnp.concatenate([first[None], rest])


def ar1_paths(mu, phi, sigma, z):
    """Independent stationary AR(1) paths, one per column of ``z`` (T, N), non-centred."""
    first = mu + sigma / jnp.sqrt(1.0 - phi**2) * z[0]

    def step(x_prev, z_t):
        x_t = mu + phi * (x_prev - mu) + sigma * z_t
        return x_t, x_t

    _, rest = lax.scan(step, first, z[1:])
    return jnp.concatenate([first[None], rest])


def factor_path(Phi_f, h, z):
    """Factor path given the log-variances, non-centred.

    ``f_1 = chol(Gamma_f(h_1)) z_1`` and ``f_t = Phi_f f_{t-1} + e^{h_t/2} z_t``.
    """
    k = h.shape[-1]
    first = jnp.linalg.cholesky(solve_discrete_lyapunov(Phi_f, jnp.diag(jnp.exp(h[0])))) @ z[0]

    def step(f_prev, inputs):
        h_t, z_t = inputs
        f_t = Phi_f @ f_prev + jnp.exp(0.5 * h_t) * z_t
        return f_t, f_t

    _, rest = lax.scan(step, first, (h[1:], z[1:]))
    return jnp.concatenate([first[None], rest]).reshape(-1, k)


def simulate_from_shocks(model: DFSV, params: DFSVParams, z_h, z_f, z_id, z_eps):
    """DFSV paths from standard-normal shocks (each (T, K) or (T, N)), following the simulation recipe.

    Returns ``(y, h, f, h_id)`` with ``h_id`` ``None`` under constant idiosyncratic variances.
    """
    h = logvol_path(params.mu, params.Phi_h, params.Q_h, z_h)
    f = factor_path(params.Phi_f, h, z_f)
    h_id = None
    if model.idiosyncratic == "sv":
        h_id = ar1_paths(params.mu_id, params.phi_id, params.sigma_id, z_id)
    eps = jnp.sqrt(model._idio_var(params, h_id)) * z_eps
    return f @ params.lambda_r.T + eps, h, f, h_id


def conditional_covariance(lambda_r, h, idio_var):
    r"""``Lambda diag(e^{h_t}) Lambda' + Sigma_t`` per time step: the covariance of :math:`r_t` given
    :math:`f_{t-1}` and the log-variances, shape (T, N, N)."""
    common = jnp.einsum("ik,tk,jk->tij", lambda_r, jnp.exp(h), lambda_r)
    idio = jnp.broadcast_to(idio_var, common.shape[:-1])
    return common + idio[..., :, None] * jnp.eye(common.shape[-1])


def principal_factors(y, num_factors: int):
    """Identified loadings, factor variances and residual variances from principal components of ``y``."""
    k = num_factors
    cov = np.cov(y, rowvar=False).reshape(y.shape[1], y.shape[1])
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1][:k]
    pcs = eigvec[:, order] * np.sqrt(np.maximum(eigval[order], 1e-12))
    # LQ factorisation of the first K rows: top = L Q with L lower-triangular, so pcs Q' is identified up to scale.
    q_t, r_t = np.linalg.qr(pcs[:k].T)
    lower = r_t.T
    signs = np.sign(np.diag(lower))
    signs[signs == 0] = 1.0
    rotated = pcs @ q_t * signs
    scale = np.diag(lower) * signs
    if np.any(np.abs(scale) < 1e-6 * np.sqrt(np.max(np.diag(cov)))):
        warnings.warn("the first K assets carry (almost) no distinct factor in the sample; with lambda_r "
                      "lower-triangular in its first K rows, order the columns so that asset k loads on factor k",
                      UserWarning, stacklevel=3)
        scale = np.where(np.abs(scale) < 1e-6, 1e-3, scale)
    loadings = rotated / scale
    # Impose the identification exactly (the product above leaves rounding noise above the diagonal).
    loadings[:k] = np.tril(loadings[:k], -1) + np.eye(k)
    factor_var = scale**2
    common = (loadings * factor_var) @ loadings.T
    resid_var = np.maximum(np.diag(cov) - np.diag(common), 0.05 * np.diag(cov))
    return loadings, factor_var, resid_var
