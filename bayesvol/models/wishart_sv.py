r"""Wishart multivariate stochastic volatility (Philipov & Glickman 2006): parameters, priors, state equations,
simulator and NumPyro program.

Its likelihood methods (EIS, the fully adapted particle filter) and filtered forecasts are in
`bayesvol.filters.wishart_methods`; EIS maximum likelihood in rounds is in
`bayesvol.inference.eis_rounds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from jax import lax
from jax.scipy.linalg import cho_solve
from numpyro.distributions import biject_to, constraints

from bayesvol._validation import MIN_OBSERVATIONS, as_panel_values, time_coords
from bayesvol.distributions.priors import ShiftedExponential
from bayesvol.distributions.wishart import GaussianPrecision, gaussian_precision_log_prob
from bayesvol.models._base import as_params, scale_free_supports, simulation_inputs
from bayesvol.models._protocol import LatentStateModelBase
from bayesvol.models._wishart_linalg import log_steady_state_spectrum, scale_inverse, scale_matrix, steady_state

__all__ = ["GaussianPrecision", "WishartSV", "WishartSVParams", "WishartSVSimulation", "reference_params"]

LOGLIK_KIND = "conditional: log p(y_t | Omega_t, theta), given the latent precision path"

# Seed 003 prints this matrix (from Philipov & Glickman's estimates); with d = 0.5 and nu = 14 it behaves as
# the *inverse* of A in returns measured as fractions: A = inv(_SEED_MATRIX) gives standard deviations of a
# few percent (0.02 to 0.05), like the seed's simulated monthly returns.
_SEED_MATRIX = np.array([[0.0238, 0.0057, 0.0145], [0.0057, 0.0239, 0.0056], [0.0145, 0.0056, 0.0330]])


class WishartSVParams(NamedTuple):
    """Parameters of [`WishartSV`][bayesvol.models.WishartSV]: degrees of freedom ``nu``, persistence ``d``, k x k
matrix ``A``."""

    nu: jax.Array
    d: jax.Array
    A: jax.Array


class WishartSVSimulation(NamedTuple):
    r"""Simulated returns ``y`` (T, k), latent precisions ``precision`` $\Omega_t$ (T, k, k) and the
    conditional covariances of the returns ``covariance`` $\Omega_t^{-1}$ (T, k, k)."""

    y: np.ndarray
    precision: np.ndarray
    covariance: np.ndarray


def reference_params(units: str = "fraction") -> dict:
    r"""Parameters of the simulation study in seed 003: $d = 0.5$, $\nu = 14$, 3 x 3 ``A``.

    Parameters
    ----------
    units : {"fraction", "percent"}
        Units of the returns the parameters are meant for. Scaling returns by $s$ scales
        $\Omega_t$ by $s^{-2}$ and, through $S_{t-1} \propto A\,\Omega_{t-1}^d$, ``A`` by
        $s^{2(d-1)}$; for percent returns ($s = 100$, $d = 0.5$) ``A`` is divided by 100.

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

    ``nu - (k - 1) ~ Exponential(0.1)`` (support $\nu > k - 1$), ``d ~ Beta(2, 2)``,
    ``A ~ Wishart(k + 2, I / (k + 2))`` (prior mean the identity: $\bar\Omega \approx A^{1/(1-d)}$,
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
class WishartSV(LatentStateModelBase):
    r"""Wishart multivariate stochastic volatility model.

    Parameters
    ----------
    num_assets : int, optional
        Number of series k. Optional: it is taken from the data or from ``A``; give it to fix the default
        prior of ``A`` and the constraint $\nu > k - 1$ before any data are seen.
    priors : mapping, optional
        Parameter name -> NumPyro distribution, overriding `default_priors` (``A``'s prior is a
        distribution over k x k positive-definite matrices, e.g. ``numpyro.distributions.Wishart``).

    Notes
    -----

    $$
    y_t \mid \Omega_t &\sim N_k(0, \Omega_t^{-1}), \\
    \Omega_t \mid \Omega_{t-1} &\sim W_k(\nu, S_{t-1}), \qquad
    S_{t-1} = \tfrac{1}{\nu}\, A^{1/2}\, \Omega_{t-1}^{d}\, A^{1/2\prime},
    $$

    with $\nu > k - 1$, $0 < d < 1$, $A$ symmetric positive definite and
    $A^{1/2}$ its lower Cholesky factor (as in seed 003, eq. 3; the symmetric root gives a different
    model unless A is diagonal). $\Omega^{d}$ is the matrix power by eigendecomposition, and
    $E[\Omega_t \mid \Omega_{t-1}] = A^{1/2}\Omega_{t-1}^d A^{1/2\prime}$. The Wishart density is
    $|\Omega|^{(\nu-k-1)/2} \exp\{-\mathrm{tr}(S^{-1}\Omega)/2\} / (2^{\nu k/2}|S|^{\nu/2}\Gamma_k(\nu/2))$.

    *Start.* $\Omega_0 = \bar\Omega$, the fixed point of the conditional-mean map
    $\bar\Omega = A^{1/2}\bar\Omega^{d}A^{1/2\prime}$ (unique for $0<d<1$; see
    `bayesvol.models._wishart_linalg.steady_state`), so $\Omega_1 \sim W_k(\nu, \bar\Omega/\nu)$
    has mean $\bar\Omega$. This plays the role of the stationary start of the univariate SV model and
    adds no parameters. For k = 1 the model is a gamma-process SV model:
    $\omega_t \mid \omega_{t-1} \sim \mathrm{Gamma}(\nu/2, \mathrm{rate} = \nu / (2 a \omega_{t-1}^d))$.

    *Units.* Scaling returns by s maps A to $s^{2(d-1)}A$ (see
    [`reference_params`][bayesvol.models.wishart_sv.reference_params]).

    *Forecasts.* $E[\Omega_{T+1}^{-1} \mid \Omega_T] = S_T^{-1}/(\nu - k - 1)$ (for $\nu > k+1$),
    averaged over the smoothing law of $\Omega_T$ (EIS), the filtering law (particle filter; both in
    `bayesvol.filters.wishart_methods`) or the posterior (NUTS/SVI,
    [`posterior_forecast_covariance`][bayesvol.models.WishartSV.posterior_forecast_covariance]).

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
    # A is a covariance matrix (a structured transform of its free entries)
    elementwise_transforms = False
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
        """This model with ``num_assets`` set from the data (used by [`bayesvol.fit`][bayesvol.fit])."""
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
        _check_steady_state_range(a, d)

    def validate_data(self, y):
        """Returns as a (T, k) float64 array with its index; clear errors for bad shapes, NaN, too few rows."""
        values, index, columns = as_panel_values(y)
        if values.ndim != 2:
            raise ValueError(f"y must be a (T, k) array of returns, one column per asset; got shape {values.shape}")
        T, k = values.shape
        if self.num_assets is not None and k != self.num_assets:
            raise ValueError(f"y has {k} columns but the model has num_assets={self.num_assets}")
        if np.any(np.isnan(values)):
            row, col = (int(i[0]) for i in np.nonzero(np.isnan(values)))
            raise ValueError(f"y holds a missing return (NaN) at row {row}, column {col}: Wishart SV does not "
                             "support missing values (DCC and DFSV do); drop the rows with a missing value, e.g. "
                             "y.dropna(), or fill them before fitting")
        if not np.all(np.isfinite(values)):
            raise ValueError("y holds inf; an infinite return is a data error (check the prices)")
        needed = max(MIN_OBSERVATIONS, 2 * k + 2)
        if T < needed:
            raise ValueError(f"y has {T} observations of {k} series; at least {needed} are needed")
        if np.any(np.ptp(values, axis=0) == 0.0):
            raise ValueError("a column of y is constant; its volatility cannot be estimated")
        return _Panel(values, index, columns)

    # One scale for every asset: with a scale per asset the matrix power Omega^d would not commute with it.
    data_scale_kind = "common"

    def rescale_params(self, params, scale):
        r"""Parameters for returns ``scale * y`` (one positive ``scale`` for all assets): precisions
        $\Omega_t \to s^{-2}\Omega_t$, so $A \to s^{2(d-1)} A$; ``nu`` and ``d`` are free of units.
        ``None`` when the prior of ``A`` is not free of units."""
        if not scale_free_supports(self, multiplied=("A",)):
            return None
        return params._replace(A=params.A * scale ** (2.0 * (params.d - 1.0)))

    def start_values(self, y) -> list[dict]:
        r"""Start values: $A = \hat\Omega^{1-d}$ with $\hat\Omega$ the inverse sample covariance."""
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
        r"""$\bar\Omega = \Omega_0$, the fixed point of $\Omega \mapsto A^{1/2}\Omega^d A^{1/2\prime}$."""
        return steady_state(jnp.linalg.cholesky(params.A), params.d)

    def scale_matrix(self, params, precision_prev):
        r"""$S_{t-1} = A^{1/2}\Omega_{t-1}^d A^{1/2\prime}/\nu$ (batched over leading axes of the precision).

        $A^{1/2}$ is the lower Cholesky factor; the computation is
        `bayesvol.distributions.wishart.wishart_sv_scale_from_root`, as in the filters.
        """
        return scale_matrix(precision_prev, params.nu, params.d, jnp.linalg.cholesky(params.A))

    def initial(self, params) -> dist.Wishart:
        r"""Law of $\Omega_1$: $W_k(\nu, S_0)$ with $\Omega_0 = \bar\Omega$."""
        return self.transition(params, self.steady_state(params))

    def transition(self, params, precision_prev, y_prev=None) -> dist.Wishart:
        r"""Law of $\Omega_t$ given $\Omega_{t-1}$: $W_k(\nu, S_{t-1})$."""
        return dist.Wishart(params.nu, scale_matrix=self.scale_matrix(params, precision_prev))

    def emission(self, params, precision) -> GaussianPrecision:
        r"""Law of $y_t$ given $\Omega_t$: $N_k(0, \Omega_t^{-1})$."""
        return GaussianPrecision(precision)

    def simulate(self, params, num_timesteps: int, key) -> WishartSVSimulation:
        """Simulate ``num_timesteps`` returns and precision matrices, starting from $\\Omega_0 = \\bar\\Omega$.

        ``key`` is an integer seed, ``None`` (a fresh random seed) or a JAX random key. Each step draws from
        [`transition`][bayesvol.models.WishartSV.transition] and [`emission`][bayesvol.models.WishartSV.emission].
        """
        num_timesteps, key = simulation_inputs(num_timesteps, key)
        params = as_params(self, params)
        self.check_parameters(params)
        omega0 = self.steady_state(params)

        def step(omega_prev, step_key):
            key_state, key_obs = jax.random.split(step_key)
            omega = self.transition(params, omega_prev).sample(key_state)
            return omega, (omega, self.emission(params, omega).sample(key_obs))

        _, (precision, y) = lax.scan(step, omega0, jax.random.split(key, num_timesteps))
        precision = np.asarray(precision)
        return WishartSVSimulation(y=np.asarray(y), precision=precision, covariance=np.linalg.inv(precision))

    # --- the NumPyro program ------------------------------------------------------------------------------
    def program(self, y):
        r"""NumPyro program over the latent precisions in Bartlett form, one ``lax.scan``.

        $\Omega_t = F_t F_t'$ with $F_t = \mathrm{chol}(S_{t-1})\,B_t$, $B_t$ lower triangular
        with $B_{t,ii}^2 \sim \chi^2_{\nu-i+1}$ (site ``bartlett_diag``) and standard-normal entries
        below the diagonal (``bartlett_offdiag``): Bartlett's decomposition, so $\Omega_t \mid
        \Omega_{t-1} \sim W_k(\nu, S_{t-1})$ exactly and $F_t$ is the Cholesky factor of
        $\Omega_t$. Deterministic sites: ``cov`` ($\Omega_t^{-1}$) and ``vol`` (its diagonal's
        square root). The factor ``y`` holds $\log N(y_t; 0, \Omega_t^{-1})$ per time step.
        """
        T, k = y.shape
        priors = self.prior_distributions(num_assets=k)
        params = WishartSVParams(**{name: numpyro.sample(name, getattr(priors, name)) for name in self.param_names})
        chi_df = params.nu - jnp.arange(k, dtype=y.dtype)
        diag = numpyro.sample("bartlett_diag", dist.Chi2(chi_df).expand([T, k]).to_event(2))
        offdiag = numpyro.sample("bartlett_offdiag", dist.Normal(0.0, 1.0).expand([T, k * (k - 1) // 2]).to_event(2))
        chol_factors = _precision_factors(self, params, diag, offdiag)
        eye = jnp.eye(k, dtype=y.dtype)
        cov = jax.vmap(lambda f: cho_solve((f, True), eye))(chol_factors)
        numpyro.deterministic("cov", cov)
        numpyro.deterministic("vol", jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1)))
        numpyro.factor("y", gaussian_precision_log_prob(y, precision_tril=chol_factors))

    def site_dims(self, index, y):
        """ArviZ dims: ``time``, ``asset`` (and ``asset2`` for the second axis of matrices)."""
        T, k = y.shape
        coords = {"time": time_coords(index, T), "asset": np.arange(k), "asset2": np.arange(k)}
        dims = {"A": ["asset", "asset2"], "cov": ["time", "asset", "asset2"], "vol": ["time", "asset"],
                "y": ["time", "asset"]}
        return dims, coords

    def pointwise_loglik_draws(self, draws: dict, y):
        """$\\log N(y_t; 0, \\mathrm{cov}_t)$ for each draw, dims (chain, draw, time)."""
        chol = jnp.linalg.cholesky(jnp.asarray(draws["cov"]))
        return np.asarray(gaussian_precision_log_prob(jnp.asarray(y), covariance_tril=chol))

    def predictive_draws(self, draws: dict, key):
        """Replicated returns $y^{rep}_t \\sim N(0, \\mathrm{cov}_t)$, one series per draw."""
        cov = jnp.asarray(draws["cov"])
        noise = jax.random.normal(key, cov.shape[:-1], dtype=cov.dtype)
        return np.asarray(jnp.einsum("...ij,...j->...i", jnp.linalg.cholesky(cov), noise))

    def posterior_forecast_covariance(self, idata, y=None) -> np.ndarray:
        r"""Posterior mean of $E[\Omega_{T+1}^{-1} \mid \Omega_T, \theta] = S_T^{-1}/(\nu-k-1)$ over draws.

        This is the posterior predictive covariance of $y_{T+1}$. ``y`` is not needed (the draws hold
        $\Omega_T$); it is accepted so that the call matches
        [`bayesvol.models.DCC.posterior_forecast_covariance`][bayesvol.models.DCC.posterior_forecast_covariance].
        Draws with $\nu \le k + 1$ (infinite conditional mean) are an error.
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


# Largest condition number of the stationary precision that the likelihoods factorise reliably in double
# precision (eigen-decompositions and Cholesky factors of the draws lose every digit of the smallest
# eigenvalue near 1e16), and the largest |log10| of its eigenvalues that leaves room for the data's scale.
_STEADY_STATE_LOG10_CONDITION_LIMIT = 12.0
_STEADY_STATE_LOG10_SCALE_LIMIT = 250.0


def _check_steady_state_range(a, d) -> None:
    r"""Refuse ``(A, d)`` whose stationary precision $\bar\Omega \approx A^{1/(1-d)}$ is out of range.

    $A$ sets the level of the precision through $A^{1/(1-d)}$, so a fixed ``A`` that is fine at
    ``d = 0.5`` means eigenvalues raised to the power 100 at ``d = 0.99``; such a precision (condition number
    beyond 1e12, or eigenvalues beyond 1e+-250) is out of reach of double precision, and every likelihood
    would be NaN or -inf. The message says how to rescale ``A``.
    """
    lowest, highest = log_steady_state_spectrum(a, d)
    lowest, highest = lowest / np.log(10.0), highest / np.log(10.0)
    power = 1.0 / (1.0 - d)
    if highest - lowest > _STEADY_STATE_LOG10_CONDITION_LIMIT or max(-lowest, highest) > \
            _STEADY_STATE_LOG10_SCALE_LIMIT:
        raise ValueError(
            f"d = {d:.6g} and A give a stationary precision Omega_bar ~ A^(1/(1-d)) = A^{power:.4g} with eigenvalues "
            f"from 1e{lowest:.1f} to 1e{highest:.1f}, beyond double precision (condition number at most "
            f"1e{_STEADY_STATE_LOG10_CONDITION_LIMIT:.0f}, eigenvalues within "
            f"1e+-{_STEADY_STATE_LOG10_SCALE_LIMIT:.0f});"
            " A sets the level of the precision through A^(1/(1-d)), so at persistent d it must be close to the "
            "identity: take A = Omega_hat^(1-d) with Omega_hat the inverse covariance of the returns (as "
            "WishartSV.start_values does)")


class _Panel(NamedTuple):
    values: np.ndarray
    index: pd.Index | None
    columns: list | None


def _conditional_mean_inverse(nu, d, a, cov_prev):
    r"""$S_T^{-1}/(\nu-k-1)$ given $\Omega_T^{-1}$ (``cov_prev``): the inverse scale of the transition."""
    k = a.shape[-1]
    precision = cho_solve((jnp.linalg.cholesky(cov_prev), True), jnp.eye(k, dtype=cov_prev.dtype))
    s_inv, _ = scale_inverse(precision, nu, d, jnp.linalg.cholesky(a))
    return s_inv / (nu - k - 1.0)


def _precision_factors(model, params, diag, offdiag):
    """Cholesky factors $F_t$ of $\\Omega_t$ from the Bartlett variables, one ``lax.scan``.

    $F_t = \\mathrm{chol}(S_{t-1}) B_t$ with the Cholesky factor of the scale of ``model.transition``.
    """
    k = diag.shape[-1]
    bartlett = _bartlett(diag, offdiag, k)

    def step(omega_prev, b_t):
        factor = model.transition(params, omega_prev).scale_tril @ b_t
        return factor @ factor.T, factor

    _, factors = lax.scan(step, model.steady_state(params), bartlett)
    return factors
