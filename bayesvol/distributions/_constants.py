"""Numerical constants shared by the densities of the package."""

from __future__ import annotations

import math

LOG_2 = math.log(2.0)
LOG_2PI = math.log(2.0 * math.pi)
