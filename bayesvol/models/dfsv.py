"""Dynamic factor stochastic volatility (DFSV): VAR(1) factors whose log-variances follow a VAR(1)."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

import bayesvol.models._dfsv_kalman as kalman
from bayesvol._validation import as_panel_values
from bayesvol.distributions.priors import ScaledBeta
from bayesvol.models._base import as_params, simulation_inputs
from bayesvol.models._dfsv_data import check_dfsv_panel
from bayesvol.models._dfsv_priors import (
    IdentifiedLoadings,
    LoadingsTransform,
    ScaledLKJ,
    StationaryMatrix,
    StationaryTransform,
    loadings_from_free,
    num_free_loadings,
    stationary_from_unconstrained,
)
from bayesvol.models._dfsv_state import (
    JointStateLaw,
    conditional_covariance,
    factor_mean,
    factor_path,
    idiosyncratic_variance,
    log_variance_mean,
    log_variance_path,
    log_variance_var,
    rescaled_params,
    simulate_from_shocks,
)
from bayesvol.models._panel_gaps import has_missing_values
from bayesvol.models._protocol import LatentStateModelBase

__all__ = ["DFSV", "DFSVParams", "DFSVSimulation", "default_priors"]

IDIOSYNCRATIC = ("constant", "sv")


class DFSVParams(NamedTuple):
    """Parameters of [`DFSV`][bayesvol.models.DFSV]; the idiosyncratic ones not used by a model are ``None``.

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
    r"""Simulated DFSV data: returns ``y`` (T, N), factor log-variances ``h`` (T, K), factors ``f`` (T, K), with
    idiosyncratic SV the idiosyncratic log-variances ``h_id`` (T, N) (else ``None``), and ``covariance``
    (T, N, N), the conditional covariance $\Lambda\,\mathrm{diag}(e^{h_t})\Lambda' + \Sigma_t$ of
    $r_t$ given $f_{t-1}$ and the log-variances."""

    y: np.ndarray
    h: np.ndarray
    f: np.ndarray
    h_id: np.ndarray | None = None
    covariance: np.ndarray | None = None


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

    * ``lambda_r``: free loadings iid $N(0, 1)$ (`IdentifiedLoadings`);
    * ``Phi_f``: $\Phi_f = A\,\mathrm{chol}(I + AA')^{-1}$ with $A_{ij} \sim N(0, 0.5^2)$, so
      factor autocorrelation is centred on zero (`StationaryMatrix`);
    * ``Phi_h``: the same map with $A_{kk} \sim N(3, 2^2)$ (a scalar $\phi = a/\sqrt{1+a^2}$
      has prior median 0.95) and off-diagonal $A_{ij} \sim N(0, 0.5^2)$;
    * ``mu``: $N(0, 10^2)$ per factor, as the SV model's $\mu$;
    * ``Q_h``: `ScaledLKJ`, shock standard deviations $\mathrm{HalfNormal}(1)$ (the SV model's
      $\sigma$) and an $\mathrm{LKJ}(2)$ correlation;
    * ``sigma2``: $\mathrm{InverseGamma}(2, 0.1)$ per asset, which keeps idiosyncratic variances away
      from zero (Heywood cases);
    * ``mu_id``, ``phi_id``, ``sigma_id``: the SV model's defaults, $N(0, 10^2)$,
      $(\phi + 1)/2 \sim \mathrm{Beta}(5, 1.5)$, $\mathrm{HalfNormal}(1)$.
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
class DFSV(LatentStateModelBase):
    r"""Dynamic factor stochastic volatility model for an ``N``-asset return panel with ``K`` factors.

    Parameters
    ----------
    num_factors : int
        ``K``, at least 1 and at most the number of assets.
    idiosyncratic : {"constant", "sv"}
        Constant idiosyncratic variances ``sigma2`` or an AR(1) log-variance per asset (``mu_id``,
        ``phi_id``, ``sigma_id``).
    priors : mapping, optional
        Parameter name -> NumPyro distribution, overriding `default_priors`. Scalar laws apply to each
        element of ``mu``, ``sigma2``, ``mu_id``, ``phi_id``, ``sigma_id``; for ``lambda_r`` a scalar law is
        the prior of each free loading; for ``Phi_f``/``Phi_h`` a real-support law is the prior of the
        unconstrained matrix $A$ (see `StationaryMatrix`); ``Q_h`` takes a law over covariance
        matrices such as `ScaledLKJ`.
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

    $$
    r_t &= \Lambda f_t + \varepsilon_t, \qquad \varepsilon_t \sim N(0, \Sigma_t),\quad
    \Sigma_t = \mathrm{diag}(\sigma^2) \text{ or } \mathrm{diag}(e^{h^{id}_{1,t}}, \dots, e^{h^{id}_{N,t}}), \\
    f_t &= \Phi_f f_{t-1} + \nu_t, \qquad \nu_t \sim N(0, \mathrm{diag}(e^{h_{1,t}}, \dots, e^{h_{K,t}})), \\
    h_t &= \mu + \Phi_h (h_{t-1} - \mu) + \eta_t, \qquad \eta_t \sim N(0, Q_h), \\
    h^{id}_{i,t} &= \mu^{id}_i + \phi^{id}_i (h^{id}_{i,t-1} - \mu^{id}_i) + \sigma^{id}_i \eta^{id}_{i,t}.
    $$

    Start: $h_1$ from its stationary law $N(\mu, \Gamma_h)$, $\Gamma_h = \Phi_h \Gamma_h \Phi_h'
    + Q_h$; $f_1 \mid h_1 \sim N(0, \Gamma_f(h_1))$ with $\Gamma_f(h) = \Phi_f \Gamma_f(h) \Phi_f' +
    \mathrm{diag}(e^{h})$, the stationary law of the factors were their log-variances held at $h_1$;
    $h^{id}_{i,1}$ from its stationary law.

    Identification: $\Lambda$ is lower-triangular in its first ``K`` rows with a unit diagonal, so factor
    ``k`` is measured in the units of asset ``k`` and asset ``k`` does not load on factors after ``k``. The
    first ``K`` columns of the data must therefore be assets that each carry a distinct factor. Stationarity
    of $\Phi_f$ and $\Phi_h$ is enforced by `StationaryTransform`.

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
    # True once bound to data with missing returns (bind_data), so that compiled filters know it from the model.
    has_missing: bool = field(default=False, init=False, repr=False)

    params_type = DFSVParams
    supports_missing = True
    # identified loadings and stationary VAR matrices: structured transforms, not one bijection per entry
    elementwise_transforms = False

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

    def param_ndims(self) -> dict[str, int]:
        """Matrices ``lambda_r``, ``Phi_f``, ``Phi_h``, ``Q_h``; every other parameter a vector (its priors are
        element-wise)."""
        return {name: 2 if name in ("lambda_r", "Phi_f", "Phi_h", "Q_h") else 1 for name in self.param_names}

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
    def bind_data(self, y):
        """The model flagged ``has_missing`` when ``y`` holds missing returns (NaN)."""
        bound = copy.copy(self)
        object.__setattr__(bound, "has_missing", has_missing_values(as_panel_values(y)[0]))
        return bound

    def validate_data(self, y) -> Panel:
        """Check a return panel (T x N array or DataFrame) and return it as float64 with its labels.

        Raises
        ------
        ValueError
            If ``y`` is not two-dimensional, holds inf (NaN is a missing return), has fewer than 20 rows,
            fewer assets than factors, a constant column, linearly dependent columns, or a column count other than
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
        check_dfsv_panel(values, time, assets, self.num_factors, self.num_assets)
        return Panel(values, PanelIndex(time, assets))

    def check_parameters(self, params: DFSVParams, num_assets: int | None = None) -> DFSVParams:
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
        """Law of the first state ``x_1 = (f_1, h_1[, h_id_1])`` (see Notes of [`DFSV`][bayesvol.models.DFSV])."""
        var = log_variance_var(params, self.idiosyncratic == "sv")
        return JointStateLaw(jnp.zeros(self.num_factors), var.mean, jnp.linalg.cholesky(var.stationary_cov),
                             params.Phi_f, stationary_start=True)

    def transition(self, params: DFSVParams, state_prev, y_prev=None) -> JointStateLaw:
        """Law of ``x_t`` given ``x_{t-1}``: ``h_t`` (and ``h_id_t``) Gaussian AR, then ``f_t | h_t`` Gaussian."""
        k = self.num_factors
        var = log_variance_var(params, self.idiosyncratic == "sv")
        f_loc = factor_mean(params.Phi_f, state_prev[..., :k])
        return JointStateLaw(f_loc, log_variance_mean(var, state_prev[..., k:]), jnp.linalg.cholesky(var.cov),
                             params.Phi_f)

    def emission(self, params: DFSVParams, state):
        """Law of ``r_t`` given the state: ``N(Lambda f_t, Sigma_t)`` with diagonal ``Sigma_t``."""
        k = self.num_factors
        loc = state[..., :k] @ params.lambda_r.T
        return dist.Normal(loc, jnp.sqrt(self._idio_var(params, state[..., 2 * k:]))).to_event(1)

    def _idio_var(self, params, h_id):
        """Idiosyncratic variances: ``sigma2`` or ``exp(h_id)``."""
        return idiosyncratic_variance(params, h_id if self.idiosyncratic == "sv" else None)

    # --- simulation ------------------------------------------------------------------------------
    def simulate(self, params: DFSVParams, num_timesteps: int, key) -> DFSVSimulation:
        """Simulate by the recipe of the model definition, one time step at a time.

        Per step: (1) the factor log-variances ``h_t`` from their VAR(1); (2) factor shocks
        ``nu_t ~ N(0, diag(exp(h_t)))``; (3) ``f_t = Phi_f f_{t-1} + nu_t``; (4) with idiosyncratic SV, each
        ``h_id_t`` from its AR(1); (5) ``eps_t ~ N(0, Sigma_t)``; (6) ``r_t = Lambda f_t + eps_t``.
        ``key`` is an integer seed, ``None`` (a fresh random seed) or a JAX key.
        """
        num_timesteps, key = simulation_inputs(num_timesteps, key)
        params = self.check_parameters(as_params(self, params))
        k, n = self._state_dim(params)
        shocks = jax.random.normal(key, (4, num_timesteps, max(k, n)))
        y, h, f, h_id = simulate_from_shocks(self, params, shocks[0, :, :k], shocks[1, :, :k], shocks[2, :, :n],
                                             shocks[3, :, :n])
        covariance = conditional_covariance(params.lambda_r, h, self._idio_var(params, h_id))
        return DFSVSimulation(*(None if v is None else np.asarray(v) for v in (y, h, f, h_id, covariance)))

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
        sv = self.idiosyncratic == "sv"
        z = numpyro.sample("h_std", dist.Normal(0.0, 1.0).expand([num_timesteps, k]).to_event(2))
        if sv:
            z_id = numpyro.sample("h_id_std", dist.Normal(0.0, 1.0).expand([num_timesteps, n]).to_event(2))
            z = jnp.concatenate([z, z_id], -1)
        g = log_variance_path(log_variance_var(params, sv), z)
        h = numpyro.deterministic("h", g[:, :k])
        numpyro.deterministic("vol", jnp.exp(0.5 * h))
        h_id = None
        if sv:
            h_id = numpyro.deterministic("h_id", g[:, k:])
            numpyro.deterministic("vol_id", jnp.exp(0.5 * h_id))
        idio_var = self._idio_var(params, h_id)
        if self.marginalize_factors:
            # Kalman filter value, gradient by Fisher's identity from the smoothed moments (kalman.marginal_loglik).
            out = kalman.marginal_loglik(params.lambda_r, params.Phi_f, h, idio_var, y)
            numpyro.factor("y_marginal", out.log_likelihood)
            numpyro.deterministic("loglik_y", out.pointwise_log_likelihood)
            numpyro.deterministic("f_mean", out.smoothed_mean)
            numpyro.deterministic("f_sd", jnp.sqrt(jnp.diagonal(out.smoothed_cov, axis1=-2, axis2=-1)))
        else:
            z_f = numpyro.sample("f_std", dist.Normal(0.0, 1.0).expand([num_timesteps, k]).to_event(2))
            f = numpyro.deterministic("f", factor_path(params.Phi_f, h, z_f))
            # Missing returns (NaN) are masked per element: the observed entries' density given f.
            observed = ~jnp.isnan(y)
            emission = dist.Normal(f @ params.lambda_r.T, jnp.sqrt(idio_var)).mask(observed).to_event(1)
            y_filled = jnp.where(observed, y, 0.0)
            numpyro.deterministic("loglik_y", emission.log_prob(y_filled))
            with numpyro.plate("time", num_timesteps):
                numpyro.sample("y", emission, obs=y_filled)
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
        """What ``log_likelihood["y"]`` of the posterior DataTree holds."""
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
    data_scale_kind = "common"  # one scale for all assets (see rescaled_params)
    rescale_params = rescaled_params
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

    def describe(self) -> str:
        """One line naming the model, for titles and attrs."""
        idio = "constant idiosyncratic variances" if self.idiosyncratic == "constant" else "idiosyncratic SV"
        return f"DFSV (K={self.num_factors} factor{'s' if self.num_factors > 1 else ''}, {idio})"


def principal_factors(y, num_factors: int):
    """Identified loadings, factor variances and residual variances from principal components of ``y``."""
    k = num_factors
    # With missing returns, the covariance of each pair over the rows where both are observed.
    cov = (pd.DataFrame(y).cov().to_numpy() if np.isnan(y).any() else np.cov(y, rowvar=False)).reshape(
        y.shape[1], y.shape[1])
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
