"""Pieces shared by the innovation laws: clearer argument validation."""

from __future__ import annotations

import jax
import numpy as np
from numpyro.distributions import Distribution, constraints
from numpyro.util import not_jax_tracer


class DescriptiveValidation(Distribution):
    """Mixin that names the violated requirement when ``validate_args=True`` rejects a parameter.

    NumPyro's own message only says that a parameter is invalid. Subclasses list, per parameter, the
    requirement in words (``_requirements``) and the message adds the offending values, so a user who
    passes ``df=2`` learns that the law needs ``df > 2``.
    """

    _requirements: dict[str, str] = {}

    def validate_args(self, strict: bool = True) -> None:
        with jax.ensure_compile_time_eval():
            for name, value in self.get_args().items():
                constraint = self.arg_constraints[name]
                if constraints.is_dependent(constraint):
                    continue
                is_valid = constraint(value)
                if not_jax_tracer(is_valid):
                    if not np.all(is_valid):
                        bad = np.asarray(value)[~np.broadcast_to(np.asarray(is_valid), np.shape(value))]
                        shown = ", ".join(f"{v:.6g}" for v in bad.ravel()[:5])
                        more = "" if bad.size <= 5 else f" (and {bad.size - 5} more)"
                        requirement = self._requirements.get(name, repr(constraint))
                        raise ValueError(
                            f"{type(self).__name__}: invalid {name}; it must satisfy {requirement}, got {shown}{more}"
                        )
                elif strict:
                    raise RuntimeError("Cannot validate arguments inside jitted code.")
