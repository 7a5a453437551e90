r"""Rolling and expanding-window re-estimation with one-step (and h-step) forecasts, VaR, ES and scores.

The data $y_0, \dots, y_{T-1}$ are forecast from position ``window`` on. Refit $r$ estimates the
model on the window ending just before $t_r = \text{window} + r k$ (``k = refit_every``): the last
``window`` observations $y_{t_r - \text{window}}, \dots, y_{t_r - 1}$ (rolling), or all of them from
the start (expanding). Its parameters then forecast the dates $t_r, \dots, t_r + k - 1$: the model's
filter runs from the start value of the estimation window through the data up to the day before each date,
so that the forecast for $t$ uses $y_{<t}$ only, and equals
``bayesvol.forecast(model, params, y[s_r:t])`` ($s_r$ the first observation of the window) where the
model's start value does not depend on the sample, and otherwise up to the start value's effect, which
decays geometrically along the filter (for GARCH with the backcast, the sample mean of the residuals).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

import bayesvol._rolling_predictive as predictive_
import bayesvol.inference.registry as registry
from bayesvol._rolling_store import Progress, RunStore, data_fingerprint
from bayesvol._validation import MIN_OBSERVATIONS, ConvergenceWarning
from bayesvol.backtest import acerbi_szekely, backtest_table, mcneil_frey, plot_var, var_backtest
from bayesvol.backtest._checks import check_level
from bayesvol.inference.batch import fit_batch
from bayesvol.inference.mcmc import sample
from bayesvol.inference.mle import fit

__all__ = ["RollingForecast", "rolling_forecast"]

SAMPLERS = ("nuts", "svi")


@dataclass
class RollingForecast:
    """Forecasts of a rolling (or expanding) re-estimation, and the estimates of every refit.

    Attributes
    ----------
    forecasts : pandas.DataFrame
        One row per forecast date (the data's index, or positions): ``refit`` (the refit whose parameters
        give the forecast), ``mean``, ``variance`` ($E[\\sigma^2_t \\mid y_{<t}]$), ``volatility``,
        ``var_<level>`` and ``es_<level>`` (positive losses), ``log_score`` (the predictive log density of the
        realised return), ``variance_h2`` .. ``variance_h<H>`` (the variance expected ``h - 1`` steps later,
        from the same origin), ``return`` (the realised return) and ``hit_<level>`` (return below
        $-\\mathrm{VaR}$).
    params : pandas.DataFrame
        One row per refit, indexed by its first forecast date: ``window_start`` and ``window_end`` (first and
        last observation of the estimation window), the estimates (posterior means for a sampler), and for
        maximum likelihood ``loglik`` and ``converged``.
    model : bayesvol model
    method : str
        ``"exact"`` (or another likelihood method) for maximum likelihood, ``"nuts"`` or ``"svi"``.
    levels : tuple of float
        Tail probabilities of the VaR and ES columns.
    settings : dict
        The settings of the run (as stored with ``out``).
    draws : numpy.ndarray or None
        For a sampler: the simulated predictive returns, shape ``(num_draws, num_dates)``, from which VaR and
        ES were read and under which the ES backtest simulates.
    """

    forecasts: pd.DataFrame
    params: pd.DataFrame
    model: object
    method: str
    levels: tuple
    settings: dict = field(default_factory=dict)
    draws: np.ndarray | None = field(default=None, repr=False)

    def _level(self, level):
        if level is None:
            return self.levels[0]
        level = float(level)
        if level not in self.levels:
            raise ValueError(f"level {level!r} was not forecast; the levels are {list(self.levels)}")
        return level

    def predictive(self, num_samples: int = 2000, seed: int = 0):
        """The one-step predictive of every date as a `bayesvol.backtest` predictive object.

        Normal and Student-t plug-in laws give [`NormalPredictive`][bayesvol.backtest.NormalPredictive] and
        [`StudentTPredictive`][bayesvol.backtest.StudentTPredictive]; other laws, and posterior mixtures, are
        represented by simulated returns ([`DrawsPredictive`][bayesvol.backtest.DrawsPredictive], ``num_samples`` per
        date for plug-in laws).
        """
        if self.draws is not None:
            return predictive_.DrawsPredictive(self.draws)
        by_refit = self.params.reset_index(drop=True)
        rows = self.forecasts["refit"].to_numpy()
        values = {name: by_refit[name].to_numpy(dtype=np.float64)[rows] for name in self.model.param_names}
        return predictive_.plug_in_predictive(self.model, values, self.forecasts["mean"].to_numpy(),
                                              self.forecasts["variance"].to_numpy(), num_samples, seed)

    def backtest(self, levels=None, significance: float = 0.05, num_simulations: int = 10_000,
                 seed: int = 0) -> pd.DataFrame:
        """VaR and ES backtests of the forecasts, one table.

        Per level: the tests of [`bayesvol.backtest.var_backtest`][bayesvol.backtest.var_backtest] (Kupiec,
        Christoffersen, dynamic quantile, traffic light), Acerbi and Székely's $Z_2$ (simulated under the predictives of
        [`predictive`][bayesvol.rolling.RollingForecast.predictive]) and McNeil and Frey's exceedance residuals (a row
        of NaN where there are fewer than three exceedances).

        Parameters
        ----------
        levels : sequence of float, optional
            A subset of the forecast levels; all by default.
        significance : float
            Level of the decisions.
        num_simulations : int
            Simulated paths of the $Z_2$ test.
        seed : int
            Seed of the simulations and the bootstrap.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``(level, test)``.
        """
        levels = self.levels if levels is None else tuple(self._level(v) for v in np.atleast_1d(levels))
        y = self.forecasts["return"]
        scale = self.forecasts["volatility"].to_numpy()
        null = self.predictive(seed=seed)
        frames = {}
        for level in levels:
            var = self.forecasts[f"var_{level:g}"].to_numpy()
            es = self.forecasts[f"es_{level:g}"].to_numpy()
            table = var_backtest(y, var, level, significance=significance)
            results = [acerbi_szekely(y, null, level, num_simulations=num_simulations, seed=seed,
                                      significance=significance, var=var, es=es)]
            try:
                results.append(mcneil_frey(y, null, level, seed=seed, significance=significance, var=var, es=es,
                                           scale=scale))
            except ValueError as err:
                if "exceedances" not in str(err):
                    raise
                results.append(None)
            shortfall = backtest_table([r for r in results if r is not None])
            if results[-1] is None:
                shortfall.loc["McNeil-Frey exceedance residuals", "decision"] = "too few exceedances"
            frames[level] = pd.concat([table, shortfall])
        return pd.concat(frames, names=["level", "test"])

    def plot(self, level=None, ax=None, title: str | None = None):
        """Returns with $-\\mathrm{VaR}$ and $-\\mathrm{ES}$ at ``level`` and the exceedances marked.

        Returns
        -------
        matplotlib.axes.Axes
        """
        level = self._level(level)
        if title is None:
            title = f"{self.model.describe()}: rolling {100 * level:g}% VaR and ES"
        return plot_var(self.forecasts["return"], self.forecasts[f"var_{level:g}"].to_numpy(),
                        es=self.forecasts[f"es_{level:g}"].to_numpy(), level=level, ax=ax, title=title)


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def _check_levels(levels) -> tuple:
    levels = tuple(float(v) for v in np.atleast_1d(np.asarray(levels, dtype=object)))
    if not levels:
        raise ValueError("levels must name at least one tail probability, e.g. (0.01, 0.05)")
    for level in levels:
        check_level(level)
    if len(set(levels)) != len(levels):
        raise ValueError(f"levels must be distinct, got {list(levels)}")
    return levels


@dataclass(frozen=True)
class _Schedule:
    """Refit positions, estimation windows and forecast dates."""

    num_obs: int
    window: int
    refit_every: int
    expanding: bool

    @property
    def num_refits(self) -> int:
        return math.ceil((self.num_obs - self.window) / self.refit_every)

    def refit_at(self, r: int) -> int:
        return self.window + r * self.refit_every

    def fit_start(self, r: int) -> int:
        return 0 if self.expanding else self.refit_at(r) - self.window

    def block_length(self, r: int) -> int:
        return min(self.refit_every, self.num_obs - self.refit_at(r))

    def segment(self, values: np.ndarray, r: int) -> tuple[np.ndarray, int]:
        """The data filtered for refit ``r`` (from its window's start, padded to a common length) and the
        position of its first forecast date in it."""
        start = self.fit_start(r)
        length = self.num_obs if self.expanding else self.window + self.refit_every
        piece = values[start:start + length]
        return np.concatenate([piece, np.zeros(length - piece.size)]), self.refit_at(r) - start


def _settings(model, method, schedule, values, index, horizon, levels, warm_start, batch, batch_size,
              fit_options, sampler_options, num_draws, num_paths, seed) -> dict:
    sampler = method in SAMPLERS
    return {
        "format": 1, "model": repr(model), "method": method, "window": schedule.window,
        "expanding": schedule.expanding, "refit_every": schedule.refit_every, "horizon": horizon,
        "levels": list(levels), "warm_start": bool(warm_start) and not sampler, "batch": bool(batch),
        "batch_size": int(batch_size) if batch else None,
        "fit_options": {k: repr(v) for k, v in sorted(fit_options.items())},
        "sampler_options": {k: repr(v) for k, v in sorted(sampler_options.items())} if sampler else None,
        "num_draws": num_draws if sampler else None, "num_paths": num_paths if sampler else None,
        "seed": seed if sampler else None, "data": data_fingerprint(values, index),
        "stored": ["draws"] if sampler else [],
    }


def _param_rows(model, schedule, refits, estimates, extra) -> pd.DataFrame:
    rows = []
    for j, r in enumerate(refits):
        row = {"refit": r, "position": schedule.refit_at(r), "window_start": schedule.fit_start(r),
               "window_end": schedule.refit_at(r) - 1}
        row.update({name: float(estimates[name][j]) for name in model.param_names})
        row.update({k: v[j] for k, v in extra.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _forecast_rows(schedule, refits, columns, values, levels) -> pd.DataFrame:
    """The rows of the forecast dates of ``refits`` (``columns``: their forecasts, dates in order)."""
    positions = np.concatenate([schedule.refit_at(r) + np.arange(schedule.block_length(r)) for r in refits])
    refit = np.concatenate([np.full(schedule.block_length(r), r) for r in refits])
    frame = pd.DataFrame({"position": positions, "refit": refit, **columns, "return": values[positions]})
    for level in levels:
        frame[f"hit_{level:g}"] = frame["return"] < -frame[f"var_{level:g}"]
    return frame


# Largest unconstrained coordinate of a bounded parameter in a warm start (the "well out" threshold of the
# boundary flags of maximum likelihood).
_WARM_START_EDGE = 6.0


def _interior(model, previous: dict) -> dict:
    """The previous estimate with every bounded parameter moved at most ``_WARM_START_EDGE`` into its edge.

    An estimate on the edge of its support (GJR's ``alpha`` near 0 on index returns, ``nu`` running off to
    infinity) sits where the unconstrained coordinates flatten out, so the gradient there is nearly zero and an
    optimiser started at it stays even when the next window's optimum has moved inside; started a little
    inside, it finds the optimum that a fit from the model's own start values finds. Interior estimates pass
    unchanged.
    """
    inside = _moved_inside(model, {n: jnp.asarray(v, dtype=jnp.float64) for n, v in previous.items()})
    return {n: np.asarray(v, dtype=np.float64) for n, v in inside.items()}


@partial(jax.jit, static_argnums=0)
def _moved_inside(model, values):
    free = model.to_unconstrained(model.params_type(**values))
    bounded = set(model.bounded_free_names())
    free = {n: jnp.clip(v, -_WARM_START_EDGE, _WARM_START_EDGE) if n in bounded else v for n, v in free.items()}
    inside = model.from_unconstrained(free)
    return {n: getattr(inside, n) for n in model.param_names}


def _fit_one(model, y_fit, method, previous, fit_options):
    """One refit, from the previous estimate when there is one (else from the model's own start values)."""
    start = None if previous is None else _interior(model, previous)
    try:
        return fit(model, y_fit, method, start=start, warn=False, **fit_options)
    except ValueError as err:
        # The previous estimate can put a return of the new window outside the support (IG-GARCH).
        if previous is None or "not finite at any start value" not in str(err):
            raise
        return fit(model, y_fit, method, warn=False, **fit_options)


def rolling_forecast(model, y, *, window: int, expanding: bool = False, refit_every: int = 1, horizon: int = 1,
                     method: str = "exact", levels=(0.01, 0.05), warm_start: bool = True, batch: bool = False,
                     batch_size: int = 256, out=None, progress: bool = True, fit_options: Mapping | None = None,
                     sampler_options: Mapping | None = None, num_draws: int = 200, num_paths: int = 4000,
                     seed: int = 0) -> RollingForecast:
    """Re-estimate a model on rolling (or expanding) windows and forecast the dates after each refit.

    Parameters
    ----------
    model : bayesvol model
        A univariate model with one-step forecasts: [`GARCH`][bayesvol.models.GARCH] (GARCH, GJR; normal, t,
        skewed t), [`EGARCH`][bayesvol.models.EGARCH], [`IGGARCH`][bayesvol.models.IGGARCH]. Latent-state models
        (SV) raise ``NotImplementedError`` until [`bayesvol.forecast`][bayesvol.forecasting.forecast] forecasts them.
    y : array_like or pandas.Series
        Returns; a Series' index labels the forecast dates.
    window : int
        Length of the rolling estimation window; with ``expanding=True`` the length of the first window.
    expanding : bool
        Estimate on all the data up to each refit instead of the last ``window`` observations.
    refit_every : int
        Re-estimate every ``refit_every`` dates; the dates between refits use the last estimate, filtered
        through the data up to the day before.
    horizon : int
        Also forecast the variance ``2..horizon`` steps after each date (columns ``variance_h<k>``).
    method : str
        A likelihood method of [`bayesvol.fit`][bayesvol.fit] (``"exact"`` for the GARCH family), or a sampler of
        [`bayesvol.sample`][bayesvol.sample], ``"nuts"`` or ``"svi"``, whose posterior predictive (a mixture over
        ``num_draws`` posterior draws) gives the forecasts.
    levels : sequence of float
        Tail probabilities of the VaR and ES, each in (0, 0.5): 0.01 is the 99% VaR.
    warm_start : bool
        Start each maximum-likelihood refit from the previous estimate, with parameters on the edge of their
        support moved slightly inside (from the model's own start values where the previous estimate has no
        finite likelihood on the new window).
    batch : bool
        Estimate the rolling windows as the columns of a ``(window, num_refits)`` panel with one batched
        optimiser (`bayesvol.inference.batch.fit_batch`), ``batch_size`` windows at a time, each from the
        model's own start values. Needs rolling windows, maximum likelihood and a model with
        ``supports_batch_fit``.
    batch_size : int
        Windows per batched fit (the unit of progress and of resuming).
    out : str or os.PathLike, optional
        Directory for the results, written as each refit (or batch) completes: ``forecasts.csv`` (a row per
        date), ``params.csv`` (a row per refit), ``settings.json`` and ``state.json``. Run again with the same
        ``out`` and settings, an interrupted run continues after its last completed refit and gives the same
        result; a directory holding a run with other settings is refused.
    progress : bool
        Report windows done, elapsed time and the time left on stderr.
    fit_options : mapping, optional
        Passed to [`bayesvol.fit`][bayesvol.fit] (or the batch fit), e.g. ``{"gtol": 1e-7}``.
    sampler_options : mapping, optional
        Passed to [`bayesvol.sample`][bayesvol.sample] (e.g. ``num_warmup``, ``num_samples``, ``num_chains``).
    num_draws : int
        Posterior draws (evenly thinned) whose mixture is the predictive of a sampler.
    num_paths : int
        Simulated returns per date, split evenly over the posterior draws, for the VaR and ES of a sampler's
        predictive.
    seed : int
        Seed of the samplers (refit ``r`` uses ``seed + r``) and of the predictive simulations.

    Returns
    -------
    RollingForecast

    Examples
    --------
    >>> import bayesvol
    >>> from bayesvol.rolling import rolling_forecast
    >>> model = bayesvol.models.GARCH()
    >>> y = bayesvol.datasets.load("gbpusd")
    >>> result = rolling_forecast(model, y[:210], window=200, refit_every=5, progress=False)
    >>> result.forecasts.shape[0], result.params.shape[0]
    (10, 2)
    >>> bool((result.forecasts["es_0.01"] > result.forecasts["var_0.01"]).all())
    True
    """
    predictive_.family_of(model)
    series = model.validate_data(y)
    values, index = np.asarray(series.values, dtype=np.float64), series.index
    if values.ndim != 1:
        raise ValueError("rolling forecasts take one return series")
    window = _positive_int("window", window, MIN_OBSERVATIONS)
    refit_every = _positive_int("refit_every", refit_every)
    horizon = _positive_int("horizon", horizon)
    if window >= values.size:
        raise ValueError(f"window ({window}) must be shorter than the data ({values.size} observations), so that "
                         "at least one date is left to forecast")
    levels = _check_levels(levels)
    sampler = method in SAMPLERS
    registry.lookup(model, method)
    fit_options, sampler_options = dict(fit_options or {}), dict(sampler_options or {})
    if batch:
        if expanding or sampler or not model.supports_batch_fit:
            raise ValueError("batch=True needs rolling windows (expanding=False), maximum likelihood and a model "
                             f"that supports batch estimation; got expanding={expanding}, method={method!r}, "
                             f"supports_batch_fit={model.supports_batch_fit}")
        batch_size = _positive_int("batch_size", batch_size)
    if sampler:
        num_draws = _positive_int("num_draws", num_draws)
        num_paths = _positive_int("num_paths", num_paths)
    schedule = _Schedule(values.size, window, refit_every, bool(expanding))
    settings = _settings(model, method, schedule, values, index, horizon, levels, warm_start, batch, batch_size,
                         fit_options, sampler_options, num_draws, num_paths, seed)
    lengths = [schedule.block_length(r) for r in range(schedule.num_refits)]
    store = RunStore(out, settings) if out is not None else None
    done, forecasts, params, draws = store.load(lengths) if store is not None else (0, None, None, [])
    forecast_parts = [] if forecasts is None else [forecasts]
    param_parts = [] if params is None else [params]
    previous = None
    if params is not None and warm_start:
        previous = {name: float(params[name].iloc[-1]) for name in model.param_names}
    unit = batch_size if batch else 1
    bar = Progress(schedule.num_refits, done, f"rolling {type(model).__name__} ({method})", enabled=progress)
    while done < schedule.num_refits:
        refits = list(range(done, min(done + unit, schedule.num_refits)))
        if sampler:
            new_forecasts, new_params, new_draws = _sampler_refit(model, values, schedule, refits[0], method,
                                                                  levels, horizon, sampler_options, num_draws,
                                                                  num_paths, seed)
            draws.append(new_draws[refits[0]])
        else:
            new_forecasts, new_params = _mle_refits(model, values, schedule, refits, method, levels, horizon,
                                                    previous if warm_start else None, batch, batch_size,
                                                    fit_options)
            new_draws = None
            previous = {name: float(new_params[name].iloc[-1]) for name in model.param_names}
        forecast_parts.append(new_forecasts)
        param_parts.append(new_params)
        done = refits[-1] + 1
        if store is not None:
            store.append(done, new_forecasts, new_params, new_draws)
        bar.update(done)
    return _result(model, method, levels, settings, values, index, forecast_parts, param_parts,
                   np.concatenate(draws, axis=1) if sampler else None)


def _mle_refits(model, values, schedule, refits, method, levels, horizon, previous, batch, batch_size,
                fit_options):
    """Estimates and forecast rows of ``refits``: one warm-started fit, or a batch of windows in one fit."""
    fits = [values[schedule.fit_start(r):schedule.refit_at(r)] for r in refits]
    if batch:
        # A fixed panel width keeps one compiled optimiser for every batch (the padding columns are dropped).
        width = min(batch_size, schedule.num_refits)
        panel = np.column_stack(fits + [fits[-1]] * (width - len(fits)))
        result = fit_batch(model, panel, method, warn=False, **fit_options)
        estimates = {n: result.params[n].to_numpy()[: len(refits)] for n in model.param_names}
        extra = {"loglik": result.loglik.to_numpy()[: len(refits)],
                 "converged": result.converged.to_numpy()[: len(refits)]}
        padded = list(refits) + [refits[-1]] * (width - len(refits))
    else:
        result = _fit_one(model, fits[0], method, previous, fit_options)
        estimates = {n: np.atleast_1d(result.params[n]) for n in model.param_names}
        extra = {"loglik": [result.loglik], "converged": [bool(result.converged)]}
        padded = list(refits)
    segments = [schedule.segment(values, r) for r in padded]
    fit_values = [values[schedule.fit_start(r):schedule.refit_at(r)] for r in padded]
    stacked = {n: np.concatenate([v, np.repeat(v[-1:], len(padded) - len(v))]) for n, v in estimates.items()}
    lengths = [schedule.block_length(r) if j < len(refits) else 0 for j, r in enumerate(padded)]
    columns = predictive_.filter_blocks(model, stacked, np.stack(fit_values), np.stack([s for s, _ in segments]),
                                        [o for _, o in segments], lengths, levels, horizon)
    rows = _forecast_rows(schedule, refits, columns, values, levels)
    return rows, _param_rows(model, schedule, refits, estimates, extra)


def _sampler_refit(model, values, schedule, r, method, levels, horizon, sampler_options, num_draws, num_paths,
                   seed):
    """Posterior of one window and the mixture forecasts of its dates."""
    y_fit = values[schedule.fit_start(r):schedule.refit_at(r)]
    options = {"progress_bar": False, "warn": False, **sampler_options, "seed": seed + r}
    idata = sample(model, y_fit, method, **options)
    posterior = idata.posterior
    stacked = {n: np.asarray(posterior[n].values, dtype=np.float64).reshape(-1) for n in model.param_names}
    total = next(iter(stacked.values())).size
    if total > num_draws:
        keep = np.linspace(0, total - 1, num_draws).round().astype(int)
        stacked = {n: v[keep] for n, v in stacked.items()}
    segment, offset = schedule.segment(values, r)
    per_draw = max(1, num_paths // stacked[model.param_names[0]].size)
    columns, samples = predictive_.posterior_block(model, stacked, y_fit, segment, offset, schedule.block_length(r),
                                                   levels, horizon, per_draw, seed + r)
    rows = _forecast_rows(schedule, [r], columns, values, levels)
    means = {n: np.atleast_1d(v.mean()) for n, v in stacked.items()}
    return rows, _param_rows(model, schedule, [r], means, {}), {r: samples}


def _result(model, method, levels, settings, values, index, forecast_parts, param_parts, draws):
    forecasts = pd.concat(forecast_parts, ignore_index=True)
    params = pd.concat(param_parts, ignore_index=True)
    positions = forecasts.pop("position").to_numpy(dtype=np.int64)
    forecasts["refit"] = forecasts["refit"].astype(np.int64)
    for level in levels:
        forecasts[f"hit_{level:g}"] = forecasts[f"hit_{level:g}"].astype(bool)
    label = pd.RangeIndex(values.size) if index is None else pd.Index(index)
    forecasts.index = label[positions]
    forecasts.index.name = label.name or ("date" if index is not None else "position")
    params_index = label[params.pop("position").to_numpy(dtype=np.int64)]
    for column in ("window_start", "window_end"):
        params[column] = label[params[column].to_numpy(dtype=np.int64)]
    params.index = params_index
    params.index.name = forecasts.index.name
    params["refit"] = params["refit"].astype(np.int64)
    if "converged" in params:
        params["converged"] = params["converged"].astype(bool)
        failed = params.index[~params["converged"].to_numpy()]
        if len(failed):
            warnings.warn(f"maximum likelihood did not converge for {len(failed)} of {len(params)} refits "
                          f"(first: {list(failed[:5])}); see the 'converged' column of params",
                          ConvergenceWarning, stacklevel=3)
    return RollingForecast(forecasts=forecasts, params=params.drop(columns="refit"), model=model, method=method,
                           levels=levels, settings=settings, draws=draws)
