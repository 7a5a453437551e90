"""Maximum likelihood in standardised units: the data's scale, the map of the estimates and of their covariances.

[`bayesvol.fit`][bayesvol.fit] divides the data by a reference scale ``s`` (the sample standard deviation, per column or
one for a panel, see the model's ``data_scale_kind``; rounded to a power of two), fits there and maps the
results back with the model's ``rescale_params`` hook: the estimates by the hook itself, their covariances
by the delta method with its Jacobian ``J`` (``J C J'``), and the log-likelihood by the change of variables
``y = s * y_ref``: the density of ``y`` is that of ``y_ref`` divided by ``s`` per observed element, so

    loglik(y) = loglik(y_ref) - sum over observed elements of log s.

The optimiser, its gradient tolerance and the boundary flags then see the same problem whatever the units
of the data, so estimates, standard errors, ``converged`` and ``at_boundary`` are equivariant to rescaling.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Scaling", "reference_scaling", "scaled_starts", "to_user_flat", "user_jacobian"]


class Scaling(NamedTuple):
    """The reference scale of the data (a number, or one per column) and the log-likelihood shift.

    ``loglik_shift`` is what the log-likelihood of the data in the user's units adds to that of the
    standardised data: ``-sum log s`` over the observed elements, or zero for a likelihood that is not a
    density of the data (quasi-likelihood of ``log y^2``).
    """

    scale: float | np.ndarray
    loglik_shift: float


def data_scale(model, values):
    """The reference scale of ``values``: the standard deviation of a series, of each column of a panel, or (a
    model with ``data_scale_kind = "common"``) the root mean of the columns' variances, rounded to the nearest
    power of two; ``None`` if not positive and finite (a constant series).

    A power of two divides exactly (no rounding of the data), and data already in units of order one (a
    standard deviation between 0.71 and 1.41, e.g. percent returns of a currency) are fitted as they are.
    """
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if values.ndim == 1:
            scale = float(np.nanstd(values))
        elif model.data_scale_kind == "common":
            scale = float(np.sqrt(np.nanmean(np.nanvar(values, axis=0))))
        else:
            scale = np.nanstd(values, axis=0)
    if not (np.all(np.isfinite(scale)) and np.all(np.asarray(scale) > 0.0)):
        return None
    scale = np.exp2(np.round(np.log2(scale)))
    return float(scale) if np.ndim(scale) == 0 else scale


def reference_scaling(model, values, example_params, density_of_data: bool = True) -> Scaling | None:
    """The scaling of ``values`` for ``model``, or ``None`` when the model does not rescale (its hook gives
    ``None`` at ``example_params``) or the data have no positive scale."""
    scale = data_scale(model, values)
    if scale is None or model.rescale_params(example_params, scale) is None:
        return None
    if not density_of_data:
        return Scaling(scale, 0.0)
    observed = np.isfinite(np.asarray(values, dtype=np.float64))
    if np.ndim(scale) == 0:
        shift = -float(np.sum(observed)) * float(np.log(scale))
    else:
        shift = -float(np.sum(observed * np.log(scale)))
    return Scaling(scale, shift)


def divide(values, scaling: Scaling | None):
    """The data in the reference units (a panel column by column)."""
    if scaling is None:
        return values
    return np.asarray(values, dtype=np.float64) / scaling.scale


def scaled_starts(model, starts, scaling: Scaling | None) -> list:
    """Start values (``<Model>Params`` in the user's units) mapped to the reference units."""
    if scaling is None:
        return starts
    inverse = 1.0 / np.asarray(scaling.scale)
    return [model.rescale_params(s, inverse) for s in starts]


def to_user_flat(problem, theta_flat, scale):
    """Flat natural parameters in the user's units from those in the reference units (a JAX function)."""
    params = problem.model.params_type(**problem.unravel(theta_flat))
    return problem.ravel(problem.model.rescale_params(params, scale)._asdict())


def user_jacobian(problem, theta_flat, scale) -> np.ndarray:
    """Jacobian of `to_user_flat` in the reference parameters (the delta method's ``J``)."""
    return np.asarray(jax.jacfwd(lambda t: to_user_flat(problem, t, scale))(jnp.asarray(theta_flat)))
