"""Result types of maximum likelihood: one series ([`MLEResult`][bayesvol.MLEResult]) and a panel (`BatchMLEResult`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.special

import bayesvol.inference.forecast as _forecast
from bayesvol.inference._idata import from_mle
from bayesvol.inference.conditional import ConditionalMoments, conditional_moments, posterior_volatility
from bayesvol.inference.residuals import residual_diagnostics
from bayesvol.models._protocol import ObservationDrivenModel

__all__ = ["BatchMLEResult", "MLEResult", "conditional_volatility"]

# Lags of the residual checks that summary() reports.
SUMMARY_LAGS = 10


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
        The optimiser's verdict (its success flag and a small gradient); ``False`` is also warned about. It
        says nothing about whether the optimum is a sound one: see ``warnings`` and
        [`reliable`][bayesvol.MLEResult.reliable].
    at_boundary : list of str
        Parameters whose estimate lies (numerically) on the edge of their support; their standard errors
        are not reliable.
    warnings : list of str
        The fit's self-check after optimisation (see `bayesvol.inference.standard_errors.reliability_warnings`):
        one sentence per cause (a singular or non-positive-definite information matrix, standard errors that
        are not finite, parameters at the edge of their support, a likelihood that is not finite), each with a
        remedy. Empty when the estimates passed every check; also warned about
        ([`ConvergenceWarning`][bayesvol.ConvergenceWarning]) and shown by [`summary`][bayesvol.MLEResult.summary].
    num_free_params : int or None
        Number of free coordinates (the unconstrained dimension), fewer than the entries for structured
        matrices such as identified loadings or covariance matrices; fixed entries get standard error zero.
    diagnostics : dict
        Method-specific checks at the estimate, e.g. ``loglik_mc_sd``, the Monte Carlo standard deviation of
        a simulated log-likelihood.
    data_index, data_shape :
        Labels (dates, asset names) and shape of the fitted data, so that
        [`to_datatree`][bayesvol.MLEResult.to_datatree] gives the parameters the dims and coords of a posterior of the
        same data.
    data : numpy.ndarray or None
        The fitted data (float64), from which [`conditional_volatility`][bayesvol.conditional_volatility],
        [`resid`][bayesvol.MLEResult.resid], [`std_resid`][bayesvol.MLEResult.std_resid] and
        [`forecast`][bayesvol.forecasting.forecast] are computed; ``None`` for a result built without it (one series of
        a batch fit), whose data-dependent members then raise.

    The conditional moments behind [`conditional_volatility`][bayesvol.conditional_volatility],
    [`resid`][bayesvol.MLEResult.resid] and [`std_resid`][bayesvol.MLEResult.std_resid] are one-step-ahead (given the
    data before each date): exact for the observation-driven families, a filter's prediction for the latent-state ones
    (`bayesvol.inference.conditional`).
    data_scale : float, numpy.ndarray or None
        The reference scale (per column for a panel) the data were divided by for the optimisation; the
        estimates, standard errors and log-likelihood are reported in the units of the data as given.
        ``None`` when the model was fitted in the user's units (see [`bayesvol.fit`][bayesvol.fit]).
    se_method : str or None
        The likelihood whose Hessian and scores at the estimate gave ``se``, ``robust_se`` and the covariances:
        ``method`` itself, or a smooth likelihood of the same model (EIS for an SV particle-filter fit, whose own
        surface is rough), run with ``se_options``. ``None`` means ``method``.
    se_options : dict
        Options of the ``se_method`` likelihood (empty: its defaults, or the fit's ``options`` when it is ``method``).
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
    data: np.ndarray | None = field(default=None, repr=False, compare=False)
    data_scale: object = field(default=None, repr=False)
    warnings: list = field(default_factory=list)
    se_method: str | None = None
    se_options: dict = field(default_factory=dict)

    @property
    def reliable(self) -> bool:
        """``True`` when the optimiser converged and the estimates passed every self-check (no ``warnings``)."""
        return bool(self.converged) and not self.warnings

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

    # --- conditional moments, residuals, forecasts -----------------------------------------------------
    def _fitted_data(self) -> np.ndarray:
        if self.data is None:
            raise ValueError("this result holds no data (one series of a batch fit, or built by hand); use "
                             "bayesvol.inference.conditional.conditional_moments(model, params, y) with the data")
        return self.data

    @cached_property
    def moments(self) -> ConditionalMoments:
        """One-step-ahead conditional mean and variance at the estimate (computed once, then kept)."""
        return conditional_moments(self.model, self.params, self._fitted_data())

    def _labelled(self, values: np.ndarray, name: str):
        dims, coords = self.model.site_dims(self.data_index, values)
        index = pd.Index(coords["time"], name="time")
        if values.ndim == 1:
            return pd.Series(values, index=index, name=name)
        return pd.DataFrame(values, index=index, columns=pd.Index(list(coords["asset"]), name="asset"))

    @property
    def conditional_volatility(self):
        r"""Conditional standard deviation $\sigma_t = \mathrm{sd}(y_t \mid y_{1:t-1})$ at the estimate.

        A ``pandas.Series`` (one series) or ``DataFrame`` (one column per asset: the per-asset conditional
        standard deviation of DCC, DFSV and Wishart SV) indexed by the data's dates when it had them.
        GARCH-type models: the filtered variance path of their recursion, as arch's ``conditional_volatility``;
        SV, DFSV, Wishart SV: from a filter's prediction (see `bayesvol.inference.conditional`).
        """
        return self._labelled(np.sqrt(self.moments.variance), "volatility")

    @property
    def resid(self):
        r"""Residuals $y_t - E[y_t \mid y_{1:t-1}]$, labelled as
[`conditional_volatility`][bayesvol.conditional_volatility]."""
        return self._labelled(self._fitted_data() - self.moments.mean, "resid")

    @property
    def std_resid(self):
        """Standardised residuals: [`resid`][bayesvol.MLEResult.resid] divided by
[`conditional_volatility`][bayesvol.conditional_volatility]."""
        return self._labelled((self._fitted_data() - self.moments.mean) / np.sqrt(self.moments.variance),
                              "std_resid")

    def forecast(self, horizon: int = 1, **kwargs):
        """Forecast after the fitted data at the estimate: [`bayesvol.forecast`][bayesvol.forecasting.forecast] with
these parameters.

        Parameters
        ----------
        horizon : int
            Steps ahead (1 for the covariance forecasts of DCC and Wishart SV).
        **kwargs
            As for [`bayesvol.forecast`][bayesvol.forecasting.forecast] (``levels``, ``method``, ``num_paths``,
            ``seed``, filter options).

        Returns
        -------
        Forecast or CovarianceForecast
        """
        return _forecast.forecast(self.model, self.params, self._fitted_data(), horizon, **kwargs)

    def diagnostics_table(self, lags: int = 10, *, model_df: int = 0) -> pd.DataFrame:
        """Ljung–Box tests of the standardised residuals and their squares, and Engle's ARCH-LM test.

        See [`bayesvol.inference.residuals.residual_diagnostics`][bayesvol.residual_diagnostics]; one row per test (and
        asset).
        """
        return residual_diagnostics(self.std_resid, lags, model_df=model_df)

    def plot(self, *, title: str | None = None):
        """Standardised residuals and conditional volatility, one column of two panels per asset (as arch's).

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt  # here: maximum likelihood alone does not load matplotlib

        z, vol = self.std_resid, self.conditional_volatility
        z_frame, vol_frame = pd.DataFrame(z), pd.DataFrame(vol)
        n = z_frame.shape[1]
        fig, axes = plt.subplots(2, n, figsize=(11 if n == 1 else 5 * n, 6), squeeze=False, sharex=True)
        for j, asset in enumerate(z_frame.columns):
            label = "" if n == 1 else f" ({asset})"
            axes[0, j].plot(z_frame.index, z_frame.iloc[:, j].to_numpy(), color="C0", lw=0.6)
            axes[0, j].set_title(f"Standardised residuals{label}")
            axes[1, j].plot(vol_frame.index, vol_frame.iloc[:, j].to_numpy(), color="C1", lw=0.9)
            axes[1, j].set_title(f"Conditional volatility{label}")
            for ax in axes[:, j]:
                ax.margins(x=0)
        fig.suptitle(title or f"{self.model.describe()} — maximum likelihood ({self.method})")
        fig.tight_layout()
        return fig

    def _residual_lines(self) -> list[str]:
        try:
            table = self.diagnostics_table(SUMMARY_LAGS)
        except ValueError as err:
            return [f"Residual checks unavailable: {err}"]
        lines = [f"Residual checks ({SUMMARY_LAGS} lags; * p < 0.05, ** p < 0.01, {self.moments.source}):"]
        for name, row in table.iterrows():
            label = " ".join(str(part) for part in name) if isinstance(name, tuple) else name
            stars = "**" if row["p-value"] < 0.01 else "*" if row["p-value"] < 0.05 else ""
            lines.append(f"  {label:<28} stat {row['statistic']:10.3f}   p-value {row['p-value']:.4f} {stars}")
        return lines

    def summary(self, robust: bool = False, diagnostics: bool | None = None) -> str:
        """A readable table in the manner of arch's ``summary()``.

        Parameters
        ----------
        robust : bool
            Sandwich (QML-robust) standard errors instead of the inverse observed information.
        diagnostics : bool, optional
            Add the residual checks of [`diagnostics_table`][bayesvol.MLEResult.diagnostics_table] (10 lags) with flags
            for small p-values; by default for the observation-driven families (exact and cheap) when the result holds
            its data.
        """
        describe = self.model.describe()
        lines = [
            f"{describe} — maximum likelihood ({self.method})",
            "=" * 78,
            f"Log-likelihood: {self.loglik:14.4f}    AIC: {self.aic:12.4f}    BIC: {self.bic:12.4f}",
            f"Observations:   {self.nobs:14d}    Converged: {self.converged!s:>6}    Starts: {self.num_starts}",
            f"Covariance: {'robust (sandwich)' if robust else 'inverse observed information'}{self._se_source()}",
            "-" * 78,
            self.to_frame(robust).to_string(float_format=lambda v: f"{v: .4f}"),
            "=" * 78,
        ]
        lines.extend(f"{name}: {value}" for name, value in self.diagnostics.items())
        if self.at_boundary:
            lines.append(f"At the boundary of the support (standard errors unreliable): {', '.join(self.at_boundary)}")
        if not self.converged:
            lines.append(f"WARNING: the optimiser did not converge: {self.message}")
        if self.warnings:
            lines.append("WARNING: estimates not reliable:")
            lines.extend(f"  - {text}" for text in self.warnings)
        if diagnostics is None:
            diagnostics = self.data is not None and isinstance(self.model, ObservationDrivenModel)
        if diagnostics:
            lines.extend(self._residual_lines())
        return "\n".join(lines)

    def _se_source(self) -> str:
        if self.se_method is None or self.se_method == self.method:
            return ""
        return f" of the {self.se_method} likelihood at the {self.method} estimate"

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
        Each series' reference scale for the optimisation (see [`MLEResult`][bayesvol.MLEResult]), ``None`` when fitted
        in the user's units.

    Indexing with a series name (or position) gives that series' [`MLEResult`][bayesvol.MLEResult].
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
        """One [`MLEResult`][bayesvol.MLEResult] per series, in column order."""
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


def conditional_volatility(source):
    """Conditional standard deviation of each return from a maximum-likelihood result or a posterior.

    Parameters
    ----------
    source : MLEResult or xarray.DataTree
        A result of [`bayesvol.fit`][bayesvol.fit] (its
        [`MLEResult.conditional_volatility`][bayesvol.MLEResult.conditional_volatility]) or a posterior of
        [`bayesvol.sample`][bayesvol.sample] (the posterior median of each date's conditional standard deviation, see
        [`bayesvol.inference.conditional.posterior_volatility`][bayesvol.inference.conditional.posterior_volatility]).

    Returns
    -------
    pandas.Series or pandas.DataFrame
        Indexed by ``time``, one column per asset for the multivariate families.
    """
    if isinstance(source, MLEResult):
        return source.conditional_volatility
    median = posterior_volatility(source).median(("chain", "draw"))
    if median.ndim == 1:
        return median.to_series().rename("volatility")
    return median.transpose("time", "asset").to_pandas()
