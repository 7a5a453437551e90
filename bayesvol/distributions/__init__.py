"""Probability laws used by the volatility models."""

from bayesvol.distributions.priors import ScaledBeta, ShiftedExponential
from bayesvol.distributions.skewed_t import SkewedStudentT, StandardizedStudentT, second_moment_below_zero

__all__ = [
    "ScaledBeta",
    "ShiftedExponential",
    "SkewedStudentT",
    "StandardizedStudentT",
    "second_moment_below_zero",
]
