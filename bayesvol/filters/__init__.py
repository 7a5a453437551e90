"""Filters for latent-state models: particle filters, EIS, the Bellman filter and the Kalman filter.

Each filter is a pure JAX function over the latent-state protocol (``initial``, ``transition``,
``emission``) — a ``lax.scan`` over a small step, with its results in a NamedTuple — so it runs under
``jit``, ``vmap`` and ``grad``. Importing this package also registers the SV likelihood methods
``"pf"``, ``"eis"``, ``"bellman"`` and ``"qml"`` for :func:`bayesvol.fit` and
:func:`bayesvol.log_likelihood`.
"""

from bayesvol.filters import resampling, sv_methods  # noqa: F401  (sv_methods registers the likelihoods)
from bayesvol.filters.bellman import BellmanFilterResult, bellman_filter, run_bellman_filter
from bayesvol.filters.eis import EISResult, efficient_importance_sampling
from bayesvol.filters.kalman import (
    KalmanFilterResult,
    KalmanSmootherResult,
    LinearGaussianSSM,
    kalman_filter,
    kalman_smoother,
    sv_qml_filter,
)
from bayesvol.filters.particle import ParticleFilterResult, particle_filter

__all__ = [
    "BellmanFilterResult",
    "EISResult",
    "KalmanFilterResult",
    "KalmanSmootherResult",
    "LinearGaussianSSM",
    "ParticleFilterResult",
    "bellman_filter",
    "efficient_importance_sampling",
    "kalman_filter",
    "kalman_smoother",
    "particle_filter",
    "resampling",
    "run_bellman_filter",
    "sv_qml_filter",
]
