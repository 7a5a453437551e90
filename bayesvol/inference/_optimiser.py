"""SciPy's BFGS on a compiled JAX objective: the one optimiser call of maximum likelihood.

The single fit (`.mle`) and the EIS-MLE rounds (`.eis_rounds`) both minimise through
`bfgs`, on an objective wrapped by `scipy_objective`. The rounds cannot call [`.mle.fit`][bayesvol.fit]
itself for their inner optimisations: each round starts BFGS from the previous round's inverse Hessian and
reads the new one back, and its EIS kernels are an argument of one compiled objective rather than a fixed
likelihood option (which would compile a new objective in every round).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    import scipy.optimize

__all__ = ["bfgs", "scipy_objective"]

# What SciPy sees where the objective or its gradient is not finite: a value far above any mean negative
# log-likelihood, so that the line search shortens the step, and no gradient to follow.
_NOT_FINITE_VALUE = 1e10


def scipy_objective(value_and_grad: Callable) -> Callable:
    """The objective as SciPy takes it, from a JAX function ``x -> (value, gradient)``.

    Returns ``fun(x) -> (float, float64 array)``; a non-finite value or gradient becomes a large value with a
    zero gradient, so that BFGS backs off from the region rather than stops.
    """

    def fun(x):
        value, grad = value_and_grad(jnp.asarray(x))
        value, grad = float(value), np.asarray(grad, dtype=np.float64)
        if not np.isfinite(value) or not np.all(np.isfinite(grad)):
            return _NOT_FINITE_VALUE, np.zeros_like(grad)
        return value, grad

    return fun


def bfgs(fun: Callable, x0, *, maxiter: int, gtol: float, hess_inv0=None) -> scipy.optimize.OptimizeResult:
    """Minimise ``fun`` (value and gradient, see `scipy_objective`) with SciPy's BFGS.

    Parameters
    ----------
    fun : callable
        ``x -> (value, gradient)``.
    x0 : array_like
        Start.
    maxiter, gtol :
        Iteration limit and gradient tolerance (largest absolute entry).
    hess_inv0 : array_like, optional
        First inverse Hessian approximation (by default the identity).

    Returns
    -------
    scipy.optimize.OptimizeResult
        With ``hess_inv``, the final BFGS inverse Hessian.
    """
    import scipy.optimize  # here: a second to import, and only fitting needs it

    return scipy.optimize.minimize(fun, x0, jac=True, method="BFGS",
                                   options={"maxiter": maxiter, "gtol": gtol, "hess_inv0": hess_inv0})
