"""Result types of maximum likelihood: one series (:class:`MLEResult`) and a panel (:class:`BatchMLEResult`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.special

from bayesvol.inference._idata import from_mle

__all__ = ["BatchMLEResult", "MLEResult"]


@dataclass
class MLEResult:
    """Maximum-likelihood estimates with standard errors.

    Attributes
    ----------
    params : dict
        Estimates by parameter name (floats, or arrays for matrix parameters).
    se, robust_se : dict
        Standard errors from the inverse observed information, and sandwich (QML-robust) ones.
    cov : numpy.ndarray
        Covariance matrix of the flattened estimates, in the order of ``param_names`` (flattened).
    loglik, aic, bic : float
    nobs : int
    converged : bool
        The optimiser's success flag and a small gradient; ``False`` is also warned about.
    at_boundary : list of str
        Parameters whose estimate lies (numerically) on the edge of their support; their standard errors
        are not reliable.
    num_free_params : int or None
        Number of free coordinates (the unconstrained dimension), fewer than the entries for structured
        matrices such as identified loadings or covariance matrices; fixed entries get standard error zero.
    diagnostics : dict
        Method-specific checks at the estimate, e.g. ``loglik_mc_sd``, the Monte Carlo standard deviation of
        a simulated log-likelihood.
    data_index, data_shape :
        Labels (dates, asset names) and shape of the fitted data, so that :meth:`to_datatree` gives the
        parameters the dims and coords of a posterior of the same data.
    data_scale : float, numpy.ndarray or None
        The reference scale (per column for a panel) the data were divided by for the optimisation; the
        estimates, standard errors and log-likelihood are reported in the units of the data as given.
        ``None`` when the model was fitted in the user's units (see :func:`bayesvol.fit`).
    """

    model: object
    method: str
    params: dict
    se: dict
    robust_se: dict
    cov: np.ndarray
    robust_cov: np.ndarray
    loglik: float
    nobs: int
    converged: bool
    message: str
    at_boundary: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    num_starts: int = 1
    num_free_params: int | None = None
    options: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    data_index: object = field(default=None, repr=False)
    data_shape: tuple | None = None
    data_scale: object = field(default=None, repr=False)

    @property
    def num_params(self) -> int:
        """Free parameters (the unconstrained dimension: a symmetric k x k matrix counts k(k+1)/2)."""
        return self.num_free_params if self.num_free_params is not None else len(self.labels)

    @property
    def aic(self) -> float:
        return 2.0 * self.num_params - 2.0 * self.loglik

    @property
    def bic(self) -> float:
        return self.num_params * math.log(self.nobs) - 2.0 * self.loglik

    def flat(self, values: dict) -> np.ndarray:
        return np.concatenate([np.ravel(values[name]) for name in self.model.param_names])

    def to_frame(self, robust: bool = False):
        """Table of estimates, standard errors, t statistics, p-values and 95% intervals (pandas)."""
        est = self.flat(self.params)
        se = self.flat(self.robust_se if robust else self.se)
        with np.errstate(divide="ignore", invalid="ignore"):
            tstat = np.where(se > 0, est / se, np.nan)   # entries fixed by identification have se 0
        pvalue = 2.0 * scipy.special.ndtr(-np.abs(tstat))  # the normal survival function, without scipy.stats
        return pd.DataFrame(
            {"coef": est, "std err": se, "t": tstat, "P>|t|": pvalue,
             "2.5%": est - 1.959964 * se, "97.5%": est + 1.959964 * se},
            index=self.labels,
        )

    def to_datatree(self):
        """The estimates and standard errors as an ``xarray.DataTree`` under the posterior's names and dims.

        Returns
        -------
        xarray.DataTree
            Groups ``estimate``, ``std_error`` and ``robust_std_error`` (one variable per parameter, dims such
            as ``asset`` and ``factor`` as in the posterior of the same data); attrs hold the method,
            log-likelihood, AIC, BIC and convergence. It saves to netCDF like a posterior.

        Examples
        --------
        >>> import bayesvol
        >>> y = bayesvol.datasets.load("gbpusd")
        >>> tree = bayesvol.fit(bayesvol.models.GARCH(), y).to_datatree()
        >>> sorted(tree.children), tree["estimate"]["alpha"].dims
        (['estimate', 'robust_std_error', 'std_error'], ())
        """
        return from_mle(self)

    def summary(self, robust: bool = False) -> str:
        """A readable table in the manner of arch's ``summary()``."""
        describe = self.model.describe()
        lines = [
            f"{describe} — maximum likelihood ({self.method})",
            "=" * 78,
            f"Log-likelihood: {self.loglik:14.4f}    AIC: {self.aic:12.4f}    BIC: {self.bic:12.4f}",
            f"Observations:   {self.nobs:14d}    Converged: {self.converged!s:>6}    Starts: {self.num_starts}",
            f"Covariance: {'robust (sandwich)' if robust else 'inverse observed information'}",
            "-" * 78,
            self.to_frame(robust).to_string(float_format=lambda v: f"{v: .4f}"),
            "=" * 78,
        ]
        lines.extend(f"{name}: {value}" for name, value in self.diagnostics.items())
        if self.at_boundary:
            lines.append(f"At the boundary of the support (standard errors unreliable): {', '.join(self.at_boundary)}")
        if not self.converged:
            lines.append(f"WARNING: the optimiser did not converge: {self.message}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


@dataclass
class BatchMLEResult:
    """Maximum-likelihood estimates for each column of a panel of series.

    Attributes
    ----------
    params, se, robust_se : pandas.DataFrame
        One row per series (index: the column names), one column per parameter.
    loglik : pandas.Series
    converged : pandas.Series of bool
        Gradient below ``gtol`` within ``maxiter`` BFGS iterations; ``False`` is also warned about.
    iterations : pandas.Series of int
    at_boundary : dict
        Series name -> parameters on the edge of their support.
    data_scale : pandas.Series or None
        Each series' reference scale for the optimisation (see :class:`MLEResult`), ``None`` when fitted in
        the user's units.

    Indexing with a series name (or position) gives that series' :class:`~bayesvol.MLEResult`.
    """

    model: object
    method: str
    params: pd.DataFrame
    se: pd.DataFrame
    robust_se: pd.DataFrame
    loglik: pd.Series
    converged: pd.Series
    iterations: pd.Series
    nobs: int
    at_boundary: dict
    covs: np.ndarray = field(repr=False)
    robust_covs: np.ndarray = field(repr=False)
    labels: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    data_scale: object = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.params)

    @property
    def aic(self) -> pd.Series:
        return 2.0 * len(self.labels) - 2.0 * self.loglik

    @property
    def bic(self) -> pd.Series:
        return len(self.labels) * np.log(self.nobs) - 2.0 * self.loglik

    def __getitem__(self, key) -> MLEResult:
        position = key if isinstance(key, (int, np.integer)) else self.params.index.get_loc(key)
        name = self.params.index[position]
        names = self.model.param_names
        converged = bool(self.converged.iloc[position])
        return MLEResult(
            model=self.model, method=self.method,
            params={n: float(self.params.iloc[position][n]) for n in names},
            se={n: float(self.se.iloc[position][n]) for n in names},
            robust_se={n: float(self.robust_se.iloc[position][n]) for n in names},
            cov=self.covs[position], robust_cov=self.robust_covs[position],
            loglik=float(self.loglik.iloc[position]), nobs=self.nobs, converged=converged,
            message=("gradient below tolerance" if converged else "no convergence within the iteration limit")
            + f" after {int(self.iterations.iloc[position])} BFGS iterations (batch fit, series {name!r})",
            at_boundary=list(self.at_boundary.get(name, [])), labels=list(self.labels), options=dict(self.options),
            data_shape=(self.nobs,),
            data_scale=None if self.data_scale is None else float(self.data_scale.iloc[position]))

    def results(self) -> list[MLEResult]:
        """One :class:`~bayesvol.MLEResult` per series, in column order."""
        return [self[i] for i in range(len(self))]

    def summary(self) -> str:
        """Estimates per series with log-likelihood and convergence."""
        table = self.params.copy()
        table["loglik"] = self.loglik
        table["converged"] = self.converged
        describe = self.model.describe()
        return (f"{describe} — maximum likelihood ({self.method}), {len(self)} series of {self.nobs} "
                f"observations\n{table.to_string(float_format=lambda v: f'{v: .5g}')}")

    def __str__(self) -> str:
        return self.summary()
