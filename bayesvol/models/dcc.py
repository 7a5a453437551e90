r"""DCC-GARCH (Engle 2002): per-asset GARCH(1,1) variances and a dynamic conditional correlation.

One recursion: [`DCC.update`][bayesvol.models.DCC.update] (each asset's GARCH update and the $Q_t$ update `q_update`)
with [`DCC.emission`][bayesvol.models.DCC.emission] (the law of the standardised residuals,
`DCCCorrelationStep.emission`, scaled by the GARCH standard deviations), run by the observation-driven engine of
`bayesvol.models._observation`. The simulator steps through ``update``; filtering
([`DCC.filter_states`][bayesvol.models.DCC.filter_states]: the exact likelihood, the NumPyro program, filtered and
forecast covariances) runs its two factors as two passes of the engine, the GARCH recursions and then
`DCCCorrelationStep` (the second step of Engle's two-step estimator) over the standardised residuals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pandas as pd
from jax import lax

import bayesvol.models._base as _base
import bayesvol.models._observation as _observation
import bayesvol.models._panel_gaps as _gaps
from bayesvol._validation import MIN_OBSERVATIONS, as_panel_values, time_coords
from bayesvol.distributions.priors import ShiftedExponential
from bayesvol.models._panel_gaps import DiagonalScale
from bayesvol.models._protocol import ModelDefaults, ObservationDrivenModelBase
from bayesvol.models.garch import GARCH, GARCHParams
from bayesvol.models.garch import default_priors as garch_priors

__all__ = ["DCC", "DCCCorrelationStep", "DCCParams", "DCCSimulation", "correlation_step_loglik", "exact_loglik",
           "q_update"]


class DCCParams(NamedTuple):
    """Parameters of [`DCC`][bayesvol.models.DCC]: per-asset GARCH vectors (length k), ``nu`` (t only), ``dcc_a``,
``dcc_b``."""

    mu: jax.Array | None = None
    omega: jax.Array | None = None
    alpha: jax.Array | None = None
    beta: jax.Array | None = None
    nu: jax.Array | None = None
    dcc_a: jax.Array | None = None
    dcc_b: jax.Array | None = None


class DCCState(NamedTuple):
    r"""State for time t: GARCH variances $\sigma^2_{t,i}$, $Q_t$ and the target $\bar Q$."""

    variance: jax.Array
    q: jax.Array
    q_bar: jax.Array


class CorrelationState(NamedTuple):
    r"""State of the correlation recursion alone: $Q_t$ and the target $\bar Q$."""

    q: jax.Array
    q_bar: jax.Array


class DCCSimulation(NamedTuple):
    """Simulated returns ``y`` (T, k) and conditional covariance matrices ``covariance`` (T, k, k)."""

    y: np.ndarray
    covariance: np.ndarray


class _Panel(NamedTuple):
    values: np.ndarray
    index: pd.Index | None
    columns: list | None


def default_priors() -> dict:
    """Per-asset GARCH priors as in `bayesvol.models.garch.default_priors` (one per asset, independent),
    ``nu - 2 ~ Exponential(0.1)``, ``dcc_a ~ Beta(1.5, 20)``, ``dcc_b ~ Beta(8, 1.5)``; the joint prior is
    truncated to the stationary region (every ``alpha + beta < 1`` and ``dcc_a + dcc_b < 1``)."""
    base = garch_priors()
    return {"mu": base["mu"], "omega": base["omega"], "alpha": base["alpha"], "beta": base["beta"],
            "nu": ShiftedExponential(0.1, 2.0), "dcc_a": ndist.Beta(1.5, 20.0), "dcc_b": ndist.Beta(8.0, 1.5)}


def _correlation(q):
    scale = lax.rsqrt(jnp.diagonal(q, axis1=-2, axis2=-1))
    return q * scale[..., :, None] * scale[..., None, :]


def q_update(params, q, q_bar, u_t):
    r"""The DCC(1,1) recursion $Q_{t+1} = (1-a-b)\bar Q + a u_t u_t' + b Q_t$ ($a$ = ``dcc_a``,
    $b$ = ``dcc_b``) from $Q_t$ and the standardised residual $u_t$."""
    return (1.0 - params.dcc_a - params.dcc_b) * q_bar + params.dcc_a * jnp.outer(u_t, u_t) + params.dcc_b * q


def target(u):
    r"""$\bar Q = T^{-1}\sum_t u_t u_t'$, the correlation target of standardised residuals ``u`` (T, k);
    with missing entries (NaN) each $\bar Q_{ij}$ averages the rows where both are observed
    (`pairwise_mean_outer_product`)."""
    return _gaps.pairwise_mean_outer_product(jnp.asarray(u))


def _correlation_law(dist: str, nu, correlation):
    r"""$N(0, R)$, or the multivariate t with ``nu`` degrees of freedom scaled to covariance $R$
    (batched over leading axes)."""
    chol = jnp.linalg.cholesky(correlation)
    loc = jnp.zeros(correlation.shape[:-1], dtype=correlation.dtype)
    if dist == "normal":
        return ndist.MultivariateNormal(loc, scale_tril=chol)
    return ndist.MultivariateStudentT(nu, loc, chol * jnp.sqrt((nu - 2.0) / nu))


@dataclass(frozen=True)
class DCC(ObservationDrivenModelBase):
    r"""DCC(1,1)-GARCH(1,1) model for a panel of k return series.

    Parameters
    ----------
    dist : {"normal", "t"}
        Joint law of the standardised returns: multivariate normal, or multivariate Student t with ``nu``
        degrees of freedom scaled to unit variances (its margins are the unit-variance t of
        [`GARCH`][bayesvol.models.GARCH] with the same ``nu``).
    mean : {"zero", "constant"}
        Zero mean (default, as in seed 003) or a constant ``mu`` per asset.
    priors : mapping, optional
        Parameter name -> scalar NumPyro distribution, overriding `default_priors` (per-asset
        parameters get that prior independently for every asset).
    variance_start : str or float
        How each GARCH recursion starts, as in [`GARCH`][bayesvol.models.GARCH] (``"backcast"`` matches
        ``arch``).

    Notes
    -----

    $$
    y_t &= \mu + \varepsilon_t, \qquad \varepsilon_t = H_t^{1/2} z_t, \qquad H_t = D_t R_t D_t, \\
    D_t &= \mathrm{diag}(\sigma_{t,1}, \dots, \sigma_{t,k}), \qquad
    \sigma^2_{t,i} = \omega_i + \alpha_i \varepsilon^2_{t-1,i} + \beta_i \sigma^2_{t-1,i}, \\
    u_t &= D_t^{-1}\varepsilon_t, \qquad Q_t = (1 - a - b)\bar Q + a\,u_{t-1}u_{t-1}' + b\,Q_{t-1},
    \qquad R_t = \mathrm{diag}(Q_t)^{-1/2} Q_t\, \mathrm{diag}(Q_t)^{-1/2},
    $$

    with $a$ = ``dcc_a``, $b$ = ``dcc_b``, $a, b \ge 0$, $a + b < 1$, and
    correlation targeting $\bar Q = T^{-1}\sum_t u_t u_t'$ (Engle 2002), so $\bar Q$ is a
    statistic of the data and the GARCH parameters, not a free parameter; $Q_1 = \bar Q$. Per-asset
    names are vectors of length k: ``omega``, ``alpha``, ``beta`` (and ``mu``); the shape parameter ``nu``
    is shared. The log-likelihood is exact:
    $\log p(y_t\mid y_{1:t-1}) = \log f(u_t; R_t) - \sum_i \log\sigma_{t,i}$.

    Estimation: ``bayesvol.fit(DCC(), y, method="two_step")`` (Engle's two-step estimator: every GARCH by
    maximum likelihood, then $a, b$ (and $\nu$) given the standardised residuals, see
    `bayesvol.inference.two_step.fit_two_step`), ``bayesvol.fit(DCC(), y)`` (all parameters jointly,
    starting from the two-step estimate) or ``bayesvol.sample`` (NUTS, the joint likelihood with the priors).

    Examples
    --------
    >>> import numpy as np, bayesvol
    >>> model = bayesvol.models.DCC()
    >>> params = {"omega": [0.05, 0.03], "alpha": [0.05, 0.08], "beta": [0.90, 0.88], "dcc_a": 0.04,
    ...           "dcc_b": 0.93}
    >>> sim = model.simulate(params, 500, 0, correlation=np.array([[1.0, 0.5], [0.5, 1.0]]))
    >>> sim.y.shape
    (500, 2)
    """

    dist: str = "normal"
    mean: str = "zero"
    priors: Mapping | None = field(default=None, compare=False, hash=False, repr=False)
    variance_start: str | float = "backcast"
    _prior_items: tuple = field(default=(), init=False, repr=False)

    params_type = DCCParams
    loglik_kind = _observation.LOGLIK_KIND
    latent_sites = ()
    hidden_sites = ()
    deterministic_sites = ("vol", "cov")
    # Missing returns (NaN): GARCH's update_missing per asset, the correlation rule of _panel_gaps.correlation_path.
    supports_missing = True

    def __post_init__(self):
        if self.dist not in ("normal", "t"):
            raise ValueError(f"dist must be 'normal' or 't', got {self.dist!r}")
        if self.mean not in ("zero", "constant"):
            raise ValueError(f"mean must be 'zero' or 'constant', got {self.mean!r}")
        merged = _base.merge_priors(default_priors(), self.priors, self.param_names)
        object.__setattr__(self, "_prior_items", tuple((k, merged[k]) for k in self.param_names
                                                        if self.priors and k in self.priors))
        object.__setattr__(self, "priors", None)
        object.__setattr__(self, "_merged", merged)
        # The per-asset variance recursion is GARCH's own (normal law: the law does not enter the recursion).
        object.__setattr__(self, "_garch", GARCH(vol="garch", dist="normal", mean=self.mean,
                                                 variance_start=self.variance_start))
        # The correlation recursion and the law of the standardised residuals (same q_update, same law).
        object.__setattr__(self, "_correlation_step", DCCCorrelationStep(dist=self.dist))

    @property
    def param_names(self) -> tuple[str, ...]:
        """Free parameters: per-asset GARCH vectors, then ``nu`` (t) and ``dcc_a``, ``dcc_b``."""
        return (("mu",) if self.mean == "constant" else ()) + ("omega", "alpha", "beta") + (
            ("nu",) if self.dist == "t" else ()) + ("dcc_a", "dcc_b")

    def prior_distributions(self) -> DCCParams:
        """Scalar prior of each parameter (applied to every asset for the per-asset ones)."""
        return DCCParams(**{name: self._merged[name] for name in self.param_names})

    def param_ndims(self) -> dict[str, int]:
        """Per-asset GARCH parameters are vectors (one value per asset); ``nu``, ``dcc_a``, ``dcc_b`` scalars."""
        return {name: 1 if name in ("mu", "omega", "alpha", "beta") else 0 for name in self.param_names}

    def describe(self) -> str:
        """One line naming the model."""
        return f"DCC(1,1)-GARCH(1,1), {self.mean} mean, {'normal' if self.dist == 'normal' else 'Student-t'}"

    def garch_model(self) -> GARCH:
        """The univariate model of each asset for the first step (same mean, law and variance start)."""
        return GARCH(vol="garch", dist=self.dist, mean=self.mean, variance_start=self.variance_start)

    # --- parameter space and data ---------------------------------------------------------------------
    def in_parameter_space(self, params):
        """False where some ``alpha + beta >= 1`` or ``dcc_a + dcc_b >= 1``."""
        return jnp.all(params.alpha + params.beta < 1.0) & (params.dcc_a + params.dcc_b < 1.0)

    def check_parameters(self, params, num_assets: int | None = None) -> None:
        """Raise ``ValueError`` naming the problem for concrete parameters outside the parameter space."""
        if not _observation.is_concrete(params):
            return
        shapes = {n: np.shape(getattr(params, n)) for n in ("omega", "alpha", "beta") + (
            ("mu",) if self.mean == "constant" else ())}
        if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 1:
            raise ValueError(f"per-asset parameters must be vectors of one common length k, got shapes {shapes}")
        k = shapes["omega"][0]
        if num_assets is not None and k != num_assets:
            raise ValueError(f"parameters are for {k} assets but y has {num_assets} columns")
        persistence = np.asarray(params.alpha + params.beta)
        if np.any(persistence >= 1.0):
            raise ValueError(f"alpha + beta = {persistence} must be below 1 for every asset (stationary GARCH)")
        if not float(params.dcc_a + params.dcc_b) < 1.0:
            raise ValueError(f"dcc_a + dcc_b = {float(params.dcc_a + params.dcc_b):.6g} must be below 1")

    def validate_data(self, y):
        """A (T, k) panel with k >= 2, no inf, no constant column and enough rows; NaN is a missing return
        (each column observed at least 20 times, each pair of columns on some common row)."""
        values, index, columns = as_panel_values(y)
        if values.ndim != 2:
            raise ValueError(f"y must be a (T, k) array of returns, one column per asset; got shape {values.shape}")
        T, k = values.shape
        _gaps.check_panel_gaps(values, index, columns or list(range(k)), MIN_OBSERVATIONS, pairs=True)
        needed = max(MIN_OBSERVATIONS, 2 * k + 2)
        if T < needed:
            raise ValueError(f"y has {T} observations of {k} series; at least {needed} are needed")
        if np.any(_gaps.observed_ptp(values) == 0.0):
            raise ValueError("a column of y is constant; its volatility cannot be estimated")
        if k < 2:
            raise ValueError("DCC needs at least two return series (columns of y)")
        return _Panel(values, index, columns)

    # --- the observation-driven protocol ----------------------------------------------------------------
    def _garch_params(self, params):
        return GARCHParams(mu=params.mu if self.mean == "constant" else None, omega=params.omega,
                           alpha=params.alpha, beta=params.beta)

    def garch_variances(self, params, y):
        r"""GARCH variance paths $\sigma^2_{t,i}$ for $t = 1..T+1$ (shape (T + 1, k))."""
        garch = self._garch

        def one_asset(p_i, y_i):
            states, last = _observation.filter_states(garch, p_i, y_i)
            return jnp.concatenate([states, last[None]])

        return jax.vmap(one_asset, in_axes=(0, 1), out_axes=1)(self._garch_params(params), y)

    def _mu(self, params):
        return params.mu if self.mean == "constant" else 0.0

    def standardised_residuals(self, params, y):
        r"""$u_t = (y_t - \mu)/\sigma_t$ (T, k) and the variance path (T + 1, k)."""
        variances = self.garch_variances(params, y)
        return (y - self._mu(params)) * lax.rsqrt(variances[:-1]), variances

    def init_state(self, params, y, q_bar=None):
        r"""State for t = 1: GARCH start variances and $Q_1 = \bar Q$.

        With data, $\bar Q$ is the target of the standardised residuals (unless ``q_bar`` fixes it);
        without (``y`` None, for simulation) the GARCH variances start at their unconditional values and
        $\bar Q$ is ``q_bar`` or the identity.
        """
        garch_params = self._garch_params(params)
        if y is None:
            variance = self._garch.init_state(garch_params, None)
            q_bar = jnp.eye(jnp.shape(variance)[-1]) if q_bar is None else jnp.asarray(q_bar, dtype=variance.dtype)
            return DCCState(variance=variance, q=q_bar, q_bar=q_bar)
        if q_bar is None:
            u, variances = self.standardised_residuals(params, y)
            q_bar = target(u)
            variance = variances[0]
        else:
            q_bar = jnp.asarray(q_bar, dtype=y.dtype)
            variance = jax.vmap(self._garch.init_state, in_axes=(0, 1))(garch_params, y)
        return DCCState(variance=variance, q=q_bar, q_bar=q_bar)

    def update(self, params, state, y_t):
        """State for t + 1 from the state for t and $y_t$: each GARCH update and `q_update`."""
        variance = self._garch.update(self._garch_params(params), state.variance, y_t)
        u_t = (y_t - self._mu(params)) * lax.rsqrt(state.variance)
        return DCCState(variance=variance, q=q_update(params, state.q, state.q_bar, u_t), q_bar=state.q_bar)

    def update_missing(self, params, state):
        r"""State for t + 1 when $y_t$ is missing: GARCH's ``update_missing`` per asset and
        $Q_{t+1} = (1-a-b)\bar Q + a R_t + b Q_t$ ($E[u_t u_t' \mid \mathcal F_{t-1}] = R_t$)."""
        variance = self._garch.update_missing(self._garch_params(params), state.variance)
        q = (1.0 - params.dcc_a - params.dcc_b) * state.q_bar + params.dcc_a * _correlation(state.q) \
            + params.dcc_b * state.q
        return DCCState(variance=variance, q=q, q_bar=state.q_bar)

    def filter_states(self, params, y, q_bar=None):
        r"""States governing $y_1, \dots, y_T$ and the state for $T + 1$ (a `DCCState` each).

        The two factors of [`update`][bayesvol.models.DCC.update] run in two passes of the observation-driven engine:
        the per-asset GARCH recursions (which do not depend on $Q_t$) give $u_t$, then `q_update` runs over
        $u_t$ (`DCCCorrelationStep`). Same numbers as one pass over [`update`][bayesvol.models.DCC.update], and a
        cheaper reverse-mode gradient ($u_t$ enters the loop as data). ``q_bar`` fixes the target
        $\bar Q$ (default: `target` of the residuals).
        """
        u, variances = self.standardised_residuals(params, y)
        start = None if q_bar is None else CorrelationState(q=q_bar, q_bar=q_bar)
        corr, corr_last = self._correlation_step.filter_states(params, u, state=start)
        return (DCCState(variance=variances[:-1], q=corr.q, q_bar=corr.q_bar),
                DCCState(variance=variances[-1], q=corr_last.q, q_bar=corr_last.q_bar))

    def covariance(self, state):
        r"""$H_t = D_t R_t D_t$ from a state (batched)."""
        sd = jnp.sqrt(state.variance)
        return _correlation(state.q) * sd[..., :, None] * sd[..., None, :]

    def emission(self, params, state):
        r"""Law of $y_t$ given the state: $\mu + D_t u_t$ with $u_t$ from the correlation step's
        emission, i.e. $N(\mu, H_t)$ or the multivariate t of covariance $H_t$."""
        loc = jnp.broadcast_to(jnp.asarray(self._mu(params), dtype=state.q.dtype), state.variance.shape)
        law = self._correlation_step.emission(params, CorrelationState(q=state.q, q_bar=state.q_bar))
        return DiagonalScale(law, loc, state.variance)

    def pointwise_loglik(self, params, y):
        r"""Exact $\log p(y_t \mid y_{1:t-1}, \theta)$: [`emission`][bayesvol.models.DCC.emission] along
[`filter_states`][bayesvol.models.DCC.filter_states]
        (``-inf`` off the parameter space)."""
        states, _ = self.filter_states(params, y)
        return self.loglik_from_states(params, states, y)

    def loglik_from_states(self, params, states, y):
        r"""$\log p(y_t \mid y_{1:t-1})$ along a state path; with missing returns (NaN) the density of
        each row's observed assets, $\log f(u_{t,o}; R_{t,oo}) - \sum_{i\in o}\log\sigma_{t,i}$."""
        if _base.is_complete(y):
            return _observation.loglik_from_states(self, params, states, y)
        u = (y - self._mu(params)) * lax.rsqrt(states.variance)
        terms = _gaps.correlation_loglik(self.dist, params.nu, states.q, u) \
            - 0.5 * jnp.sum(jnp.where(jnp.isnan(y), 0.0, jnp.log(states.variance)), axis=-1)
        return jnp.where(self.in_parameter_space(params), terms, -jnp.inf)

    # --- forecasts and simulation -------------------------------------------------------------------------
    def filtered_covariances(self, params, y, *, q_bar=None) -> np.ndarray:
        r"""One-step-ahead covariances $H_t$, $t = 1..T+1$ (shape (T + 1, k, k)), given $y_{1:T}$.

        ``q_bar`` fixes the correlation target (e.g. estimated on a training window, so that forecasts on
        later data use no future information); by default it is computed from ``y``.
        """
        params = _base.as_params(self, params)
        y = jnp.asarray(self.validate_data(y).values)
        self.check_parameters(params, y.shape[1])
        states, last = self.filter_states(params, y, None if q_bar is None else jnp.asarray(q_bar, dtype=y.dtype))
        stacked = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b[None]]), states, last)
        return np.asarray(self.covariance(stacked))

    def forecast_covariance(self, params, y, **options) -> np.ndarray:
        r"""One-step-ahead covariance forecast $H_{T+1} = E[\varepsilon_{T+1}\varepsilon_{T+1}' \mid y_{1:T}]$."""
        return self.filtered_covariances(params, y, **options)[-1]

    def target_correlation(self, params, y) -> np.ndarray:
        r"""$\bar Q$: the mean outer product of the standardised residuals of ``y`` at ``params``."""
        params = _base.as_params(self, params)
        u, _ = self.standardised_residuals(params, jnp.asarray(self.validate_data(y).values))
        return np.asarray(target(u))

    def simulate(self, params, num_timesteps: int, key, *, correlation=None) -> DCCSimulation:
        r"""Simulate from the unconditional GARCH variances with $Q_1 = \bar Q$ = ``correlation``.

        ``key`` is an integer seed, ``None`` (a fresh random seed) or a JAX random key. ``correlation`` is the
        target $\bar Q$ (default: the identity); with targeting, the sample $\bar Q$ of a long
        simulated series is close to it. The path runs [`update`][bayesvol.models.DCC.update] on draws from
        [`emission`][bayesvol.models.DCC.emission].
        """
        num_timesteps, key = _base.simulation_inputs(num_timesteps, key)
        params = _base.as_params(self, params)
        self.check_parameters(params)
        state = self.init_state(params, None, q_bar=correlation)
        y, states = _observation.simulate_path(self, params, num_timesteps, key, state=state)
        return DCCSimulation(y=np.asarray(y), covariance=np.asarray(self.covariance(states)))

    # --- estimation hooks -----------------------------------------------------------------------------------
    def rescale_params(self, params, scale):
        r"""Parameters for returns $y_{t,i} s_i$ (``scale`` one per asset or one for all): each asset's
        $\mu_i \to s_i\mu_i$, $\omega_i \to s_i^2\omega_i$; the correlation dynamics are free of
        units. ``None`` with a numeric ``variance_start`` or priors whose supports are not free of units."""
        unit_names = ("omega",) + (("mu",) if self.mean == "constant" else ())
        if isinstance(self.variance_start, float) or not _base.scale_free_supports(self, multiplied=unit_names):
            return None
        values = params._asdict()
        values["omega"] = params.omega * scale**2
        if self.mean == "constant":
            values["mu"] = params.mu * scale
        return DCCParams(**values)

    def start_values(self, y) -> list[dict]:
        """Typical values (GARCH persistence 0.95, ``dcc_a = 0.03``, ``dcc_b = 0.95``, variances matched).

        The registered joint estimator starts from Engle's two-step estimate instead
        (`bayesvol.inference.two_step.fit_joint`); these are for a direct optimisation without ``start``.
        """
        y = np.asarray(y, dtype=np.float64)
        mu = np.nanmean(y, axis=0) if self.mean == "constant" else np.zeros(y.shape[1])
        variance = np.nanmean((y - mu) ** 2, axis=0)
        start = {"omega": 0.05 * variance, "alpha": np.full(y.shape[1], 0.05), "beta": np.full(y.shape[1], 0.90),
                 "dcc_a": 0.03, "dcc_b": 0.95}
        if self.mean == "constant":
            start["mu"] = mu
        if self.dist == "t":
            start["nu"] = 8.0
        return [start]

    def program(self, y):
        """NumPyro program: per-asset GARCH and DCC priors, the exact likelihood as factor ``y``, ``vol``, ``cov``.

        ``cov`` holds the one-step-ahead covariances $H_t$ (given $y_{1:t-1}$) of each draw, which
        the posterior predictive draws use.
        """
        k = y.shape[1]
        priors = self.prior_distributions()
        values = {}
        for name in self.param_names:
            prior = getattr(priors, name)
            per_asset = name in ("mu", "omega", "alpha", "beta")
            values[name] = numpyro.sample(name, prior.expand([k]).to_event(1) if per_asset else prior)
        params = DCCParams(**values)
        states, _ = self.filter_states(params, y)
        cov = self.covariance(states)
        numpyro.deterministic("vol", jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1)))
        numpyro.deterministic("cov", cov)
        numpyro.factor("y", self.loglik_from_states(params, states, y))

    def site_dims(self, index, y):
        """ArviZ dims: ``asset`` for per-asset parameters, ``time``/``asset`` for ``vol`` and ``y``, and
        ``time``/``asset``/``asset2`` for ``cov``."""
        T, k = y.shape
        dims = {name: ["asset"] for name in ("mu", "omega", "alpha", "beta")}
        dims.update({"vol": ["time", "asset"], "y": ["time", "asset"], "cov": ["time", "asset", "asset2"]})
        return dims, {"time": time_coords(index, T), "asset": np.arange(k), "asset2": np.arange(k)}

    def pointwise_loglik_draws(self, draws: dict, y):
        """Exact one-step-ahead log-likelihood per draw, dims (chain, draw, time)."""
        names = self.param_names
        lead = np.shape(draws[names[0]])[:2]
        flat = {n: jnp.reshape(jnp.asarray(draws[n]), (-1,) + np.shape(draws[n])[2:]) for n in names}
        y = jnp.asarray(y)
        values = jax.jit(jax.vmap(lambda v: self.pointwise_loglik(DCCParams(**v), y)))(flat)
        return np.asarray(values).reshape(lead + (y.shape[0],))

    def predictive_draws(self, draws: dict, key):
        r"""Replicated returns $y^{rep}_t \sim p(y_t \mid y_{1:t-1}, \theta)$ per draw, from its ``cov`` path.

        The one-step law is $N(\mu, H_t)$ or the multivariate t with covariance $H_t$; ``draws``
        holds the posterior draws (``chain, draw`` leading axes) including the ``cov`` site of the program.
        """
        cov = jnp.asarray(draws["cov"])
        lead = cov.shape[:2]
        k = cov.shape[-1]
        chol = jnp.linalg.cholesky(cov)
        mu = jnp.zeros(lead + (k,), dtype=cov.dtype) if self.mean == "zero" else jnp.asarray(draws["mu"])
        key_z, key_g = jax.random.split(key)
        z = jax.random.normal(key_z, cov.shape[:-1], dtype=cov.dtype)
        if self.dist == "t":
            nu = jnp.asarray(draws["nu"])[..., None]                                   # (chain, draw, 1)
            gamma = jax.random.gamma(key_g, 0.5 * jnp.broadcast_to(nu, cov.shape[:-2]), dtype=cov.dtype)
            # t with nu degrees of freedom scaled to covariance H: sqrt((nu - 2) / (2 g)) H^{1/2} z, g ~ Gamma(nu/2).
            z = z * jnp.sqrt(0.5 * (nu - 2.0) / gamma)[..., None]
        return np.asarray(mu[:, :, None, :] + jnp.einsum("...ij,...j->...i", chol, z))

    def posterior_forecast_covariance(self, idata, y) -> np.ndarray:
        r"""Posterior mean of $H_{T+1}$ (each draw filtered through ``y``)."""
        post = idata.posterior
        names = self.param_names
        flat = {n: jnp.reshape(jnp.asarray(post[n].values), (-1,) + post[n].shape[2:]) for n in names}
        y = jnp.asarray(self.validate_data(y).values)

        def one(v):
            _, last = self.filter_states(DCCParams(**v), y)
            return self.covariance(last)

        return np.asarray(jnp.mean(jax.jit(jax.vmap(one))(flat), axis=0))


def exact_loglik(model: DCC, params: DCCParams, y, **options):
    """Exact pointwise log-likelihood ``log p(y_t | y_{1:t-1}, theta)`` of a [`DCC`][bayesvol.models.DCC] model
(differentiable)."""
    if options:
        raise TypeError(f"the exact DCC log-likelihood takes no options, got {sorted(options)}")
    model.check_parameters(params, y.shape[1])
    return model.pointwise_loglik(params, y)


class _Residuals(NamedTuple):
    values: np.ndarray
    index: object


@dataclass(frozen=True)
class DCCCorrelationStep(ModelDefaults):
    r"""The DCC correlation model of standardised residuals $u_t$, the second step of Engle's estimator.

    Parameters ``dcc_a``, ``dcc_b`` (and ``nu`` for ``dist="t"``); $u_t \sim N(0, R_t)$ (or the
    multivariate t with covariance $R_t$) with $R_t$ the correlation of $Q_t$ from
    `q_update`, $Q_1 = \bar Q$ = `target` of the residuals. An observation-driven model like
    [`DCC`][bayesvol.models.DCC] (``init_state``, ``update``, ``emission``), so its likelihood is
    `correlation_step_loglik` on the same engine.
    """

    dist: str = "normal"
    params_type = DCCParams
    loglik_kind = _observation.LOGLIK_KIND

    @property
    def param_names(self):
        return (("nu",) if self.dist == "t" else ()) + ("dcc_a", "dcc_b")

    def prior_distributions(self):
        priors = default_priors()
        return DCCParams(**{n: priors[n] for n in self.param_names})

    def validate_data(self, u):
        values = np.asarray(u, dtype=np.float64)
        return _Residuals(values, None)

    def describe(self):
        return "DCC(1,1) correlation step (standardised residuals)"

    def start_values(self, u):
        starts = [{"dcc_a": a, "dcc_b": b} for a, b in ((0.03, 0.95), (0.08, 0.85), (0.01, 0.98))]
        if self.dist == "t":
            for s in starts:
                s["nu"] = 8.0
        return starts

    def in_parameter_space(self, params):
        """False where ``dcc_a + dcc_b >= 1``."""
        return params.dcc_a + params.dcc_b < 1.0

    def init_state(self, params, u):
        r"""$Q_1 = \bar Q$ = `target` of the residuals ``u``."""
        q_bar = target(u)
        return CorrelationState(q=q_bar, q_bar=q_bar)

    def update(self, params, state, u_t):
        """$Q_{t+1}$ by `q_update`."""
        return CorrelationState(q=q_update(params, state.q, state.q_bar, u_t), q_bar=state.q_bar)

    def emission(self, params, state):
        r"""Law of $u_t$: $N(0, R_t)$ or the multivariate t with covariance $R_t$."""
        return _correlation_law(self.dist, params.nu, _correlation(state.q))

    def filter_states(self, params, u, state=None):
        """$Q_t$ path and the state for T + 1; rows with missing entries (NaN) by
        `correlation_path`."""
        if _base.is_complete(u):
            return _observation.filter_states(self, params, u, state=state)
        q_bar = self.init_state(params, u).q_bar if state is None else state.q_bar
        path, last = _gaps.correlation_path(params, self.dist, u, q_bar)
        return (CorrelationState(q=path, q_bar=jnp.broadcast_to(q_bar, path.shape)),
                CorrelationState(q=last, q_bar=q_bar))

    def pointwise_loglik(self, params, u):
        """Pointwise log density of the observed entries of each row of ``u``."""
        states, _ = self.filter_states(params, u)
        if _base.is_complete(u):
            return _observation.loglik_from_states(self, params, states, u)
        terms = _gaps.correlation_loglik(self.dist, params.nu, states.q, u)
        return jnp.where(self.in_parameter_space(params), terms, -jnp.inf)


def correlation_step_loglik(model: DCCCorrelationStep, params: DCCParams, u, **options):
    """Pointwise log density of standardised residuals ``u`` under `DCCCorrelationStep` (differentiable)."""
    if options:
        raise TypeError(f"the DCC correlation-step log-likelihood takes no options, got {sorted(options)}")
    return model.pointwise_loglik(params, u)
