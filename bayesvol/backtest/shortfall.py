r"""Expected shortfall backtests: Acerbi and Székely's $Z_2$ and McNeil and Frey's exceedance residuals.

Both take the realised returns and the predictive distributions (from which the VaR, the ES and, for
McNeil–Frey, the scale come), with the sign convention of `bayesvol.backtest.risk`: VaR and ES are
positive losses and a hit is $y_t < -\mathrm{VaR}_t$. Both are one-sided: they reject when the
ES forecasts are too small (risk underestimated).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from bayesvol.backtest._checks import as_float_array, as_series, check_level, check_significance
from bayesvol.backtest._result import BacktestResult
from bayesvol.backtest.predictive import as_predictive

__all__ = ["acerbi_szekely", "mcneil_frey"]

_CHUNK_ELEMENTS = 2_000_000


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}; got {value!r}")
    return int(value)


def _aligned(x, name: str, num_timesteps: int) -> np.ndarray:
    """A scalar or one value per time step, as an array of length ``num_timesteps``."""
    values = as_float_array(x, name)
    if values.ndim == 0:
        return np.full(num_timesteps, float(values))
    if values.shape != (num_timesteps,):
        raise ValueError(f"lengths differ (returns: {num_timesteps}, {name}: shape {values.shape}); "
                         "give one value per time step")
    return values


def _aligned_predictive(predictive, y):
    predictive = as_predictive(predictive)
    if predictive.shape not in ((), y.shape):
        raise ValueError(f"lengths differ (returns: {y.size}, predictive: shape {predictive.shape}); "
                         "give one predictive distribution per time step (draws of shape (num_draws, T))")
    return predictive


def _risk_series(predictive, level, num_timesteps, var, es):
    """VaR and ES per time step, from the predictive unless given."""
    var = _aligned(predictive.value_at_risk(level) if var is None else var, "var", num_timesteps)
    es = _aligned(predictive.expected_shortfall(level) if es is None else es, "es", num_timesteps)
    if np.any(es <= 0):
        raise ValueError("es must be positive (a loss) for every time step; Z2 divides by it")
    return var, es


def _z2_statistic(returns, var, es, level):
    """Z2 of each sequence on the last axis of ``returns``."""
    num_timesteps = returns.shape[-1]
    hits = returns < -var
    return np.sum(np.where(hits, returns / es, 0.0), axis=-1) / (num_timesteps * level) + 1.0


def acerbi_szekely(returns, predictive, level: float, num_simulations: int = 10_000, seed: int = 0,
                   significance: float = 0.05, var=None, es=None) -> BacktestResult:
    r"""Acerbi and Székely's $Z_2$ test of the expected shortfall, with a simulated p-value.

    Parameters
    ----------
    returns : array_like or pandas.Series
        Realised returns, one per time step.
    predictive : NormalPredictive, StudentTPredictive, DrawsPredictive or array_like
        The predictive distribution of each return (draws with the draw axis first); the null law is
        simulated from it.
    level : float
        Tail probability $\alpha$ in (0, 0.5), e.g. 0.025.
    num_simulations : int
        Number $M$ of return paths simulated under the null.
    seed : int
        Seed of the simulation (the p-value is reproducible for a given seed).
    significance : float
        Level of the decision.
    var, es : array_like, optional
        VaR and ES forecasts (positive losses) to test instead of those of ``predictive``.

    Returns
    -------
    BacktestResult
        ``statistic`` $Z_2$ (0 expected under the null, negative when the ES is underestimated),
        ``p_value`` the simulated lower-tail probability; details: exceptions, expected exceptions, the
        simulated critical value at ``significance``, the number of simulations.

    Notes
    -----
    With $I_t = 1\{y_t < -\mathrm{VaR}_t\}$ (Acerbi & Székely 2014),

    $$
    Z_2 = \sum_{t=1}^T \frac{y_t I_t}{T\alpha\,\mathrm{ES}_t} + 1,
    $$

    which has mean zero when the predictives are correct, since $E[y_t I_t] = -\alpha\,\mathrm{ES}_t$.
    Paths $y^{(i)}_t \sim P_t$ independently over $t$ give $Z_2^{(i)}$, and the p-value is
    $(1 + \#\{i: Z_2^{(i)} \le Z_2\})/(M + 1)$; draws are resampled with replacement per time step.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import NormalPredictive, acerbi_szekely
    >>> rng = np.random.default_rng(0)
    >>> sd = np.exp(rng.normal(0.0, 0.3, 500))
    >>> returns = sd * rng.standard_t(4, 500)
    >>> thin = acerbi_szekely(returns, NormalPredictive(0.0, sd), 0.025, num_simulations=2000)
    >>> thin.statistic < 0, thin.decision
    (True, 'reject')
    """
    level = check_level(level)
    significance = check_significance(significance)
    num_simulations = _check_count(num_simulations, "num_simulations", 1)
    y = as_series(returns, "returns")
    predictive = _aligned_predictive(predictive, y)
    var_t, es_t = _risk_series(predictive, level, y.size, var, es)
    statistic = float(_z2_statistic(y, var_t, es_t, level))
    rng = np.random.default_rng(seed)
    per_time = predictive if predictive.shape == y.shape else None
    chunk = max(1, _CHUNK_ELEMENTS // y.size)
    simulated = []
    for start in range(0, num_simulations, chunk):
        size = min(chunk, num_simulations - start)
        paths = per_time.sample(size, rng) if per_time is not None else predictive.sample(size * y.size, rng)
        simulated.append(_z2_statistic(paths.reshape(size, y.size), var_t, es_t, level))
    simulated = np.concatenate(simulated)
    p_value = (1.0 + np.sum(simulated <= statistic)) / (num_simulations + 1.0)
    hits = y < -var_t
    details = {"exceptions": int(hits.sum()), "expected": level * y.size, "observations": y.size,
               "critical_value": float(np.quantile(simulated, significance)), "simulations": num_simulations}
    return BacktestResult("Acerbi-Szekely Z2", statistic, float(p_value), significance, "simulation", details)


def mcneil_frey(returns, predictive, level: float, method: str = "bootstrap", num_bootstrap: int = 10_000,
                seed: int = 0, significance: float = 0.05, var=None, es=None, scale=None) -> BacktestResult:
    r"""McNeil and Frey's test of the expected shortfall on the exceedance residuals.

    Parameters
    ----------
    returns : array_like or pandas.Series
        Realised returns, one per time step.
    predictive : NormalPredictive, StudentTPredictive, DrawsPredictive or array_like
        The predictive distribution of each return (gives VaR, ES and the scale $\sigma_t$).
    level : float
        Tail probability $\alpha$ in (0, 0.5).
    method : {"bootstrap", "t"}
        The bootstrap test of a zero mean (Efron & Tibshirani 1993, sec. 16.4), or Student's t-test.
    num_bootstrap : int
        Bootstrap replications.
    seed : int
        Seed of the bootstrap.
    significance : float
        Level of the decision.
    var, es, scale : array_like, optional
        VaR, ES (positive losses) and predictive standard deviations to use instead of those of
        ``predictive``.

    Returns
    -------
    BacktestResult
        ``statistic`` the t-statistic of the mean exceedance residual, ``p_value`` its one-sided p-value
        (alternative: ES too small); details: exceptions and the mean residual.

    Notes
    -----
    On the exceedances $t \in \{y_t < -\mathrm{VaR}_t\}$ the residuals (McNeil & Frey 2000)

    $$
    e_t = \frac{-y_t - \mathrm{ES}_t}{\sigma_t}
    $$

    have mean zero under the null. With $n$ exceedances, mean $\bar e$ and standard deviation
    $s$, the statistic is $t = \bar e/(s/\sqrt n)$. ``method="t"``: $p = P(t_{n-1} \ge t)$.
    ``method="bootstrap"``: resample the centred residuals $e_t - \bar e$ with replacement, compute
    $t^{*}_b$ for each of $B$ samples, and $p = (1 + \#\{b: t^*_b \ge t\})/(B + 1)$.
    At least 3 exceedances are needed.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import NormalPredictive, mcneil_frey
    >>> rng = np.random.default_rng(3)
    >>> returns = 1.5 * rng.standard_normal(1000)
    >>> mcneil_frey(returns, NormalPredictive(0.0, np.ones(1000)), 0.05, num_bootstrap=2000).decision
    'reject'
    """
    level = check_level(level)
    significance = check_significance(significance)
    if method not in ("bootstrap", "t"):
        raise ValueError(f"method must be 'bootstrap' or 't'; got {method!r}")
    num_bootstrap = _check_count(num_bootstrap, "num_bootstrap", 1)
    y = as_series(returns, "returns")
    predictive = _aligned_predictive(predictive, y)
    var_t, es_t = _risk_series(predictive, level, y.size, var, es)
    sigma = _aligned(predictive.sd() if scale is None else scale, "scale", y.size)
    if np.any(sigma <= 0):
        raise ValueError("scale must be positive for every time step")
    hits = y < -var_t
    n = int(hits.sum())
    if n < 3:
        raise ValueError(f"the McNeil-Frey test needs at least 3 exceedances; there are {n}")
    residuals = (-y[hits] - es_t[hits]) / sigma[hits]
    sd = residuals.std(ddof=1)
    if sd == 0:
        raise ValueError("the exceedance residuals are all equal; their mean cannot be tested")
    statistic = float(residuals.mean() / (sd / np.sqrt(n)))
    if method == "t":
        p_value, null = float(stats.t.sf(statistic, n - 1)), f"t({n - 1})"
    else:
        rng = np.random.default_rng(seed)
        centred = residuals - residuals.mean()
        sample = centred[rng.integers(0, n, size=(num_bootstrap, n))]
        boot_sd = sample.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            boot_t = np.where(boot_sd > 0, sample.mean(axis=1) / (boot_sd / np.sqrt(n)), 0.0)
        p_value, null = float((1.0 + np.sum(boot_t >= statistic)) / (num_bootstrap + 1.0)), "bootstrap"
    details = {"exceptions": n, "expected": level * y.size, "observations": y.size,
               "mean_residual": float(residuals.mean())}
    return BacktestResult("McNeil-Frey exceedance residuals", statistic, p_value, significance, null, details)
