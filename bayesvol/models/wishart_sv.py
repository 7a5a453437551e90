r"""Wishart multivariate stochastic volatility (Philipov & Glickman 2006), estimated by EIS, PF, NUTS or SVI."""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jax import lax
from jax.scipy.linalg import cho_solve, solve_triangular
from numpyro.distributions import biject_to, constraints

from bayesvol._validation import MIN_OBSERVATIONS, as_panel_values
from bayesvol.distributions.priors import ShiftedExponential
from bayesvol.distributions.wishart import matrix_power_psd, wishart_sv_scale
from bayesvol.filters.eis_wishart import EISOutput, wishart_eis
from bayesvol.inference.diagnostics import ConvergenceWarning
from bayesvol.inference.mle import register_fitter, register_loglik
from bayesvol.models import _base
from bayesvol.models._wishart_linalg import LOG_2PI, logdet_from_cholesky, scale_matrix, steady_state

__all__ = ["WishartSV", "WishartSVParams", "WishartSVSimulation", "reference_params"]

_LOGGER = logging.getLogger(__name__)

LOGLIK_KIND = "conditional: log p(y_t | Omega_t, theta), given the latent precision path"

# Seed 003 prints this matrix (from Philipov & Glickman's estimates); with d = 0.5 and nu = 14 it behaves as
# the *inverse* of A in returns measured as fractions: A = inv(_SEED_MATRIX) gives standard deviations of a
# few percent (0.02 to 0.05), like the seed's simulated monthly returns.
_SEED_MATRIX = np.array([[0.0238, 0.0057, 0.0145], [0.0057, 0.0239, 0.0056], [0.0145, 0.0056, 0.0330]])


class WishartSVParams(NamedTuple):
    """Parameters of :class:`WishartSV`: degrees of freedom ``nu``, persistence ``d``, k x k matrix ``A``."""

    nu: jax.Array
    d: jax.Array
    A: jax.Array


class WishartSVSimulation(NamedTuple):
    """Simulated returns ``y`` (T, k) and latent precision matrices ``precision`` (T, k, k)."""

    y: np.ndarray
    precision: np.ndarray

    @property
    def covariance(self) -> np.ndarray:
        r"""Conditional covariance matrices :math:`\Omega_t^{-1}`, shape (T, k, k)."""
        return np.linalg.inv(self.precision)


def reference_params(units: str = "fraction") -> dict:
    r"""Parameters of the simulation study in seed 003: :math:`d = 0.5`, :math:`\nu = 14`, 3 x 3 ``A``.

    Parameters
    ----------
    units : {"fraction", "percent"}
        Units of the returns the parameters are meant for. Scaling returns by :math:`s` scales
        :math:`\Omega_t` by :math:`s^{-2}` and, through :math:`S_{t-1} \propto A\,\Omega_{t-1}^d`, ``A`` by
        :math:`s^{2(d-1)}`; for percent returns (:math:`s = 100`, :math:`d = 0.5`) ``A`` is divided by 100.

    Returns
    -------
    dict
        ``{"nu": 14.0, "d": 0.5, "A": inv(M) * scale}`` with ``M`` the matrix printed in the seed.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.models.wishart_sv import reference_params
    >>> np.round(reference_params()["A"][0], 1)
    array([ 58.9,  -8.3, -24.5])
    """
    if units not in ("fraction", "percent"):
        raise ValueError(f"units must be 'fraction' or 'percent', got {units!r}")
    d, nu = 0.5, 14.0
    scale = 1.0 if units == "fraction" else 100.0 ** (2.0 * (d - 1.0))
    return {"nu": nu, "d": d, "A": np.linalg.inv(_SEED_MATRIX) * scale}


def default_priors(num_assets: int | None) -> dict:
    r"""Default priors for k = ``num_assets`` assets (percent returns in mind; each replaceable).

    ``nu - (k - 1) ~ Exponential(0.1)`` (support :math:`\nu > k - 1`), ``d ~ Beta(2, 2)``,
    ``A ~ Wishart(k + 2, I / (k + 2))`` (prior mean the identity: :math:`\bar\Omega \approx A^{1/(1-d)}`,
    so precisions of order one, i.e. daily percent returns). Without ``num_assets`` the prior on ``A``
    is an improper flat law on positive-definite matrices (only its support is used until the data fix k).
    """
    k = num_assets
    if k is None:
        return {"nu": ShiftedExponential(0.1, 0.0), "d": dist.Beta(2.0, 2.0),
                "A": dist.ImproperUniform(constraints.positive_definite, (), (1, 1))}
    return {"nu": ShiftedExponential(0.1, float(k - 1)), "d": dist.Beta(2.0, 2.0),
            "A": dist.Wishart(float(k + 2), scale_matrix=jnp.eye(k) / (k + 2))}


def _bartlett(diag, offdiag, k):
    rows, cols = jnp.tril_indices(k, -1)
    lower = jnp.zeros(diag.shape[:-1] + (k, k), dtype=diag.dtype).at[..., rows, cols].set(offdiag)
    return lower + jnp.sqrt(diag)[..., None, :] * jnp.eye(k, dtype=diag.dtype)


@dataclass(frozen=True)
class WishartSV:
    r"""Wishart multivariate stochastic volatility model.

    Parameters
    ----------
    num_assets : int, optional
        Number of series k. Optional: it is taken from the data or from ``A``; give it to fix the default
        prior of ``A`` and the constraint :math:`\nu > k - 1` before any data are seen.
    priors : mapping, optional
        Parameter name -> NumPyro distribution, overriding :func:`default_priors` (``A``'s prior is a
        distribution over k x k positive-definite matrices, e.g. ``numpyro.distributions.Wishart``).

    Notes
    -----
    .. math::

        y_t \mid \Omega_t &\sim N_k(0, \Omega_t^{-1}), \\
        \Omega_t \mid \Omega_{t-1} &\sim W_k(\nu, S_{t-1}), \qquad
        S_{t-1} = \tfrac{1}{\nu}\, A^{1/2}\, \Omega_{t-1}^{d}\, A^{1/2\prime},

    with :math:`\nu > k - 1`, :math:`0 < d < 1`, :math:`A` symmetric positive definite and
    :math:`A^{1/2}` its lower Cholesky factor (as in seed 003, eq. 3; the symmetric root gives a different
    model unless A is diagonal). :math:`\Omega^{d}` is the matrix power by eigendecomposition, and
    :math:`E[\Omega_t \mid \Omega_{t-1}] = A^{1/2}\Omega_{t-1}^d A^{1/2\prime}`. The Wishart density is
    :math:`|\Omega|^{(\nu-k-1)/2} \exp\{-\mathrm{tr}(S^{-1}\Omega)/2\} / (2^{\nu k/2}|S|^{\nu/2}\Gamma_k(\nu/2))`.

    *Start.* :math:`\Omega_0 = \bar\Omega`, the fixed point of the conditional-mean map
    :math:`\bar\Omega = A^{1/2}\bar\Omega^{d}A^{1/2\prime}` (unique for :math:`0<d<1`; see
    :func:`bayesvol.models._wishart_linalg.steady_state`), so :math:`\Omega_1 \sim W_k(\nu, \bar\Omega/\nu)`
    has mean :math:`\bar\Omega`. This plays the role of the stationary start of the univariate SV model and
    adds no parameters. For k = 1 the model is a gamma-process SV model:
    :math:`\omega_t \mid \omega_{t-1} \sim \mathrm{Gamma}(\nu/2, \mathrm{rate} = \nu / (2 a \omega_{t-1}^d))`.

    *Units.* Scaling returns by s maps A to :math:`s^{2(d-1)}A` (see :func:`reference_params`).

    *Forecasts.* :math:`E[\Omega_{T+1}^{-1} \mid \Omega_T] = S_T^{-1}/(\nu - k - 1)` (for :math:`\nu > k+1`),
    averaged over the smoothing law of :math:`\Omega_T` (EIS), the filtering law (particle filter) or the
    posterior (NUTS/SVI).

    Examples
    --------
    >>> import bayesvol
    >>> from bayesvol.models.wishart_sv import reference_params
    >>> model = bayesvol.models.WishartSV()
    >>> sim = bayesvol.simulate(model, reference_params("percent"), num_timesteps=50, seed=0)
    >>> sim.y.shape, sim.precision.shape
    ((50, 3), (50, 3, 3))
    """

    num_assets: int | None = None
    priors: Mapping | None = field(default=None, compare=False, hash=False, repr=False)
    _prior_items: tuple = field(default=(), init=False, repr=False)

    params_type = WishartSVParams
    param_names = ("nu", "d", "A")
    loglik_kind = LOGLIK_KIND
    latent_sites = ("bartlett_diag", "bartlett_offdiag")
    hidden_sites = ("bartlett_diag", "bartlett_offdiag")
    deterministic_sites = ("cov", "vol")

    def __post_init__(self):
        k = self.num_assets
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            raise ValueError(f"num_assets must be a positive integer, got {k!r}")
        user = dict(self.priors or {})
        for name, prior in user.items():
            if name not in self.param_names:
                raise ValueError(f"unknown parameter {name!r} in priors; WishartSV has nu, d, A")
            if not isinstance(prior, dist.Distribution):
                raise TypeError(f"prior for {name!r} must be a numpyro distribution, got {type(prior).__name__}")
            expected = () if name != "A" else ((k, k) if k is not None else prior.event_shape)
            if prior.batch_shape != () or prior.event_shape != expected or len(prior.event_shape) not in (0, 2):
                what = "k x k matrix" if name == "A" else "scalar"
                raise ValueError(f"prior for {name!r} has batch shape {prior.batch_shape} and event shape "
                                 f"{prior.event_shape}; expected a single {what}")
        object.__setattr__(self, "_prior_items", tuple(sorted(user.items())))
        object.__setattr__(self, "priors", None)

    # --- configuration, priors and parameter space ----------------------------------------------------
    def describe(self) -> str:
        """One line naming the model."""
        return "Wishart SV" + (f" ({self.num_assets} assets)" if self.num_assets else "")

    def bind_data(self, y) -> WishartSV:
        """This model with ``num_assets`` set from the data (used by :func:`bayesvol.fit`)."""
        k = self.validate_data(y).values.shape[1]
        if self.num_assets == k:
            return self
        return WishartSV(num_assets=k, priors=dict(self._prior_items) or None)

    def prior_distributions(self, num_assets: int | None = None) -> WishartSVParams:
        """The prior of each parameter (for k = ``num_assets`` or the model's own ``num_assets``)."""
        merged = default_priors(num_assets or self.num_assets)
        merged.update(dict(self._prior_items))
        return WishartSVParams(**merged)

    def param_transforms(self) -> dict:
        """Bijections from unconstrained space onto each prior's support (A: via its Cholesky factor)."""
        priors = self.prior_distributions()
        return {name: biject_to(getattr(priors, name).support) for name in self.param_names}

    def check_parameters(self, params) -> None:
        """Raise ``ValueError`` naming the problem if concrete parameters leave the parameter space."""
        if any(isinstance(v, jax.core.Tracer) for v in params):
            return
        a = np.asarray(params.A, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"A must be a square k x k matrix, got shape {a.shape}")
        k = a.shape[0]
        if self.num_assets is not None and k != self.num_assets:
            raise ValueError(f"A is {k} x {k} but the model has num_assets={self.num_assets}")
        if not np.all(np.isfinite(a)) or not np.allclose(a, a.T, rtol=1e-10, atol=1e-12):
            raise ValueError("A must be a finite symmetric matrix")
        smallest = np.linalg.eigvalsh(a).min()
        if smallest <= 0.0:
            raise ValueError(f"A must be positive definite; its smallest eigenvalue is {smallest:.4g}")
        d, nu = float(params.d), float(params.nu)
        if not 0.0 < d < 1.0:
            raise ValueError(f"d must lie in (0, 1), got {d}")
        if not nu > k - 1:
            raise ValueError(f"nu must exceed k - 1 = {k - 1} for a {k}-variate Wishart, got {nu}")

    def validate_data(self, y):
        """Returns as a (T, k) float64 array with its index; clear errors for bad shapes, NaN, too few rows."""
        values, index, columns = as_panel_values(y)
        if values.ndim != 2:
            raise ValueError(f"y must be a (T, k) array of returns, one column per asset; got shape {values.shape}")
        T, k = values.shape
        if self.num_assets is not None and k != self.num_assets:
            raise ValueError(f"y has {k} columns but the model has num_assets={self.num_assets}")
        if not np.all(np.isfinite(values)):
            raise ValueError("y holds NaN or inf; drop or fill missing returns first (datasets.log_returns "
                             "drops dates with a missing price)")
        needed = max(MIN_OBSERVATIONS, 2 * k + 2)
        if T < needed:
            raise ValueError(f"y has {T} observations of {k} series; at least {needed} are needed")
        if np.any(np.ptp(values, axis=0) == 0.0):
            raise ValueError("a column of y is constant; its volatility cannot be estimated")
        return _Panel(values, index, columns)

    def start_values(self, y) -> list[dict]:
        r"""Start values: :math:`A = \hat\Omega^{1-d}` with :math:`\hat\Omega` the inverse sample covariance."""
        y = np.asarray(y, dtype=np.float64)
        k = y.shape[1]
        cov = np.cov(y, rowvar=False).reshape(k, k) + 1e-8 * np.eye(k)
        values, vectors = np.linalg.eigh(np.linalg.inv(cov))
        starts = []
        for d0, nu0 in ((0.5, k + 12.0), (0.8, k + 20.0), (0.3, k + 6.0)):
            a0 = (vectors * values ** (1.0 - d0)) @ vectors.T
            starts.append({"nu": nu0, "d": d0, "A": 0.5 * (a0 + a0.T)})
        return starts

    # --- the latent-state protocol ----------------------------------------------------------------------
    def steady_state(self, params):
        r""":math:`\bar\Omega = \Omega_0`, the fixed point of :math:`\Omega \mapsto A^{1/2}\Omega^d A^{1/2\prime}`."""
        return steady_state(jnp.linalg.cholesky(params.A), params.d)

    def scale_matrix(self, params, precision_prev):
        r""":math:`S_{t-1} = A^{1/2}\Omega_{t-1}^d A^{1/2\prime}/\nu` (batched over leading axes of the precision)."""
        return wishart_sv_scale(params.A, precision_prev, params.d, params.nu, root="cholesky")

    def initial(self, params) -> dist.Wishart:
        r"""Law of :math:`\Omega_1`: :math:`W_k(\nu, S_0)` with :math:`\Omega_0 = \bar\Omega`."""
        return self.transition(params, self.steady_state(params))

    def transition(self, params, precision_prev, y_prev=None) -> dist.Wishart:
        r"""Law of :math:`\Omega_t` given :math:`\Omega_{t-1}`: :math:`W_k(\nu, S_{t-1})`."""
        return dist.Wishart(params.nu, scale_matrix=self.scale_matrix(params, precision_prev))

    def emission(self, params, precision) -> GaussianPrecision:
        r"""Law of :math:`y_t` given :math:`\Omega_t`: :math:`N_k(0, \Omega_t^{-1})`."""
        return GaussianPrecision(precision)

    def simulate(self, params, num_timesteps: int, key) -> WishartSVSimulation:
        """Simulate ``num_timesteps`` returns and precision matrices, starting from :math:`\\Omega_0 = \\bar\\Omega`."""
        params = _base.as_params(self, params)
        self.check_parameters(params)
        omega0 = self.steady_state(params)

        def step(omega_prev, step_key):
            key_state, key_obs = jax.random.split(step_key)
            omega = self.transition(params, omega_prev).sample(key_state)
            return omega, (omega, self.emission(params, omega).sample(key_obs))

        _, (precision, y) = lax.scan(step, omega0, jax.random.split(key, num_timesteps))
        return WishartSVSimulation(y=np.asarray(y), precision=np.asarray(precision))

    # --- likelihoods and forecasts ----------------------------------------------------------------------
    def eis(self, params, y, **options) -> EISOutput:
        """Run the EIS sampler at ``params`` and return its full output (weights, paths, diagnostics).

        Options as for ``log_likelihood(..., method="eis")``: ``num_particles``, ``num_iterations``,
        ``tolerance``, ``seed``, ``antithetic``, ``resample``. See :mod:`bayesvol.filters.eis_wishart` for the
        algorithm and
        :meth:`forecast_covariance` for forecasts.
        """
        params = _base.as_params(self, params)
        self.check_parameters(params)
        data = jnp.asarray(self.validate_data(y).values)
        seed, static = _eis_options(**options)
        return _run_eis(params, data, seed, **static)

    def forecast_covariance(self, params, y, *, method: str = "eis", **options) -> np.ndarray:
        r"""One-step-ahead covariance forecast :math:`E[\Omega_{T+1}^{-1} \mid y_{1:T}]` at ``params``.

        :math:`E[\Omega_{T+1}^{-1}\mid\Omega_T] = S_T^{-1}/(\nu-k-1)`, averaged with the importance weights
        over the EIS draws of :math:`\Omega_T` (``method="eis"``; options as in :meth:`eis`), or over the
        fully adapted particle filter's filtering law (``method="pf"``: the EIS code with ``num_iterations=0``
        and ``resample=True``, whose final weighted particles represent :math:`p(\Omega_T \mid y_{1:T})`).
        Requires :math:`\nu > k + 1` (otherwise the expectation is infinite).
        """
        params = _base.as_params(self, params)
        self.check_parameters(params)
        k = params.A.shape[0]
        if not float(params.nu) > k + 1:
            raise ValueError(f"E[Omega^-1] is infinite unless nu > k + 1 = {k + 1}; got nu = {float(params.nu)}")
        if method not in ("eis", "pf"):
            raise ValueError(f"method must be 'eis' or 'pf', got {method!r}")
        if method == "pf":
            options = dict(options, num_iterations=0, resample=True)
        out = self.eis(params, y, **options)
        weights = jnp.exp(out.log_weights - jax.scipy.special.logsumexp(out.log_weights))
        mean_s_inv = jnp.einsum("n,nij->ij", weights, out.scale_inverse_last)
        return np.asarray(mean_s_inv / (params.nu - k - 1.0))

    def filtered_forecasts(self, params, y, *, num_particles: int = 1000, seed: int = 0) -> np.ndarray:
        r"""One-step-ahead covariance forecasts :math:`E[\Omega_{t+1}^{-1} \mid y_{1:t}]`, :math:`t = 1..T`.

        One pass of the fully adapted particle filter (see ``log_likelihood(..., method="pf")``): row t
        (0-based) is the forecast for the return after ``y[t]``, using ``y[:t + 1]`` only. The last row is
        :meth:`forecast_covariance` with ``method="pf"``. Requires :math:`\nu > k + 1`.
        """
        params = _base.as_params(self, params)
        self.check_parameters(params)
        k = params.A.shape[0]
        if not float(params.nu) > k + 1:
            raise ValueError(f"E[Omega^-1] is infinite unless nu > k + 1 = {k + 1}; got nu = {float(params.nu)}")
        out = self.eis(params, y, num_particles=num_particles, seed=seed, num_iterations=0, resample=True)
        return np.asarray(out.filtered_scale_inverse / (params.nu - k - 1.0))

    # --- the NumPyro program ------------------------------------------------------------------------------
    def program(self, y):
        r"""NumPyro program over the latent precisions in Bartlett form, one ``lax.scan``.

        :math:`\Omega_t = F_t F_t'` with :math:`F_t = \mathrm{chol}(S_{t-1})\,B_t`, :math:`B_t` lower triangular
        with :math:`B_{t,ii}^2 \sim \chi^2_{\nu-i+1}` (site ``bartlett_diag``) and standard-normal entries
        below the diagonal (``bartlett_offdiag``): Bartlett's decomposition, so :math:`\Omega_t \mid
        \Omega_{t-1} \sim W_k(\nu, S_{t-1})` exactly and :math:`F_t` is the Cholesky factor of
        :math:`\Omega_t`. Deterministic sites: ``cov`` (:math:`\Omega_t^{-1}`) and ``vol`` (its diagonal's
        square root). The factor ``y`` holds :math:`\log N(y_t; 0, \Omega_t^{-1})` per time step.
        """
        T, k = y.shape
        priors = self.prior_distributions(num_assets=k)
        params = WishartSVParams(**{name: numpyro.sample(name, getattr(priors, name)) for name in self.param_names})
        chi_df = params.nu - jnp.arange(k, dtype=y.dtype)
        diag = numpyro.sample("bartlett_diag", dist.Chi2(chi_df).expand([T, k]).to_event(2))
        offdiag = numpyro.sample("bartlett_offdiag", dist.Normal(0.0, 1.0).expand([T, k * (k - 1) // 2]).to_event(2))
        chol_factors = _precision_factors(params, diag, offdiag)
        eye = jnp.eye(k, dtype=y.dtype)
        cov = jax.vmap(lambda f: cho_solve((f, True), eye))(chol_factors)
        numpyro.deterministic("cov", cov)
        numpyro.deterministic("vol", jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1)))
        numpyro.factor("y", _gaussian_loglik_from_factors(chol_factors, y))

    def site_dims(self, index, y):
        """ArviZ dims: ``time``, ``asset`` (and ``asset2`` for the second axis of matrices)."""
        T, k = y.shape
        coords = {"time": _time_coords(index, T), "asset": np.arange(k), "asset2": np.arange(k)}
        dims = {"A": ["asset", "asset2"], "cov": ["time", "asset", "asset2"], "vol": ["time", "asset"],
                "y": ["time", "asset"]}
        return dims, coords

    def pointwise_loglik_draws(self, draws: dict, y):
        """:math:`\\log N(y_t; 0, \\mathrm{cov}_t)` for each draw, dims (chain, draw, time)."""
        cov = jnp.asarray(draws["cov"])
        chol = jnp.linalg.cholesky(cov)
        z = solve_triangular(chol, jnp.broadcast_to(jnp.asarray(y)[..., None], cov.shape[:-1] + (1,)), lower=True)
        k = cov.shape[-1]
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
        return np.asarray(-0.5 * k * LOG_2PI - 0.5 * logdet - 0.5 * jnp.sum(z[..., 0] ** 2, axis=-1))

    def predictive_draws(self, draws: dict, key):
        """Replicated returns :math:`y^{rep}_t \\sim N(0, \\mathrm{cov}_t)`, one series per draw."""
        cov = jnp.asarray(draws["cov"])
        noise = jax.random.normal(key, cov.shape[:-1], dtype=cov.dtype)
        return np.asarray(jnp.einsum("...ij,...j->...i", jnp.linalg.cholesky(cov), noise))

    def posterior_forecast_covariance(self, idata, y=None) -> np.ndarray:
        r"""Posterior mean of :math:`E[\Omega_{T+1}^{-1} \mid \Omega_T, \theta] = S_T^{-1}/(\nu-k-1)` over draws.

        This is the posterior predictive covariance of :math:`y_{T+1}`. ``y`` is not needed (the draws hold
        :math:`\Omega_T`); it is accepted so that the call matches
        :meth:`bayesvol.models.DCC.posterior_forecast_covariance`.
        Draws with :math:`\nu \le k + 1` (infinite conditional mean) are an error.
        """
        post = idata.posterior
        nu = jnp.asarray(post["nu"].values).reshape(-1)
        d = jnp.asarray(post["d"].values).reshape(-1)
        a = jnp.asarray(post["A"].values).reshape((-1,) + post["A"].shape[-2:])
        cov_last = jnp.asarray(post["cov"].values[:, :, -1]).reshape(a.shape)
        k = a.shape[-1]
        if float(nu.min()) <= k + 1:
            raise ValueError(f"some posterior draws have nu <= k + 1 = {k + 1}: the forecast mean is infinite")
        return np.asarray(jnp.mean(jax.vmap(_conditional_mean_inverse)(nu, d, a, cov_last), axis=0))


class GaussianPrecision(dist.Distribution):
    r"""Zero-mean :math:`N_k(0, \Omega^{-1})` given its precision :math:`\Omega` (batched over leading axes).

    ``log_prob`` is :math:`-\tfrac{k}{2}\log 2\pi + \tfrac12\log|\Omega| - \tfrac12 y'\Omega y` from the Cholesky
    factor of :math:`\Omega` (no inverse), and it broadcasts a single ``y`` over a batch of precisions, which
    the particle filter needs.
    """

    arg_constraints = {"precision": constraints.positive_definite}
    support = constraints.real_vector
    reparametrized_params = ["precision"]

    def __init__(self, precision, *, validate_args=None):
        self.precision = precision
        self._chol = jnp.linalg.cholesky(precision)
        super().__init__(batch_shape=precision.shape[:-2], event_shape=precision.shape[-1:],
                         validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = sample_shape + self.batch_shape + self.event_shape
        noise = jax.random.normal(key, shape, dtype=self.precision.dtype)
        # y = L'^{-1} z has covariance (L L')^{-1} = Omega^{-1}.
        chol_t = jnp.broadcast_to(jnp.swapaxes(self._chol, -1, -2), shape + shape[-1:])
        return solve_triangular(chol_t, noise[..., None], lower=False)[..., 0]

    def log_prob(self, value):
        k = self.event_shape[0]
        projected = jnp.einsum("...ji,...j->...i", self._chol, value)
        return -0.5 * k * LOG_2PI + logdet_from_cholesky(self._chol) / 2.0 - 0.5 * jnp.sum(projected**2, axis=-1)


class _Panel(NamedTuple):
    values: np.ndarray
    index: pd.Index | None
    columns: list | None


def _time_coords(index, T):
    from bayesvol.inference._idata import time_coords

    return time_coords(index, T)


def _conditional_mean_inverse(nu, d, a, cov_prev):
    r""":math:`S_T^{-1}/(\nu-k-1)` with :math:`S_T^{-1} = \nu L'^{-1}\Omega_T^{-d}L^{-1}` and :math:`\Omega_T^{-d}
    = (\Omega_T^{-1})^{d}`."""
    k = a.shape[-1]
    chol_inv = solve_triangular(jnp.linalg.cholesky(a), jnp.eye(k, dtype=a.dtype), lower=True)
    s_inv = nu * chol_inv.T @ matrix_power_psd(cov_prev, d) @ chol_inv
    return s_inv / (nu - k - 1.0)


def _precision_factors(params, diag, offdiag):
    """Cholesky factors :math:`F_t` of :math:`\\Omega_t` from the Bartlett variables, one ``lax.scan``."""
    k = diag.shape[-1]
    chol_a = jnp.linalg.cholesky(params.A)
    omega0 = steady_state(chol_a, params.d)
    bartlett = _bartlett(diag, offdiag, k)

    def step(omega_prev, b_t):
        factor = jnp.linalg.cholesky(scale_matrix(omega_prev, params.nu, params.d, chol_a)) @ b_t
        return factor @ factor.T, factor

    _, factors = lax.scan(step, omega0, bartlett)
    return factors


def _gaussian_loglik_from_factors(factors, y):
    r""":math:`\log N(y_t; 0, \Omega_t^{-1})` with :math:`\Omega_t = F_tF_t'`: :math:`\log|F_t| - \|F_t'y_t\|^2/2`."""
    k = y.shape[-1]
    logdet_half = jnp.sum(jnp.log(jnp.diagonal(factors, axis1=-2, axis2=-1)), axis=-1)
    projected = jnp.einsum("tji,tj->ti", factors, y)
    return -0.5 * k * LOG_2PI + logdet_half - 0.5 * jnp.sum(projected**2, axis=-1)


@partial(jax.jit, static_argnames=("num_particles", "num_iterations", "tolerance", "antithetic", "resample"))
def _run_eis(params, y, seed, initial_kernels=None, *, num_particles, num_iterations, tolerance, antithetic,
             resample):
    T, k = y.shape
    half = num_particles // 2 if antithetic else num_particles
    key_diag, key_off, key_unif = jax.random.split(jax.random.PRNGKey(seed), 3)
    z_diag = jax.random.normal(key_diag, (T, half, k), dtype=y.dtype)
    z_off = jax.random.normal(key_off, (T, half, k * (k - 1) // 2), dtype=y.dtype)
    if antithetic:
        z_diag, z_off = jnp.concatenate([z_diag, -z_diag], axis=1), jnp.concatenate([z_off, -z_off], axis=1)
    chol_a = jnp.linalg.cholesky(params.A)
    omega0 = steady_state(chol_a, params.d)
    return wishart_eis(y, params.nu, params.d, chol_a, omega0, num_particles=num_particles,
                       num_iterations=num_iterations, tolerance=tolerance, z_diag=z_diag, z_offdiag=z_off,
                       resample_keys=jax.random.split(key_unif, T), resample=resample,
                       initial_kernels=initial_kernels)


def _eis_options(num_particles=128, num_iterations=10, tolerance=1e-2, seed=0, antithetic=True, resample=False):
    if isinstance(num_particles, bool) or not isinstance(num_particles, int) or num_particles < 2:
        raise ValueError(f"num_particles must be an integer >= 2, got {num_particles!r}")
    if antithetic and num_particles % 2:
        raise ValueError(f"antithetic draws need an even num_particles, got {num_particles}")
    if isinstance(num_iterations, bool) or not isinstance(num_iterations, int) or num_iterations < 0:
        raise ValueError(f"num_iterations must be a non-negative integer, got {num_iterations!r}")
    if not (isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and tolerance >= 0.0):
        raise ValueError(f"tolerance must be a non-negative number, got {tolerance!r}")
    return seed, {"num_particles": num_particles, "num_iterations": num_iterations, "tolerance": float(tolerance),
                  "antithetic": bool(antithetic), "resample": bool(resample)}


class EISKernels:
    r"""EIS auxiliary kernels :math:`(c_t, C_t)` held fixed: the ``kernels`` option of the ``"eis"`` likelihood.

    Compares and hashes by identity, so it can be a (static) likelihood option.
    """

    __slots__ = ("c", "C")

    def __init__(self, c, C):
        self.c, self.C = np.asarray(c, dtype=np.float64), np.asarray(C, dtype=np.float64)


def _eis_loglik_output(params, y, options) -> EISOutput:
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


def _wishart_eis_diagnostics(model, params, y, num_replications: int = 5, **options):
    """At the estimate: MC SD of the plain EIS log-likelihood over seeds, and the sequential EIS value."""
    options.pop("kernels", None)
    seed, static = _eis_options(**options)
    values = np.array([float(_run_eis(params, y, seed + 1 + r, **static).loglik) for r in range(num_replications)])
    sequential = float(_run_eis(params, y, seed, **dict(static, resample=True)).loglik)
    return {"loglik_mc_sd": float(values.std(ddof=1)), "loglik_mc_replications": num_replications,
            "loglik_sequential_eis": sequential}


@register_loglik(WishartSV, "eis", diagnostics=_wishart_eis_diagnostics, hessian="differences")
def _wishart_eis_loglik(model, params, y, **options):
    """EIS log-likelihood split into T terms that add up to it (see :class:`~bayesvol.filters.eis_wishart.EISOutput`).

    Options: ``num_particles`` (128), ``num_iterations`` (10: the most EIS passes), ``tolerance`` (0.01: the
    passes stop when the kernels change by less, relatively), ``seed`` (0), ``antithetic`` (True),
    ``resample`` (False; True runs the final pass as a particle filter, see
    :func:`~bayesvol.filters.eis_wishart.wishart_eis`), ``kernels`` (an :class:`EISKernels` to use instead of
    running the EIS passes). Derivatives hold the EIS kernels fixed at their values for the given
    parameters (see :func:`~bayesvol.filters.eis_wishart.eis_kernels`).
    """
    model.check_parameters(params)
    return _eis_loglik_output(params, y, options).pointwise


def _free_parameters(model, params):
    """Unconstrained coordinates (nu, d, then A's k(k+1)/2 free entries) of concrete parameters."""
    transforms = model.param_transforms()
    return np.concatenate([np.atleast_1d(np.asarray(transforms[n].inv(jnp.asarray(getattr(params, n)))))
                           for n in model.param_names])


def _constrained(model, u_flat):
    transforms = model.param_transforms()
    return WishartSVParams(nu=transforms["nu"](u_flat[0]), d=transforms["d"](u_flat[1]), A=transforms["A"](u_flat[2:]))


@partial(jax.jit, static_argnames=("model", "num_particles", "antithetic"))
def _fixed_kernel_objective(u_flat, model, y, seed, kernels, *, num_particles, antithetic):
    """-(EIS log-likelihood)/T with the kernels fixed, and its gradient, in unconstrained coordinates."""

    def objective(u):
        out = _run_eis(_constrained(model, u), y, seed, kernels, num_particles=num_particles, num_iterations=0,
                       tolerance=0.0, antithetic=antithetic, resample=False)
        value = -out.loglik / y.shape[0]
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    return jax.value_and_grad(objective)(u_flat)


def _round_schedule_step(history, round_tolerance):
    """Decide the start of the next EIS-MLE round from the rounds so far (a fixed-point iteration).

    ``history`` holds one dict per round: ``start`` and ``optimum`` (unconstrained coordinates), ``se`` (their
    approximate standard errors) and ``plain`` (whether the round started at the previous round's optimum).
    Returns ``(next_start, ratio, distance, settled, move)``: the contraction ratio estimated from the last two
    rounds when they form a plain pair (else the last estimate, or NaN), the estimated distance of the last
    round's start from the fixed point in standard errors, ``move / (1 - largest ratio so far)`` (a bound for
    the distance of its optimum, which is about ``ratio`` times that), whether it is below
    ``round_tolerance``, and the last move. After a plain pair the next start is extrapolated along the last
    step by ``ratio / (1 - ratio)`` (Aitken's scalar acceleration of a linearly convergent iteration).
    """
    last = history[-1]
    residual = (last["optimum"] - last["start"]) / last["se"]
    move = float(np.max(np.abs(residual)))
    ratio = next((h["ratio"] for h in reversed(history[:-1]) if np.isfinite(h.get("ratio", np.nan))), np.nan)
    fresh = False
    if last["plain"] and len(history) >= 2:
        previous = history[-2]
        before = (previous["optimum"] - previous["start"]) / last["se"]
        denominator = float(before @ before)
        if denominator > 0.0:
            ratio, fresh = float(np.clip((residual @ before) / denominator, 0.0, _MAX_ROUND_RATIO)), True
    last["ratio"] = ratio
    # The iteration is only roughly linear (coordinates contract at different rates), so the distance uses
    # the largest ratio estimated so far: a conservative bound.
    ratios = np.array([h.get("ratio", np.nan) for h in history])
    largest = np.max(ratios[np.isfinite(ratios)]) if np.any(np.isfinite(ratios)) else np.nan
    distance = move / (1.0 - largest) if np.isfinite(largest) else np.inf
    settled = bool(distance < round_tolerance)
    next_start = last["optimum"]
    if fresh and not settled:
        next_start = last["optimum"] + ratio / (1.0 - ratio) * (last["optimum"] - last["start"])
    return next_start, ratio, distance, settled, move


_MAX_ROUND_RATIO = 0.95


@register_fitter(WishartSV, "eis")
def _fit_eis(model, y, *, start=None, num_starts=None, maxiter=2000, gtol=1e-5, warn=True, max_rounds: int = 20,
             round_tolerance: float = 0.2, se_differences: str = "forward", **options):
    r"""EIS maximum likelihood in rounds: optimise with the EIS sampler fixed, refit the sampler, repeat.

    Round r fits the kernels :math:`(c_t, C_t)` at its start :math:`s_r` (warm-started from the last ones)
    and holds them fixed, so the objective :math:`\hat L(\theta; c, C)` is one smooth function (common
    random numbers, an unbiased likelihood estimate at every :math:`\theta`) with an exact gradient; each
    evaluation is a single simulation pass, and the kernels are arguments of one compiled function, so rounds
    do not recompile. BFGS starts from the previous round's inverse-Hessian approximation. The estimate is
    the fixed point :math:`\theta^* = G(\theta^*)` of the map :math:`G(s) = \arg\max_\theta \hat L(\theta;
    c(s), C(s))`; with the same random numbers in every round, :math:`G` is deterministic and the rounds
    converge linearly (kernels fitted at :math:`s` favour :math:`\theta` near :math:`s`, which makes the
    steps shrink by a ratio :math:`\rho < 1` per round rather than stop at once).

    Rule. With the move :math:`m_r = \max_j |G(s_r) - s_r|_j / \mathrm{se}_j` (unconstrained coordinates,
    approximate standard errors from the BFGS inverse Hessian) and :math:`\rho` estimated from two
    consecutive plain rounds (:math:`s_{r} = G(s_{r-1})`; the largest such estimate so far, to be safe),
    the start :math:`s_r` is about :math:`m_r / (1 - \rho)` standard errors from the fixed point and the
    estimate :math:`G(s_r)` about :math:`\rho` times that; the rounds stop (``settled``) when the former
    (a bound for the latter) is below ``round_tolerance``, so at least two rounds run. After each plain
    pair the next start is extrapolated by :math:`\rho/(1-\rho)` times the last step (Aitken's
    acceleration). ``converged`` in the result means the last optimiser run converged *and* the rounds
    settled; stopping on ``max_rounds`` gives a warning.
    A last call of the ordinary optimiser with the final kernels fixed (it starts at the optimum) gives the
    standard errors (Hessian of the fixed-kernel estimate from differences of its exact gradient) and
    diagnostics. ``se_differences="forward"`` (default) takes forward differences, p + 1 gradient calls for p
    free parameters instead of the 2p of ``"central"``: with steps of 1e-6 max(|u|, 1) in float64 their
    O(h) truncation error is of relative order 1e-6 in the Hessian (times its condition number in the
    standard errors), far below the Monte Carlo uncertainty of the standard errors themselves (the
    Hessian of a simulated likelihood differs between seeds by much more), and the stage costs half as
    much, which matters at k = 10 (57 parameters, about 10 s per gradient). The default ``max_rounds=20``
    leaves room for contraction ratios near 0.9 with the extrapolation. ``diagnostics`` records
    ``eis_rounds``, ``eis_settled``, ``eis_last_move_in_se``, ``eis_distance_in_se``, ``eis_round_ratio``
    and ``eis_optimiser_iterations``.
    """
    import scipy.optimize

    from bayesvol.inference.mle import fit

    if options.get("resample"):
        raise ValueError("fit(method='eis') needs the plain (smooth) EIS estimate; resample=True is piecewise "
                         "constant in the parameters")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValueError(f"max_rounds must be a positive integer, got {max_rounds!r}")
    if not (isinstance(round_tolerance, (int, float)) and round_tolerance > 0.0):
        raise ValueError(f"round_tolerance must be a positive number of standard errors, got {round_tolerance!r}")
    if se_differences not in ("forward", "central"):
        raise ValueError(f"se_differences must be 'forward' or 'central', got {se_differences!r}")
    if "kernels" in options:
        return fit(model, y, "eis", start=start, num_starts=num_starts, maxiter=maxiter, gtol=gtol, warn=warn,
                   direct=True, se_differences=se_differences, **options)
    model = model.bind_data(y)
    values = model.validate_data(y).values
    data = jnp.asarray(values)
    seed, static = _eis_options(**options)
    if start is None:
        starts = list(model.start_values(values))
    else:
        starts = [start] if isinstance(start, Mapping) else list(start)
    starts = [_base.as_params(model, s) for s in starts[: num_starts or len(starts)]]
    for s in starts:
        model.check_parameters(s)
    at_starts = [float(_run_eis(s, data, seed, **static).loglik) for s in starts]
    u = _free_parameters(model, starts[int(np.nanargmax(at_starts))])
    kernels, hess_inv, history, iterations, plain = None, None, [], 0, True
    ratio, distance, move, settled = np.nan, np.inf, np.inf, False
    seed_array = jnp.asarray(seed)

    began = time.perf_counter()
    while len(history) < max_rounds and not settled:
        out = _run_eis(_constrained(model, jnp.asarray(u)), data, seed, kernels, **static)
        if not np.isfinite(float(out.loglik)) and not plain:
            # the extrapolated start left the region where the simulated likelihood is finite: step back
            u, plain = history[-1]["optimum"], True
            out = _run_eis(_constrained(model, jnp.asarray(u)), data, seed, kernels, **static)
        kernels = (out.c, out.C)

        def scipy_fun(x, kernels=kernels):
            v, g = _fixed_kernel_objective(jnp.asarray(x), model, data, seed_array, kernels,
                                           num_particles=static["num_particles"], antithetic=static["antithetic"])
            v, g = float(v), np.asarray(g, dtype=np.float64)
            return (v, g) if np.isfinite(v) and np.all(np.isfinite(g)) else (1e10, np.zeros_like(g))

        res = scipy.optimize.minimize(scipy_fun, u, jac=True, method="BFGS",
                                      options={"maxiter": maxiter, "gtol": gtol, "hess_inv0": hess_inv})
        iterations += int(res.nit)
        hess_inv = 0.5 * (res.hess_inv + res.hess_inv.T)
        se_u = np.sqrt(np.maximum(np.diag(hess_inv), 1e-300) / data.shape[0])
        history.append({"start": np.asarray(u, dtype=np.float64), "optimum": np.asarray(res.x, dtype=np.float64),
                        "se": se_u, "plain": plain})
        next_start, ratio, distance, settled, move = _round_schedule_step(history, round_tolerance)
        optimum = _constrained(model, jnp.asarray(res.x))
        _LOGGER.info("EIS-MLE round %d: %.1f s, %d BFGS iterations, move %.3g SE, ratio %.3g, distance %.3g SE, "
                     "d %.4f, nu %.3f, log-likelihood %.3f", len(history), time.perf_counter() - began, res.nit,
                     move, ratio, distance, float(optimum.d), float(optimum.nu), -res.fun * data.shape[0])
        plain = bool(np.array_equal(next_start, res.x))
        u = next_start
    u = history[-1]["optimum"]
    theta = _constrained(model, jnp.asarray(u))
    rounds_done = time.perf_counter()
    result = fit(model, y, "eis", start={n: np.asarray(getattr(theta, n)) for n in model.param_names},
                 maxiter=maxiter, gtol=gtol, warn=False, direct=True, kernels=EISKernels(*kernels),
                 se_differences=se_differences, **options)
    _LOGGER.info("EIS-MLE: final optimisation, standard errors and diagnostics in %.1f s",
                 time.perf_counter() - rounds_done)
    if not result.converged and warn:
        warnings.warn(f"EIS maximum likelihood did not converge: {result.message}", ConvergenceWarning,
                      stacklevel=3)
    if not settled and warn:
        warnings.warn(f"the EIS-MLE rounds stopped on their limit (max_rounds={max_rounds}): the estimate is about "
                      f"{distance:.3g} standard errors from the fixed point of the rounds (last move {move:.3g}, "
                      f"contraction ratio {ratio:.3g}), above round_tolerance={round_tolerance}; allow more rounds",
                      ConvergenceWarning, stacklevel=3)
    diagnostics = dict(result.diagnostics, eis_rounds=len(history), eis_settled=settled, eis_last_move_in_se=move,
                       eis_distance_in_se=distance, eis_round_ratio=ratio, eis_optimiser_iterations=iterations)
    return dataclasses.replace(result, converged=bool(result.converged and settled), options=dict(options),
                               diagnostics=diagnostics)


@register_loglik(WishartSV, "pf", differentiable=False)
def _wishart_pf_loglik(model, params, y, **options):
    r"""Fully adapted particle filter: propose :math:`\Omega_t` from :math:`p(\Omega_t \mid \Omega_{t-1}, y_t)`.

    Normal–Wishart conjugacy makes that proposal and the predictive :math:`p(y_t \mid \Omega_{t-1})` exact, so
    this is the EIS code with ``num_iterations=0`` and ``resample=True``. The terms are estimates of the
    one-step-ahead predictive densities :math:`\log p(y_t \mid y_{1:t-1})`. Options: ``num_particles``
    (1000), ``seed`` (0), ``antithetic`` (True).
    """
    options = dict({"num_particles": 1000}, **options, num_iterations=0, resample=True)
    seed, static = _eis_options(**options)
    model.check_parameters(params)
    return _run_eis(params, y, seed, **static).pointwise
