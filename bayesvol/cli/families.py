"""The model families of the command line, their options, and which estimation methods each one has.

The valid (family, method) pairs are not listed here: they are the rows of the registry
(`bayesvol.inference.registry`), asked through `methods_of`, so a method added to the registry
is available on the command line at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from bayesvol.inference import registry
from bayesvol.models.dcc import DCC
from bayesvol.models.dfsv import DFSV
from bayesvol.models.egarch import EGARCH
from bayesvol.models.garch import GARCH
from bayesvol.models.iggarch import IGGARCH
from bayesvol.models.sv import SV
from bayesvol.models.wishart_sv import WishartSV

__all__ = ["FAMILIES", "MODEL_OPTIONS", "Family", "build_model", "check_method", "methods_of"]


@dataclass(frozen=True)
class Family:
    """One ``--model`` choice: the class, fixed keyword arguments, the options it takes, and its data shape."""

    cls: type
    fixed: tuple = ()
    options: tuple = ()
    multivariate: bool = False
    help: str = ""


# Command-line option (argparse dest) -> keyword argument of the model class.
MODEL_OPTIONS = {"errors": "errors", "leverage": "leverage", "dist": "dist", "mean": "mean",
                 "components": "components", "num_factors": "num_factors", "idiosyncratic": "idiosyncratic"}

FAMILIES = {
    "sv": Family(SV, options=("errors", "leverage"), help="stochastic volatility (latent AR(1) log-variance)"),
    "garch": Family(GARCH, fixed=(("vol", "garch"),), options=("dist", "mean"), help="GARCH(1,1)"),
    "gjr": Family(GARCH, fixed=(("vol", "gjr"),), options=("dist", "mean"), help="GJR-GARCH(1,1,1)"),
    "egarch": Family(EGARCH, options=("dist", "mean"), help="EGARCH(1,1,1)"),
    "iggarch": Family(IGGARCH, options=("components",), help="inverse Gaussian GARCH (1 or 2 components)"),
    "dcc": Family(DCC, options=("dist", "mean"), multivariate=True, help="DCC(1,1)-GARCH(1,1) for k series"),
    "dfsv": Family(DFSV, options=("num_factors", "idiosyncratic"), multivariate=True,
                   help="dynamic factor SV for N series with K factors"),
    "wishart": Family(WishartSV, multivariate=True, help="Wishart multivariate SV for k series"),
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def build_model(name: str, args):
    """The model of ``--model name`` with the options given on the command line.

    An option that the family does not take is an error (naming the options it does take), never ignored;
    the model class checks the values themselves.
    """
    family = FAMILIES[name]
    given = {dest: getattr(args, dest) for dest in MODEL_OPTIONS
             if getattr(args, dest, None) not in (None, False)}
    foreign = [dest for dest in given if dest not in family.options]
    if foreign:
        takes = ", ".join(_flag(dest) for dest in family.options) or "no model options"
        raise ValueError(f"{', '.join(_flag(dest) for dest in foreign)} does not apply to --model {name} "
                         f"(it takes {takes})")
    kwargs = dict(family.fixed)
    kwargs.update({MODEL_OPTIONS[dest]: value for dest, value in given.items()})
    return family.cls(**kwargs)


def methods_of(model) -> list[str]:
    """Every estimation method the registry lists for ``model``: the samplers first, then the likelihoods."""
    return registry.available(model, "samplers") + registry.available(model, "likelihood")


def check_method(name: str, model, method: str) -> str:
    """``"sampler"`` or ``"likelihood"`` for a registered pair; a one-line error naming the valid methods else."""
    valid = methods_of(model)
    if method not in valid:
        raise ValueError(f"--method {method} is not available for --model {name}; valid methods for {name}: "
                         f"{', '.join(valid)}")
    return "sampler" if method in registry.SAMPLERS else "likelihood"
