"""The two model protocols, and the default of every optional hook, written once.

Every estimator in `bayesvol.inference` and every filter in `bayesvol.filters` talks to a model
through these names only. A model family is a frozen dataclass (static configuration, hashable, usable
as a static ``jit`` argument) deriving from `LatentStateModelBase` or
`ObservationDrivenModelBase`; it must define the *required* members of its protocol and may
override any *optional* hook, whose default is given here and nowhere else.

Required of every model (`VolatilityModel`)
    ``params_type`` (a NamedTuple class), ``param_names``, ``prior_distributions()``, ``describe()``,
    ``program(y)`` (the NumPyro program), ``simulate(params, num_timesteps, key)``,
    ``start_values(y)`` (start values for maximum likelihood), ``check_parameters(params)``.

Required of a latent-state model ([`LatentStateModel`][bayesvol.models._protocol.LatentStateModel])
    ``initial(params)``, ``transition(params, state_prev, y_prev)``, ``emission(params, state)``: NumPyro
    distributions of the first state, of the next state, and of the observation given the state. These three
    with the parameters and priors (`StateSpaceLaws`) are all the filters and PMMH need.

Required of an observation-driven model ([`ObservationDrivenModel`][bayesvol.models._protocol.ObservationDrivenModel])
    ``init_state(params, y)``, ``update(params, state, y_t)``, ``emission(params, state)``,
    ``in_parameter_space(params)``.

Optional hooks (defaults in [`ModelDefaults`][bayesvol.models._protocol.ModelDefaults]): data handling
(``validate_data``, ``bind_data``, ``supports_missing``, and for an observation-driven model that supports missing
values ``update_missing``, the step over a missing ``y_t`` with the shock terms replaced by their conditional
expectations), the parameter space (``param_ndims``, ``param_transforms``, ``from_unconstrained``, ``to_unconstrained``,
``elementwise_transforms``, ``bounded_free_names``), units and stationarity (``data_scale_kind``,
``rescale_params``, ``is_stationary``, ``nonstationary_variant``), maximum-likelihood switches (``supports_batch_fit``,
``mle_screen_starts``, ``mle_opg_start``), the NumPyro program's sites (``latent_sites``,
``hidden_sites``, ``deterministic_sites``, ``dense_mass_sites``, ``site_dims``), and posterior quantities
(``loglik_kind``, ``pointwise_loglik_draws``, ``predictive_draws``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import biject_to
from numpyro.distributions.transforms import IdentityTransform

import bayesvol.models._base as _base
from bayesvol._validation import as_returns, time_coords

__all__ = [
    "AffineRecursionModel",
    "LatentStateModel",
    "LatentStateModelBase",
    "ModelDefaults",
    "ObservationDrivenModel",
    "ObservationDrivenModelBase",
    "StateSpaceLaws",
    "VarianceForecastModel",
    "VolatilityModel",
    "check_model",
]

# Sites of a latent-state program that carry a time dimension.
TIME_SITES = ("h", "vol", "h_std", "latent")
CONDITIONAL_LOGLIK = "conditional: log p(y_t | h_t, theta), given the latent path"
PREDICTIVE_LOGLIK = "one-step-ahead predictive log p(y_t | y_{1:t-1}, theta)"


@runtime_checkable
class VolatilityModel(Protocol):
    """Members every model has, whatever its kind."""

    params_type: ClassVar[type]

    @property
    def param_names(self) -> tuple[str, ...]: ...

    def prior_distributions(self) -> Any: ...

    def describe(self) -> str: ...

    def program(self, y) -> None: ...

    def simulate(self, params, num_timesteps: int, key) -> Any: ...

    def start_values(self, y) -> list[dict]: ...

    def check_parameters(self, params) -> Any: ...


@runtime_checkable
class StateSpaceLaws(Protocol):
    """The three laws of a state-space model with its parameters: all that the filters and PMMH need."""

    params_type: ClassVar[type]

    @property
    def param_names(self) -> tuple[str, ...]: ...

    def prior_distributions(self) -> Any: ...

    def initial(self, params) -> Any: ...

    def transition(self, params, state_prev, y_prev=None) -> Any: ...

    def emission(self, params, state) -> Any: ...


@runtime_checkable
class LatentStateModel(VolatilityModel, StateSpaceLaws, Protocol):
    """A state-space model: the state evolves by itself, the observation depends on the current state."""


@runtime_checkable
class ObservationDrivenModel(VolatilityModel, Protocol):
    """A model whose state (variance, covariance) is a deterministic function of past observations."""

    def init_state(self, params, y) -> Any: ...

    def update(self, params, state, y_t) -> Any: ...

    def emission(self, params, state) -> Any: ...

    def in_parameter_space(self, params) -> Any: ...


@runtime_checkable
class AffineRecursionModel(ObservationDrivenModel, Protocol):
    """An observation-driven model whose ``update`` is the affine map ``a_t * state + b_t`` (GARCH, GJR), with
    coefficients that depend on the data only: its filter may run as a parallel prefix scan."""

    def affine_coefficients(self, params, y) -> Any: ...


@runtime_checkable
class VarianceForecastModel(ObservationDrivenModel, Protocol):
    """A univariate observation-driven model whose variance forecasts
[`bayesvol.forecast`][bayesvol.forecasting.forecast] computes."""

    default_forecast_method: str

    def variance(self, state) -> Any: ...

    def state_from_variance(self, params, variance) -> Any: ...

    def expected_variance(self, params, state, horizon: int) -> Any: ...


def check_model(model) -> None:
    """Raise a ``TypeError`` naming what is missing when ``model`` satisfies neither protocol."""
    if isinstance(model, (LatentStateModel, ObservationDrivenModel)):
        return
    members = set(dir(model))
    required = {"params_type", "param_names", "prior_distributions", "describe", "program", "simulate",
                "start_values", "check_parameters"}
    kinds = {"latent-state": {"initial", "transition", "emission"},
             "observation-driven": {"init_state", "update", "emission", "in_parameter_space"}}
    gaps = {kind: sorted((required | extra) - members) for kind, extra in kinds.items()}
    raise TypeError(f"{type(model).__name__} is not a bayesvol model: as a latent-state model it lacks "
                    f"{', '.join(gaps['latent-state'])}; as an observation-driven model it lacks "
                    f"{', '.join(gaps['observation-driven'])} (see bayesvol.models._protocol)")


class ModelDefaults:
    """The default of every optional hook; model families derive from one of the two subclasses below."""

    # --- data -----------------------------------------------------------------------------------
    #: True when a missing return (NaN in ``y``) is part of the model: its log-likelihood term is zero and the
    #: latent state or conditional variance moves on without it (a gap in the calendar, a holiday). The
    #: validation layer refuses NaN for a model that leaves it False.
    supports_missing: ClassVar[bool] = False

    def validate_data(self, y):
        """Checked data with ``values`` (float64 numpy) and ``index``: by default one return series.

        Missing values (NaN) pass when the model declares ``supports_missing``.
        """
        return as_returns(y, allow_missing=self.supports_missing, owner=self.describe())

    def bind_data(self, y):
        """The model with any static configuration fixed from the data (e.g. the number of assets)."""
        return self

    # --- the parameter space --------------------------------------------------------------------
    #: True when the unconstrained coordinates are the parameters mapped one by one through
    #: ``param_transforms()`` (a diagonal Jacobian); a model with a joint map sets it False.
    elementwise_transforms: ClassVar[bool] = True

    def param_transforms(self) -> dict:
        """Name -> bijection from the real line onto the support of that parameter's prior."""
        priors = self.prior_distributions()
        return {name: biject_to(getattr(priors, name).support) for name in self.param_names}

    def from_unconstrained(self, free: dict):
        """Parameters from their unconstrained coordinates (name -> array)."""
        transforms = self.param_transforms()
        return self.params_type(**{n: transforms[n](free[n]) for n in self.param_names})

    def to_unconstrained(self, params) -> dict:
        """Unconstrained coordinates (name -> array) of parameters."""
        transforms = self.param_transforms()
        return {n: transforms[n].inv(jnp.asarray(getattr(params, n))) for n in self.param_names}

    def param_ndims(self) -> dict[str, int]:
        """Name -> number of dimensions of each parameter (0: a scalar), by default the shape of its prior.

        `bayesvol.models._base.as_params` refuses other shapes (a vector where a scalar belongs) by name.
        """
        return _base.prior_ndims(self)

    def bounded_free_names(self) -> tuple[str, ...]:
        """Parameters with an edge to their support (checked by maximum likelihood's boundary flags)."""
        transforms = self.param_transforms()
        return tuple(n for n in self.param_names if not isinstance(transforms[n], IdentityTransform))

    def check_parameters(self, params):
        """Parameters converted from a mapping and checked against each prior's support."""
        return _base.as_params(self, params)

    def check_parameter_values(self, params) -> None:
        """Raise ``ValueError`` for concrete values that the priors' supports admit but the model does not.

        Called by `bayesvol.models._base.as_params` (so by every entry point) after the support
        checks, with concrete values only. A closed support such as ``[-1, 1]`` for an autoregression
        includes its edges, where the stationary law the model starts from does not exist; a family with
        such an edge overrides this hook. By default every value inside the supports is accepted.
        """

    def start_values(self, y) -> list[dict]:
        """Start values for maximum likelihood (and PMMH); none by default."""
        return []

    # --- units of the data and stationarity (maximum likelihood) ----------------------------------
    #: How maximum likelihood standardises a panel: ``"column"`` (each series by its own standard deviation)
    #: or ``"common"`` (one scale for every column, for families whose parameters mix the columns' units).
    data_scale_kind: ClassVar[str] = "column"

    def rescale_params(self, params, scale):
        r"""Parameters under which ``scale * y`` has the law that ``params`` give ``y``; ``None`` by default.

        ``scale`` is a positive number, or one per column for a panel of a family with ``data_scale_kind =
        "column"``. [`bayesvol.fit`][bayesvol.fit] standardises the data, fits there and maps the estimates back with
        this map (and the covariances with its Jacobian), so the result does not depend on the units of ``y``. It
        must be a JAX function of ``params`` (differentiated for the delta method) and, for families fitted
        in batches, elementwise in ``params`` and ``scale`` (arrays of series). A family returns ``None`` when
        no exact map exists for its configuration (e.g. a pre-sample variance fixed in the user's units);
        maximum likelihood then runs in the user's units.
        """
        return None

    def is_stationary(self, params):
        """True (a JAX boolean) where the parameters give a covariance-stationary process; always by default.

        [`bayesvol.fit`][bayesvol.fit] restricts the estimate to this region unless called with ``stationary=False``;
        the likelihood itself is defined, and evaluated with a [`StationarityWarning`][bayesvol.StationarityWarning],
        outside it.
        """
        return jnp.asarray(True)

    def nonstationary_variant(self):
        """This model with maximum-likelihood coordinates that leave the persistence free (for ``fit(...,
        stationary=False)``); ``None`` (the default) where the family has no such variant."""
        return None

    # --- maximum likelihood switches ------------------------------------------------------------
    supports_batch_fit: ClassVar[bool] = False   # a (T, n) panel is n independent series fitted at once
    mle_screen_starts: ClassVar[bool] = False    # optimise from the start value of highest likelihood only
    mle_opg_start: ClassVar[bool] = False        # start BFGS from the inverse outer product of the scores

    # --- the NumPyro program's sites -------------------------------------------------------------
    latent_sites: tuple[str, ...] = ()
    hidden_sites: tuple[str, ...] = ("h_std",)
    deterministic_sites: tuple[str, ...] = ("h", "vol")

    @property
    def dense_mass_sites(self) -> tuple[str, ...]:
        """Sites that share NUTS's dense mass matrix (the parameters)."""
        return tuple(self.param_names)

    def site_dims(self, index, y) -> tuple[dict, dict]:
        """ArviZ dims and coords: ``time`` on the latent path, its summaries and ``y``."""
        dims = {name: ["time"] for name in TIME_SITES}
        dims["y"] = ["time"]
        return dims, {"time": time_coords(index, np.shape(y)[0])}

    # --- posterior quantities --------------------------------------------------------------------
    loglik_kind: str = CONDITIONAL_LOGLIK

    def pointwise_loglik_draws(self, draws: dict, y):
        """Pointwise log-likelihood per draw and time step: the emission given the drawn latent path (zero
        at a missing ``y_t``)."""
        names = self.param_names
        params = self.params_type(**{k: jnp.asarray(draws[k])[..., None] for k in names})
        return np.asarray(_base.masked_log_prob(self.emission(params, jnp.asarray(draws["h"])), y))

    def predictive_draws(self, draws: dict, key):
        """Replicated observations ``y_rep_t ~ p(y_t | h_t, theta)``, one per draw."""
        names = self.param_names
        lead = draws["h"].shape[:-1]
        flat = {k: jnp.reshape(draws[k], (-1,) + draws[k].shape[len(lead):]) for k in names + ("h",)}

        def one(key_i, values):
            params = self.params_type(**{k: values[k] for k in names})
            return self.emission(params, values["h"]).sample(key_i)

        keys = jax.random.split(key, flat["h"].shape[0])
        y_rep = jax.vmap(one)(keys, flat)
        return np.asarray(y_rep).reshape(lead + y_rep.shape[1:])


class LatentStateModelBase(ModelDefaults):
    """Base of latent-state families: simulation by ancestral sampling through the three laws."""

    latent_sites: tuple[str, ...] = ("h_std",)

    def simulate(self, params, num_timesteps: int, key):
        """Draw ``(y, h)`` from ``initial``/``transition``/``emission`` in one ``lax.scan``.

        ``key`` is an integer seed, ``None`` (a fresh random seed) or a JAX random key.
        """
        num_timesteps, key = _base.simulation_inputs(num_timesteps, key)
        return _base.simulate_latent(self, self.check_parameters(params), num_timesteps, key)


class ObservationDrivenModelBase(ModelDefaults):
    """Base of observation-driven families: the exact one-step-ahead likelihood, no latent path."""

    loglik_kind: str = PREDICTIVE_LOGLIK
    hidden_sites: tuple[str, ...] = ()

    def update_missing(self, params, state):
        """The state for ``t + 1`` when ``y_t`` is missing (NaN), for a model with ``supports_missing``: the
        functions of the unseen shock in ``update`` replaced by their conditional expectations given the past."""
        raise NotImplementedError(f"{self.describe()} does not support missing values")
    #: How `bayesvol.forecast` forecasts the variance: "analytic" (closed form) or "simulation".
    default_forecast_method: str = "analytic"
