"""Volatility models, one family per module."""

from bayesvol.models.dcc import DCC, DCCParams
from bayesvol.models.dfsv import DFSV, DFSVParams, DFSVSimulation
from bayesvol.models.egarch import EGARCH, EGARCHParams
from bayesvol.models.garch import GARCH, GARCHParams
from bayesvol.models.iggarch import IGGARCH, IGGARCHParams
from bayesvol.models.sv import SV, SVParams
from bayesvol.models.wishart_sv import WishartSV, WishartSVParams

__all__ = [
    "DCC",
    "DCCParams",
    "DFSV",
    "DFSVParams",
    "DFSVSimulation",
    "EGARCH",
    "EGARCHParams",
    "GARCH",
    "GARCHParams",
    "IGGARCH",
    "IGGARCHParams",
    "SV",
    "SVParams",
    "WishartSV",
    "WishartSVParams",
]
