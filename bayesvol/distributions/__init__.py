"""Probability laws used by the volatility models."""

from bayesvol.distributions.inverse_gaussian import InverseGaussian
from bayesvol.distributions.priors import ScaledBeta, ShiftedExponential
from bayesvol.distributions.skewed_t import SkewedStudentT, StandardizedStudentT, second_moment_below_zero

__all__ = [
    "InverseGaussian",
    "ScaledBeta",
    "ShiftedExponential",
    "SkewedStudentT",
    "StandardizedStudentT",
    "second_moment_below_zero",
]
