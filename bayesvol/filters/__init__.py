"""Filters for latent-state models: particle filters, EIS, the Bellman filter and the Kalman filter.

Each filter is a pure JAX function over the latent-state protocol (``initial``, ``transition``,
``emission``): an ``init`` and a small ``step`` that one driver (`bayesvol.filters._driver`) runs with
``lax.scan``, with its results in a NamedTuple whose field names are shared by every filter
(``log_likelihood``, ``pointwise_log_likelihood``, ``filtered_mean``, ``filtered_variance`` or
``filtered_covariance``), so it runs under ``jit``, ``vmap`` and ``grad``. `bayesvol.filters.sv_methods`
holds the SV likelihood methods ``"pf"``, ``"eis"``, ``"bellman"`` and ``"qml"`` that the registry of
`bayesvol.inference` points at.
"""

from bayesvol.filters import resampling, sv_methods
from bayesvol.filters.bellman import BellmanFilterResult, bellman_filter, run_bellman_filter
from bayesvol.filters.eis import EISResult, efficient_importance_sampling
from bayesvol.filters.kalman import (
    KalmanFilterResult,
    KalmanSmootherResult,
    LinearGaussianSSM,
    kalman_filter,
    kalman_smoother,
    rts_smoother,
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
    "rts_smoother",
    "run_bellman_filter",
    "sv_methods",
    "sv_qml_filter",
]
