"""``simulate``: draw data from any bayesvol model with given parameters."""

from __future__ import annotations

from bayesvol.models import _base
from bayesvol.models._protocol import check_model


def simulate(model, params, num_timesteps: int, seed=0):
    """Simulate observations and latent states from ``model`` at ``params``.

    The same ``initial``/``transition``/``emission`` code that defines the NumPyro program and the
    filters draws the path, so simulated data follow exactly the model that is estimated.

    Parameters
    ----------
    model : bayesvol model
        E.g. :class:`bayesvol.models.SV`.
    params : <Model>Params or dict
        Parameter values by name; each must lie in its prior's support.
    num_timesteps : int
        Length of the simulated series (at least 2).
    seed : int or jax.random key
        Seed of the JAX random number generator, or a key.

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
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, int) or num_timesteps < 2:
        raise ValueError(f"num_timesteps must be an integer >= 2, got {num_timesteps!r}")
    check_model(model)
    return model.simulate(_base.as_params(model, params), num_timesteps, _base.as_key(seed))
