"""``simulate``: draw data from any bayesvol model with given parameters."""

from __future__ import annotations

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
