"""Probability laws used by the volatility models."""

from bayesvol.distributions.inverse_gaussian import InverseGaussian
from bayesvol.distributions.priors import ScaledBeta, ShiftedExponential
from bayesvol.distributions.skewed_t import SkewedStudentT, StandardizedStudentT, second_moment_below_zero
from bayesvol.distributions.wishart import (
    matrix_power_psd,
    wishart_kernel_log_integral,
    wishart_kernel_product,
    wishart_sv_scale,
)

__all__ = [
    "InverseGaussian",
    "ScaledBeta",
    "ShiftedExponential",
    "SkewedStudentT",
    "StandardizedStudentT",
    "matrix_power_psd",
    "second_moment_below_zero",
    "wishart_kernel_log_integral",
    "wishart_kernel_product",
    "wishart_sv_scale",
]
