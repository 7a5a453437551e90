r"""DCC-GARCH (Engle 2002): per-asset GARCH(1,1) variances and a dynamic conditional correlation."""

from __future__ import annotations

import warnings
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
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import gammaln

from bayesvol.distributions.priors import ShiftedExponential
from bayesvol.inference.mle import register_loglik
from bayesvol.models import _base, _observation
from bayesvol.models.garch import GARCH, GARCHParams
from bayesvol.models.garch import default_priors as garch_priors

__all__ = ["DCC", "DCCParams", "DCCSimulation", "DCCTwoStepResult"]

LOG_PI = 1.1447298858494002


class DCCParams(NamedTuple):
    """Parameters of :class:`DCC`: per-asset GARCH vectors (length k), ``nu`` (t only), ``dcc_a``, ``dcc_b``."""

    mu: jax.Array | None = None
    omega: jax.Array | None = None
    alpha: jax.Array | None = None
    beta: jax.Array | None = None
    nu: jax.Array | None = None
    dcc_a: jax.Array | None = None
    dcc_b: jax.Array | None = None


class DCCState(NamedTuple):
    r"""State for time t: GARCH variances :math:`\sigma^2_{t,i}`, :math:`Q_t` and the target :math:`\bar Q`."""

    variance: jax.Array
    q: jax.Array
    q_bar: jax.Array


class DCCSimulation(NamedTuple):
    """Simulated returns ``y`` (T, k) and conditional covariance matrices ``covariance`` (T, k, k)."""

    y: np.ndarray
    covariance: np.ndarray


def default_priors() -> dict:
    """Per-asset GARCH priors as in :func:`bayesvol.models.garch.default_priors` (one per asset, independent),
    ``nu - 2 ~ Exponential(0.1)``, ``dcc_a ~ Beta(1.5, 20)``, ``dcc_b ~ Beta(8, 1.5)``; the joint prior is
    truncated to the stationary region (every ``alpha + beta < 1`` and ``dcc_a + dcc_b < 1``)."""
    base = garch_priors()
    return {"mu": base["mu"], "omega": base["omega"], "alpha": base["alpha"], "beta": base["beta"],
            "nu": ShiftedExponential(0.1, 2.0), "dcc_a": ndist.Beta(1.5, 20.0), "dcc_b": ndist.Beta(8.0, 1.5)}


def _correlation(q):
    scale = lax.rsqrt(jnp.diagonal(q, axis1=-2, axis2=-1))
    return q * scale[..., :, None] * scale[..., None, :]


def correlation_loglik(u, q_bar, dcc_a, dcc_b, nu=None):
    r"""Log density of standardised residuals :math:`u_t` under the DCC(1,1) correlations, per time step.

    :math:`Q_1 = \bar Q`, :math:`Q_t = (1-a-b)\bar Q + a u_{t-1}u_{t-1}' + b Q_{t-1}`,
    :math:`R_t = \mathrm{diag}(Q_t)^{-1/2} Q_t\, \mathrm{diag}(Q_t)^{-1/2}`; the law of :math:`u_t` is
    :math:`N(0, R_t)`, or with ``nu`` the multivariate t with :math:`\nu` degrees of freedom scaled to
    covariance :math:`R_t`. Returns ``(loglik (T,), R (T, k, k), Q_{T+1})``.
    """
    T, k = u.shape

    def step(q, u_t):
        return (1.0 - dcc_a - dcc_b) * q_bar + dcc_a * jnp.outer(u_t, u_t) + dcc_b * q, q

    q_last, qs = lax.scan(step, q_bar, u)
    corr = _correlation(qs)
    chol = jnp.linalg.cholesky(corr)
    half_logdet = jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    maha = jnp.sum(solve_triangular(chol, u[..., None], lower=True)[..., 0] ** 2, axis=-1)
    if nu is None:
        return -0.5 * k * (LOG_PI + jnp.log(2.0)) - half_logdet - 0.5 * maha, corr, q_last
    const = gammaln(0.5 * (nu + k)) - gammaln(0.5 * nu) - 0.5 * k * (jnp.log(nu - 2.0) + LOG_PI)
    return const - half_logdet - 0.5 * (nu + k) * jnp.log1p(maha / (nu - 2.0)), corr, q_last


@dataclass(frozen=True)
class DCC:
    r"""DCC(1,1)-GARCH(1,1) model for a panel of k return series.

    Parameters
    ----------
    dist : {"normal", "t"}
        Joint law of the standardised returns: multivariate normal, or multivariate Student t with ``nu``
        degrees of freedom scaled to unit variances (its margins are the unit-variance t of
        :class:`~bayesvol.models.GARCH` with the same ``nu``).
    mean : {"zero", "constant"}
        Zero mean (default, as in seed 003) or a constant ``mu`` per asset.
    priors : mapping, optional
        Parameter name -> scalar NumPyro distribution, overriding :func:`default_priors` (per-asset
        parameters get that prior independently for every asset).
    variance_start : str or float
        How each GARCH recursion starts, as in :class:`~bayesvol.models.GARCH` (``"backcast"`` matches
        ``arch``).

    Notes
    -----
    .. math::

        y_t &= \mu + \varepsilon_t, \qquad \varepsilon_t = H_t^{1/2} z_t, \qquad H_t = D_t R_t D_t, \\
        D_t &= \mathrm{diag}(\sigma_{t,1}, \dots, \sigma_{t,k}), \qquad
        \sigma^2_{t,i} = \omega_i + \alpha_i \varepsilon^2_{t-1,i} + \beta_i \sigma^2_{t-1,i}, \\
        u_t &= D_t^{-1}\varepsilon_t, \qquad Q_t = (1 - a - b)\bar Q + a\,u_{t-1}u_{t-1}' + b\,Q_{t-1},
        \qquad R_t = \mathrm{diag}(Q_t)^{-1/2} Q_t\, \mathrm{diag}(Q_t)^{-1/2},

    with :math:`a` = ``dcc_a``, :math:`b` = ``dcc_b``, :math:`a, b \ge 0`, :math:`a + b < 1`, and
    correlation targeting :math:`\bar Q = T^{-1}\sum_t u_t u_t'` (Engle 2002), so :math:`\bar Q` is a
    statistic of the data and the GARCH parameters, not a free parameter; :math:`Q_1 = \bar Q`. Per-asset
    names are vectors of length k: ``omega``, ``alpha``, ``beta`` (and ``mu``); the shape parameter ``nu``
    is shared. The log-likelihood is exact:
    :math:`\log p(y_t\mid y_{1:t-1}) = \log f(u_t; R_t) - \sum_i \log\sigma_{t,i}`.

    Estimation: :meth:`fit_two_step` (Engle's two-step estimator: every GARCH by maximum likelihood, then
    :math:`a, b` (and :math:`\nu`) given the standardised residuals), ``bayesvol.fit(DCC(), y)`` (all
    parameters jointly, starting from the two-step estimate) or ``bayesvol.sample`` (NUTS, the joint
    likelihood with the priors).

    Examples
    --------
    >>> import numpy as np, bayesvol
    >>> model = bayesvol.models.DCC()
    >>> params = {"omega": [0.05, 0.03], "alpha": [0.05, 0.08], "beta": [0.90, 0.88], "dcc_a": 0.04,
    ...           "dcc_b": 0.93}
    >>> sim = model.simulate(params, 500, seed=0, correlation=np.array([[1.0, 0.5], [0.5, 1.0]]))
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

    @property
    def param_names(self) -> tuple[str, ...]:
        """Free parameters: per-asset GARCH vectors, then ``nu`` (t) and ``dcc_a``, ``dcc_b``."""
        return (("mu",) if self.mean == "constant" else ()) + ("omega", "alpha", "beta") + (
            ("nu",) if self.dist == "t" else ()) + ("dcc_a", "dcc_b")

    def prior_distributions(self) -> DCCParams:
        """Scalar prior of each parameter (applied to every asset for the per-asset ones)."""
        return DCCParams(**{name: self._merged[name] for name in self.param_names})

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
        """A (T, k) panel with k >= 2, no NaN/inf and enough rows."""
        from bayesvol.models.wishart_sv import WishartSV

        panel = WishartSV().validate_data(y)
        if panel.values.shape[1] < 2:
            raise ValueError("DCC needs at least two return series (columns of y)")
        return panel

    # --- the observation-driven protocol ----------------------------------------------------------------
    def _garch_params(self, params):
        return GARCHParams(mu=params.mu if self.mean == "constant" else None, omega=params.omega,
                           alpha=params.alpha, beta=params.beta)

    def garch_variances(self, params, y):
        r"""GARCH variance paths :math:`\sigma^2_{t,i}` for :math:`t = 1..T+1` (shape (T + 1, k))."""
        garch = self._garch

        def one_asset(p_i, y_i):
            states, last = _observation.filter_states(garch, p_i, y_i)
            return jnp.concatenate([states, last[None]])

        return jax.vmap(one_asset, in_axes=(0, 1), out_axes=1)(self._garch_params(params), y)

    def _mu(self, params):
        return params.mu if self.mean == "constant" else 0.0

    def standardised_residuals(self, params, y):
        r""":math:`u_t = (y_t - \mu)/\sigma_t` (T, k) and the variance path (T + 1, k)."""
        variances = self.garch_variances(params, y)
        return (y - self._mu(params)) * lax.rsqrt(variances[:-1]), variances

    def init_state(self, params, y):
        r"""State for t = 1: GARCH start variances, :math:`Q_1 = \bar Q` from the standardised residuals."""
        u, variances = self.standardised_residuals(params, y)
        q_bar = u.T @ u / u.shape[0]
        return DCCState(variance=variances[0], q=q_bar, q_bar=q_bar)

    def update(self, params, state, y_t):
        """State for t + 1 from the state for t and :math:`y_t`."""
        variance = self._garch.update(self._garch_params(params), state.variance, y_t)
        u_t = (y_t - self._mu(params)) * lax.rsqrt(state.variance)
        q = (1.0 - params.dcc_a - params.dcc_b) * state.q_bar + params.dcc_a * jnp.outer(u_t, u_t) \
            + params.dcc_b * state.q
        return DCCState(variance=variance, q=q, q_bar=state.q_bar)

    def covariance(self, state):
        r""":math:`H_t = D_t R_t D_t` from a state (batched)."""
        sd = jnp.sqrt(state.variance)
        return _correlation(state.q) * sd[..., :, None] * sd[..., None, :]

    def emission(self, params, state):
        r"""Law of :math:`y_t` given the state: :math:`N(\mu, H_t)` or the unit-covariance-scaled t."""
        k = state.variance.shape[-1]
        loc = jnp.broadcast_to(jnp.asarray(self._mu(params), dtype=state.q.dtype), state.variance.shape)
        chol = jnp.linalg.cholesky(self.covariance(state))
        if self.dist == "normal":
            return ndist.MultivariateNormal(loc, scale_tril=chol)
        nu = params.nu
        del k
        return ndist.MultivariateStudentT(nu, loc, chol * jnp.sqrt((nu - 2.0) / nu))

    def pointwise_loglik(self, params, y):
        r"""Exact :math:`\log p(y_t \mid y_{1:t-1}, \theta)`: correlation part minus :math:`\sum_i\log\sigma_{t,i}`."""
        return self._loglik_and_covariance(params, y)[0]

    def _loglik_and_covariance(self, params, y):
        """Pointwise exact log-likelihood (T,) and the one-step covariances :math:`H_t` (T, k, k) in one pass."""
        u, variances = self.standardised_residuals(params, y)
        q_bar = u.T @ u / u.shape[0]
        terms, corr, _ = correlation_loglik(u, q_bar, params.dcc_a, params.dcc_b,
                                            params.nu if self.dist == "t" else None)
        terms = terms - 0.5 * jnp.sum(jnp.log(variances[:-1]), axis=-1)
        sd = jnp.sqrt(variances[:-1])
        cov = corr * sd[:, :, None] * sd[:, None, :]
        return jnp.where(self.in_parameter_space(params), terms, -jnp.inf), cov

    # --- forecasts and simulation -------------------------------------------------------------------------
    def filtered_covariances(self, params, y, *, q_bar=None) -> np.ndarray:
        r"""One-step-ahead covariances :math:`H_t`, :math:`t = 1..T+1` (shape (T + 1, k, k)), given :math:`y_{1:T}`.

        ``q_bar`` fixes the correlation target (e.g. estimated on a training window, so that forecasts on
        later data use no future information); by default it is computed from ``y``.
        """
        params = _base.as_params(self, params)
        y = jnp.asarray(self.validate_data(y).values)
        self.check_parameters(params, y.shape[1])
        state = self.init_state(params, y)
        if q_bar is not None:
            q_bar = jnp.asarray(q_bar, dtype=y.dtype)
            state = DCCState(variance=state.variance, q=q_bar, q_bar=q_bar)
        last, states = lax.scan(lambda s, y_t: (self.update(params, s, y_t), s), state, y)
        stacked = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b[None]]), states, last)
        return np.asarray(self.covariance(stacked))

    def forecast_covariance(self, params, y, **options) -> np.ndarray:
        r"""One-step-ahead covariance forecast :math:`H_{T+1} = E[\varepsilon_{T+1}\varepsilon_{T+1}' \mid y_{1:T}]`."""
        return self.filtered_covariances(params, y, **options)[-1]

    def target_correlation(self, params, y) -> np.ndarray:
        r""":math:`\bar Q`: the mean outer product of the standardised residuals of ``y`` at ``params``."""
        params = _base.as_params(self, params)
        u, _ = self.standardised_residuals(params, jnp.asarray(self.validate_data(y).values))
        return np.asarray(u.T @ u / u.shape[0])

    def simulate(self, params, num_timesteps: int, seed: int = 0, *, correlation=None) -> DCCSimulation:
        r"""Simulate from the unconditional GARCH variances with :math:`Q_1 = \bar Q` = ``correlation``.

        ``correlation`` is the target :math:`\bar Q` (default: the identity); with targeting, the
        sample :math:`\bar Q` of a long simulated series is close to it.
        """
        params = _base.as_params(self, params)
        self.check_parameters(params)
        k = np.shape(params.omega)[0]
        q_bar = jnp.eye(k) if correlation is None else jnp.asarray(correlation, dtype=jnp.float64)
        state = DCCState(variance=self._garch.init_state(self._garch_params(params), None), q=q_bar, q_bar=q_bar)
        y, states = _observation.simulate_path(self, params, num_timesteps, jax.random.PRNGKey(seed), state=state)
        return DCCSimulation(y=np.asarray(y), covariance=np.asarray(self.covariance(states)))

    # --- estimation ----------------------------------------------------------------------------------------
    def fit_two_step(self, y, **fit_options) -> DCCTwoStepResult:
        """Engle's two-step estimator; see :class:`DCCTwoStepResult`."""
        return fit_two_step(self, y, **fit_options)

    def start_values(self, y) -> list[dict]:
        """The two-step estimate (a good start for the joint maximum likelihood)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fit_two_step(self, y)
        return [{n: np.asarray(v) for n, v in result.params.items()}]

    def program(self, y):
        """NumPyro program: per-asset GARCH and DCC priors, the exact likelihood as factor ``y``, ``vol``, ``cov``.

        ``cov`` holds the one-step-ahead covariances :math:`H_t` (given :math:`y_{1:t-1}`) of each draw, which
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
        terms, cov = self._loglik_and_covariance(params, y)
        numpyro.deterministic("vol", jnp.sqrt(jnp.diagonal(cov, axis1=-2, axis2=-1)))
        numpyro.deterministic("cov", cov)
        numpyro.factor("y", terms)

    def site_dims(self, index, y):
        """ArviZ dims: ``asset`` for per-asset parameters, ``time``/``asset`` for ``vol`` and ``y``, and
        ``time``/``asset``/``asset2`` for ``cov``."""
        from bayesvol.inference._idata import time_coords

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
        r"""Replicated returns :math:`y^{rep}_t \sim p(y_t \mid y_{1:t-1}, \theta)` per draw, from its ``cov`` path.

        The one-step law is :math:`N(\mu, H_t)` or the multivariate t with covariance :math:`H_t`; ``draws``
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
        r"""Posterior mean of :math:`H_{T+1}` (each draw filtered through ``y``)."""
        post = idata.posterior
        names = self.param_names
        flat = {n: jnp.reshape(jnp.asarray(post[n].values), (-1,) + post[n].shape[2:]) for n in names}
        y = jnp.asarray(self.validate_data(y).values)

        def one(v):
            params = DCCParams(**v)
            state = self.init_state(params, y)
            last = lax.fori_loop(0, y.shape[0], lambda t, s: self.update(params, s, y[t]), state)
            return self.covariance(last)

        return np.asarray(jnp.mean(jax.jit(jax.vmap(one))(flat), axis=0))


@register_loglik(DCC, "exact")
def _dcc_exact_loglik(model, params, y, **options):
    if options:
        raise TypeError(f"the exact DCC log-likelihood takes no options, got {sorted(options)}")
    model.check_parameters(params, y.shape[1])
    return model.pointwise_loglik(params, y)


# --- the two-step estimator --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DCCCorrelationStep:
    """Second step of the two-step estimator: ``dcc_a``, ``dcc_b`` (and ``nu``) given standardised residuals."""

    dist: str = "normal"
    params_type = DCCParams

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


class _Residuals(NamedTuple):
    values: np.ndarray
    index: object


@register_loglik(_DCCCorrelationStep, "exact")
def _correlation_step_loglik(model, params, u, **options):
    q_bar = u.T @ u / u.shape[0]
    terms, _, _ = correlation_loglik(u, q_bar, params.dcc_a, params.dcc_b, params.nu if model.dist == "t" else None)
    return jnp.where(params.dcc_a + params.dcc_b < 1.0, terms, -jnp.inf)


@dataclass
class DCCTwoStepResult:
    """Engle's two-step DCC estimate.

    Attributes
    ----------
    model : DCC
    params : dict
        Estimates by DCC name (per-asset vectors for the GARCH parameters).
    se : dict
        Standard errors from each step's inverse observed information (those of the second step ignore
        the estimation error of the first; use the joint ``bayesvol.fit(DCC(), y)`` for joint ones).
    garch : BatchMLEResult
        First step: one GARCH fit per asset.
    correlation : MLEResult
        Second step: ``dcc_a``, ``dcc_b`` (and ``nu``).
    loglik : float
        Joint log-likelihood at the two-step estimate.
    q_bar : numpy.ndarray
        Correlation target from the first-step standardised residuals.
    """

    model: DCC
    params: dict
    se: dict
    garch: object
    correlation: object
    loglik: float
    q_bar: np.ndarray
    columns: list | None = None

    def to_frame(self) -> pd.DataFrame:
        """Estimates and standard errors, one row per scalar parameter."""
        rows = []
        for name in self.model.param_names:
            values, ses = np.atleast_1d(self.params[name]), np.atleast_1d(self.se[name])
            if np.ndim(self.params[name]) == 0:
                rows.append((name, float(values[0]), float(ses[0])))
            else:
                labels = self.columns or list(range(len(values)))
                rows.extend((f"{name}[{lab}]", float(v), float(s)) for lab, v, s in zip(labels, values, ses,
                                                                                       strict=True))
        return pd.DataFrame(rows, columns=["param", "coef", "std err"]).set_index("param")

    def summary(self) -> str:
        """A readable table of the two-step estimates."""
        return "\n".join([f"{self.model.describe()} — two-step maximum likelihood",
                          f"Joint log-likelihood: {self.loglik:.4f}", self.to_frame().to_string(
                              float_format=lambda v: f"{v: .5f}")])


def fit_two_step(model: DCC, y, **fit_options) -> DCCTwoStepResult:
    r"""Engle's (2002) two-step estimator of a DCC model.

    Step 1 fits each asset's GARCH(1,1) by maximum likelihood (:func:`bayesvol.fit` on the panel, one
    fit per column); step 2 maximises the log density of the standardised residuals
    :math:`u_t = D_t^{-1}(y_t - \mu)` under the DCC correlations over :math:`a, b` (and :math:`\nu` for
    the t law), with :math:`\bar Q` their mean outer product. For normal errors the second step is
    Engle's correlation log-likelihood; the joint log-likelihood is the sum of the two steps' parts.

    Parameters
    ----------
    model : DCC
    y : (T, k) array or DataFrame
    **fit_options
        Passed to both :func:`bayesvol.fit` calls (``maxiter``, ``gtol``, ``warn``).
    """
    from bayesvol.inference.mle import fit

    panel = model.validate_data(y)
    values = panel.values
    garch_fit = fit(model.garch_model(), values, **fit_options)
    garch_names = ("mu",) * (model.mean == "constant") + ("omega", "alpha", "beta")
    first = {n: garch_fit.params[n].to_numpy() for n in garch_names}
    first_se = {n: garch_fit.se[n].to_numpy() for n in garch_names}
    stage = DCCParams(**first, nu=8.0 if model.dist == "t" else None, dcc_a=0.0, dcc_b=0.0)
    u, _ = model.standardised_residuals(stage, jnp.asarray(values))
    u = np.asarray(u)
    corr_fit = fit(_DCCCorrelationStep(dist=model.dist), u, **fit_options)
    params = dict(first, **corr_fit.params)
    se = dict(first_se, **corr_fit.se)
    full = _base.as_params(model, params)
    loglik = float(jnp.sum(model.pointwise_loglik(full, jnp.asarray(values))))
    return DCCTwoStepResult(model=model, params=params, se=se, garch=garch_fit, correlation=corr_fit,
                            loglik=loglik, q_bar=u.T @ u / u.shape[0], columns=panel.columns)
