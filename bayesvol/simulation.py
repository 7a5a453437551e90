"""``simulate``: draw data from any bayesvol model with given parameters; ``punch_holes``: make some missing."""

from __future__ import annotations

import numpy as np
import pandas as pd

import bayesvol._validation as _validation
from bayesvol.models import _base
from bayesvol.models._protocol import check_model


def simulate(model, params, num_timesteps: int, seed=0):
    """Simulate observations and latent states from ``model`` at ``params``.

    The same ``initial``/``transition``/``emission`` code that defines the NumPyro program and the
    filters draws the path, so simulated data follow exactly the model that is estimated.

    Parameters
    ----------
    model : bayesvol model
        E.g. [`bayesvol.models.SV`][bayesvol.models.SV].
    params : <Model>Params or dict
        Parameter values by name; each must lie in its prior's support.
    num_timesteps : int
        Length of the simulated series (at least 2): a Python or numpy integer.
    seed : int, None or jax.random key
        Seed of the JAX random number generator (a Python or numpy integer), a key (``jax.random.key`` or
        ``jax.random.PRNGKey``), or ``None`` for a fresh random seed from the operating system (a different
        path on every call; pass an integer to make it reproducible).

    Returns
    -------
    NamedTuple
        The model's ``<Model>Simulation``: ``y`` (observations) first, then the conditional ``variance``
        (univariate models) or ``covariance`` (multivariate ones) of each observation and the model's
        latent states (e.g. ``h``, the log-variances of SV), as numpy arrays.

    Examples
    --------
    >>> import bayesvol
    >>> sim = bayesvol.simulate(bayesvol.models.SV(), {"mu": 0.0, "phi": 0.9, "sigma": 0.3}, 100, seed=0)
    >>> sim.h.shape
    (100,)
    """
    check_model(model)
    num_timesteps = _validation.as_count(num_timesteps, "num_timesteps", _base.MIN_SIMULATED_STEPS)
    return model.simulate(_base.as_params(model, params), num_timesteps, _base.as_key(seed, "seed"))


def punch_holes(y, fraction: float, seed=0, *, gap: tuple[int, int] | None = None):
    """A copy of ``y`` with a random ``fraction`` of its time steps set to NaN (missing), e.g. for tests.

    Parameters
    ----------
    y : array_like or pandas object
        Observations, leading axis time (a simulated ``sim.y``).
    fraction : float
        Share of the time steps to make missing, in ``[0, 1)``; ``round(fraction * T)`` steps are drawn
        without replacement (whole rows of a panel).
    seed : int
        Seed of the numpy generator that picks them.
    gap : (start, length), optional
        Also make the ``length`` steps from position ``start`` missing: one long gap, as a market closure.

    Returns
    -------
    numpy.ndarray or pandas object
        Float copy of ``y`` with NaN at the chosen steps (a pandas input keeps its index and columns).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.simulation import punch_holes
    >>> y = punch_holes(np.arange(10.0), 0.2, seed=1, gap=(6, 2))
    >>> int(np.isnan(y).sum()) <= 4
    True
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be a number in [0, 1), got {fraction!r}")
    values = np.array(y, dtype=np.float64)
    num_steps = values.shape[0]
    rng = np.random.default_rng(_validation.as_seed(seed))
    missing = np.zeros(num_steps, dtype=bool)
    missing[rng.choice(num_steps, size=int(round(fraction * num_steps)), replace=False)] = True
    if gap is not None:
        start, length = (_validation.as_count(v, name, 0) for v, name in zip(gap, ("gap start", "gap length"),
                                                                                strict=True))
        if start + length > num_steps:
            raise ValueError(f"gap ({start}, {length}) runs past the end of y ({num_steps} steps)")
        missing[start:start + length] = True
    values[missing] = np.nan
    if isinstance(y, pd.Series | pd.DataFrame):
        return y.__class__(values, index=y.index, **({"name": y.name} if isinstance(y, pd.Series) else
                                                     {"columns": y.columns}))
    return values
