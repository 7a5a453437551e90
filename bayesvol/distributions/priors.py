"""Prior families whose support is the parameter's constraint.

NumPyro's ``TransformedDistribution`` reports ``Real()`` as the support of an affine map of a Beta or an
Exponential, which would lose the constraint that maximum likelihood optimises over
(``biject_to(prior.support)``). These two small classes declare it.
"""

from __future__ import annotations

import jax.numpy as jnp
from numpyro.distributions import Beta, Exponential, TransformedDistribution, constraints
from numpyro.distributions.transforms import AffineTransform
from numpyro.distributions.util import promote_shapes


class ScaledBeta(TransformedDistribution):
    r"""Beta law stretched onto ``(low, high)``: ``x = low + (high - low) * b`` with ``b ~ Beta(a, b)``.

    With ``low=-1, high=1`` this is the stochvol prior ``(phi + 1) / 2 ~ Beta(a, b)``.
    """

    arg_constraints = {
        "concentration1": constraints.positive,
        "concentration0": constraints.positive,
        "low": constraints.real,
        "high": constraints.real,
    }
    reparametrized_params = ["concentration1", "concentration0", "low", "high"]

    def __init__(self, concentration1, concentration0, low=-1.0, high=1.0, *, validate_args=None):
        low, high = promote_shapes(jnp.asarray(low, dtype=float), jnp.asarray(high, dtype=float))
        self.concentration1, self.concentration0 = concentration1, concentration0
        self.low, self.high = low, high
        base = Beta(concentration1, concentration0)
        super().__init__(base, AffineTransform(low, high - low), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)


class ShiftedExponential(TransformedDistribution):
    r"""Exponential law shifted to start at ``low``: ``x = low + e`` with ``e ~ Exponential(rate)``.

    ``ShiftedExponential(0.1, 2.0)`` is the usual prior for Student-t degrees of freedom with finite variance.
    """

    arg_constraints = {"rate": constraints.positive, "low": constraints.real}
    reparametrized_params = ["rate", "low"]

    def __init__(self, rate=1.0, low=0.0, *, validate_args=None):
        self.rate, self.low = rate, jnp.asarray(low, dtype=float)
        super().__init__(Exponential(rate), AffineTransform(self.low, 1.0), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.greater_than(self.low)
