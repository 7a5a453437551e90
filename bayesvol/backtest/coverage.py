r"""VaR backtests on the hit sequence: coverage, independence, dynamic quantile, the Basel traffic light.

A hit (exception) is $I_t = 1\{y_t < -\mathrm{VaR}_t\}$
([`bayesvol.backtest.exceedances`][bayesvol.backtest.exceedances]); under the null of a correct VaR at tail probability
$\alpha$ the hits are independent Bernoulli($\alpha$). Each test returns a
[`BacktestResult`][bayesvol.backtest.BacktestResult] (the traffic light a
[`TrafficLightResult`][bayesvol.backtest.TrafficLightResult]). The private ``_*_statistic`` kernels act on the last axis
of a stack of hit sequences, so a Monte Carlo study runs them on many sequences at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import xlogy

from bayesvol.backtest._checks import (
    MIN_HITS,
    as_hits,
    as_series,
    check_level,
    check_significance,
    same_length,
)
from bayesvol.backtest._result import BacktestResult, TrafficLightResult, backtest_table
from bayesvol.backtest.risk import exceedances

__all__ = ["christoffersen_independence", "conditional_coverage", "dynamic_quantile", "kupiec", "traffic_light",
           "var_backtest"]

# Basel Committee (1996), supervisory framework for backtesting: plus factor of the capital multiplier by
# number of exceptions in 250 days at 99%.
BASEL_PLUS_FACTOR = {5: 0.40, 6: 0.50, 7: 0.65, 8: 0.75, 9: 0.85}


def _kupiec_statistic(hits, level):
    hits = np.asarray(hits)
    n = hits.shape[-1]
    x = hits.sum(axis=-1)
    rate = x / n
    null = xlogy(n - x, 1.0 - level) + xlogy(x, level)
    alternative = xlogy(n - x, 1.0 - rate) + xlogy(x, rate)
    return np.maximum(-2.0 * (null - alternative), 0.0)


def _transition_counts(hits):
    hits = np.asarray(hits)
    prev, cur = hits[..., :-1], hits[..., 1:]
    n01 = np.sum((prev == 0) & (cur == 1), axis=-1)
    n11 = np.sum((prev == 1) & (cur == 1), axis=-1)
    n0 = np.sum(prev == 0, axis=-1)
    n1 = np.sum(prev == 1, axis=-1)
    return n0 - n01, n01, n1 - n11, n11


def _markov_loglik(n00, n01, n10, n11):
    with np.errstate(invalid="ignore", divide="ignore"):
        pi01 = np.where(n00 + n01 > 0, n01 / np.maximum(n00 + n01, 1), 0.0)
        pi11 = np.where(n10 + n11 > 0, n11 / np.maximum(n10 + n11, 1), 0.0)
    return xlogy(n00, 1.0 - pi01) + xlogy(n01, pi01) + xlogy(n10, 1.0 - pi11) + xlogy(n11, pi11)


def _independence_statistic(hits):
    n00, n01, n10, n11 = _transition_counts(hits)
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    null = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    return np.maximum(-2.0 * (null - _markov_loglik(n00, n01, n10, n11)), 0.0)


def _conditional_coverage_statistic(hits, level):
    n00, n01, n10, n11 = _transition_counts(hits)
    null = xlogy(n00 + n10, 1.0 - level) + xlogy(n01 + n11, level)
    return np.maximum(-2.0 * (null - _markov_loglik(n00, n01, n10, n11)), 0.0)


def _dq_design(hits, level, var, lags):
    """Regressand $I_t - \\alpha$ and regressors ``[1, I_{t-1} - alpha, ..., I_{t-K} - alpha, VaR_t]``."""
    hits = np.asarray(hits, dtype=np.float64) - level
    n = hits.shape[-1]
    columns = [np.ones(hits.shape[:-1] + (n - lags,))]
    columns += [hits[..., lags - k:n - k] for k in range(1, lags + 1)]
    if var is not None:
        columns.append(np.broadcast_to(np.asarray(var, dtype=np.float64)[..., lags:], columns[0].shape))
    return hits[..., lags:], np.stack(columns, axis=-1)


def _dynamic_quantile_statistic(hits, level, var=None, lags=4):
    """DQ statistic and the rank of the regressor matrix (its degrees of freedom) for each sequence."""
    y, x = _dq_design(hits, level, var, lags)
    xty = np.einsum("...tk,...t->...k", x, y)
    xtx_inv = np.linalg.pinv(np.einsum("...tk,...tl->...kl", x, x), hermitian=True)
    quadratic = np.einsum("...k,...kl,...l->...", xty, xtx_inv, xty)
    return quadratic / (level * (1.0 - level)), np.linalg.matrix_rank(x)


def kupiec(hits, level: float, significance: float = 0.05) -> BacktestResult:
    r"""Kupiec's proportion-of-failures test of unconditional coverage.

    Parameters
    ----------
    hits : array_like
        Exception indicators (0/1 or booleans), at least 10.
    level : float
        The VaR's tail probability $\alpha$ in (0, 1), e.g. 0.01.
    significance : float
        Level of the decision.

    Returns
    -------
    BacktestResult
        ``statistic`` $LR_{uc}$, ``p_value`` from $\chi^2(1)$; details: exceptions, expected
        exceptions, observations, observed rate.

    Notes
    -----
    With $x$ exceptions in $T$ observations and $\hat\pi = x/T$ (Kupiec 1995),

    $$
    LR_{uc} = -2\big[(T-x)\log(1-\alpha) + x\log\alpha - (T-x)\log(1-\hat\pi) - x\log\hat\pi\big]
    \sim \chi^2(1),
    $$

    with $0\log 0 = 0$.

    Examples
    --------
    >>> from bayesvol.backtest import kupiec
    >>> result = kupiec([0] * 240 + [1] * 10, level=0.01)
    >>> round(result.statistic, 3), result.decision
    (12.955, 'reject')
    """
    level = check_level(level, tail=False)
    significance = check_significance(significance)
    h = as_hits(hits)
    statistic = float(_kupiec_statistic(h, level))
    details = {"exceptions": int(h.sum()), "expected": level * h.size, "observations": h.size,
               "rate": h.mean()}
    return BacktestResult("Kupiec POF", statistic, float(stats.chi2.sf(statistic, 1)), significance,
                          "chi2(1)", details)


def christoffersen_independence(hits, significance: float = 0.05) -> BacktestResult:
    r"""Christoffersen's likelihood-ratio test of independence of the exceptions.

    Parameters
    ----------
    hits : array_like
        Exception indicators (0/1 or booleans), at least 10.
    significance : float
        Level of the decision.

    Returns
    -------
    BacktestResult
        ``statistic`` $LR_{ind}$, ``p_value`` from $\chi^2(1)$; details: the transition counts
        ``n00, n01, n10, n11`` and the estimated probabilities ``pi01, pi11``.

    Notes
    -----
    With $n_{ij}$ the number of steps from state $i$ at $t-1$ to $j$ at $t$,
    $\hat\pi_{01} = n_{01}/(n_{00}+n_{01})$, $\hat\pi_{11} = n_{11}/(n_{10}+n_{11})$ and
    $\hat\pi = (n_{01}+n_{11})/(T-1)$ (Christoffersen 1998),

    $$
    LR_{ind} = -2\log\frac{(1-\hat\pi)^{n_{00}+n_{10}}\,\hat\pi^{n_{01}+n_{11}}}
    {(1-\hat\pi_{01})^{n_{00}}\hat\pi_{01}^{n_{01}}(1-\hat\pi_{11})^{n_{10}}\hat\pi_{11}^{n_{11}}}
    \sim \chi^2(1).
    $$

    Examples
    --------
    >>> from bayesvol.backtest import christoffersen_independence
    >>> clustered = [0] * 40 + [1, 1, 1, 1] + [0] * 56
    >>> christoffersen_independence(clustered).decision
    'reject'
    """
    significance = check_significance(significance)
    h = as_hits(hits)
    statistic = float(_independence_statistic(h))
    n00, n01, n10, n11 = (int(n) for n in _transition_counts(h))
    details = {"n00": n00, "n01": n01, "n10": n10, "n11": n11,
               "pi01": n01 / (n00 + n01) if n00 + n01 else float("nan"),
               "pi11": n11 / (n10 + n11) if n10 + n11 else float("nan")}
    return BacktestResult("Christoffersen independence", statistic, float(stats.chi2.sf(statistic, 1)),
                          significance, "chi2(1)", details)


def conditional_coverage(hits, level: float, significance: float = 0.05) -> BacktestResult:
    r"""Christoffersen's joint test of coverage and independence (conditional coverage).

    Parameters
    ----------
    hits : array_like
        Exception indicators (0/1 or booleans), at least 10.
    level : float
        The VaR's tail probability $\alpha$ in (0, 1).
    significance : float
        Level of the decision.

    Returns
    -------
    BacktestResult
        ``statistic`` $LR_{cc}$, ``p_value`` from $\chi^2(2)$.

    Notes
    -----
    With the transition counts of [`christoffersen_independence`][bayesvol.backtest.christoffersen_independence]
    (Christoffersen 1998),

    $$
    LR_{cc} = -2\log\frac{(1-\alpha)^{n_{00}+n_{10}}\,\alpha^{n_{01}+n_{11}}}
    {(1-\hat\pi_{01})^{n_{00}}\hat\pi_{01}^{n_{01}}(1-\hat\pi_{11})^{n_{10}}\hat\pi_{11}^{n_{11}}}
    \sim \chi^2(2),
    $$

    the likelihood ratio on the $T-1$ transitions; it equals $LR_{uc}$ of the hits
    $I_2, \dots, I_T$ plus $LR_{ind}$ exactly (the first hit only conditions).

    Examples
    --------
    >>> from bayesvol.backtest import conditional_coverage
    >>> result = conditional_coverage([0, 0, 0, 1, 0] * 40, level=0.2)
    >>> round(result.statistic, 3), result.null
    (20.345, 'chi2(2)')
    """
    level = check_level(level, tail=False)
    significance = check_significance(significance)
    h = as_hits(hits)
    statistic = float(_conditional_coverage_statistic(h, level))
    details = {"exceptions": int(h.sum()), "expected": level * h.size, "observations": h.size,
               "lr_independence": float(_independence_statistic(h))}
    return BacktestResult("Christoffersen conditional coverage", statistic, float(stats.chi2.sf(statistic, 2)),
                          significance, "chi2(2)", details)


def dynamic_quantile(hits, level: float, var=None, lags: int = 4, significance: float = 0.05) -> BacktestResult:
    r"""Engle and Manganelli's dynamic quantile (DQ) test.

    Parameters
    ----------
    hits : array_like
        Exception indicators (0/1 or booleans).
    level : float
        The VaR's tail probability $\alpha$ in (0, 1).
    var : array_like, optional
        The VaR forecasts, one per time step, used as a regressor (leave out to test the hits alone).
    lags : int
        Number $K$ of lagged hits among the regressors (4 as in Engle & Manganelli 2004).
    significance : float
        Level of the decision.

    Returns
    -------
    BacktestResult
        ``statistic`` DQ, ``p_value`` from $\chi^2(r)$ with $r$ the rank of the regressors
        ($K + 2$ with ``var``, $K + 1$ without, less if a column is collinear, e.g. a constant VaR).

    Notes
    -----
    With $\mathrm{Hit}_t = I_t - \alpha$ regressed on
    $X_t = (1, \mathrm{Hit}_{t-1}, \dots, \mathrm{Hit}_{t-K}, \mathrm{VaR}_t)$ for
    $t = K+1, \dots, T$ (Engle & Manganelli 2004),

    $$
    DQ = \frac{\mathrm{Hit}^\top X (X^\top X)^{-1} X^\top \mathrm{Hit}}{\alpha(1-\alpha)}
    \sim \chi^2(K+2)
    $$

    under the null that the hits are independent Bernoulli($\alpha$) and independent of the regressors
    (a pseudo-inverse stands for the inverse when $X$ is rank deficient). The test is known to be
    oversized when few exceptions are expected ($\alpha T$ small).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import dynamic_quantile
    >>> rng = np.random.default_rng(1)
    >>> hits = rng.random(500) < 0.05
    >>> var = 1.6 + rng.random(500)
    >>> result = dynamic_quantile(hits, 0.05, var=var)
    >>> result.null, result.decision
    ('chi2(6)', 'do not reject')
    """
    level = check_level(level, tail=False)
    significance = check_significance(significance)
    if isinstance(lags, bool) or not isinstance(lags, (int, np.integer)) or lags < 0:
        raise ValueError(f"lags must be a non-negative integer; got {lags!r}")
    num_regressors = lags + 1 + (var is not None)
    h = as_hits(hits, min_length=lags + max(MIN_HITS, 2 * num_regressors))
    v = None
    if var is not None:
        v = as_series(var, "var")
        same_length(hits=h, var=v)
    statistic, rank = _dynamic_quantile_statistic(h, level, v, lags)
    statistic, rank = float(statistic), int(rank)
    details = {"exceptions": int(h.sum()), "lags": lags, "var_regressor": v is not None, "df": rank}
    return BacktestResult("Engle-Manganelli DQ", statistic, float(stats.chi2.sf(statistic, rank)), significance,
                          f"chi2({rank})", details)


def traffic_light(hits, level: float = 0.01) -> TrafficLightResult:
    r"""The Basel traffic light: green, yellow or red zone from the number of exceptions.

    Parameters
    ----------
    hits : array_like
        Exception indicators; the Basel framework uses the last 250 trading days (pass ``hits[-250:]``).
    level : float
        The VaR's tail probability, 0.01 in the Basel framework.

    Returns
    -------
    TrafficLightResult
        ``statistic`` the number of exceptions $x$, ``p_value`` $P(X \ge x)$, ``zone``; details:
        the cumulative probability $P(X \le x)$ and, for 250 days at 1%, the plus factor added to the
        capital multiplier of 3.

    Notes
    -----
    With $X \sim \mathrm{Binomial}(T, \alpha)$ (Basel Committee on Banking Supervision 1996): green
    where $P(X \le x) < 0.95$, yellow where $0.95 \le P(X \le x) < 0.9999$, red from 0.9999. For
    $T = 250$, $\alpha = 0.01$ this gives green for 0 to 4 exceptions, yellow for 5 to 9, red
    from 10.

    Examples
    --------
    >>> from bayesvol.backtest import traffic_light
    >>> [traffic_light([1] * x + [0] * (250 - x)).zone for x in (4, 5, 9, 10)]
    ['green', 'yellow', 'yellow', 'red']
    """
    level = check_level(level)
    h = as_hits(hits)
    n, x = h.size, int(h.sum())
    cumulative = float(stats.binom.cdf(x, n, level))
    zone = "green" if cumulative < 0.95 else ("yellow" if cumulative < 0.9999 else "red")
    details = {"exceptions": x, "expected": level * n, "observations": n, "cumulative_probability": cumulative}
    if n == 250 and level == 0.01:
        details["plus_factor"] = 0.0 if zone == "green" else BASEL_PLUS_FACTOR.get(x, 1.0)
    return TrafficLightResult("Basel traffic light", float(x), float(stats.binom.sf(x - 1, n, level)), 0.0001,
                              f"binomial({n}, {level:g})", details, zone=zone)


def var_backtest(returns, var, level: float, lags: int = 4, significance: float = 0.05) -> pd.DataFrame:
    r"""Every VaR backtest of this module on one forecast, as one table.

    Parameters
    ----------
    returns : array_like or pandas.Series
        Realised returns.
    var : array_like
        VaR forecasts (positive losses), aligned with ``returns``.
    level : float
        The VaR's tail probability $\alpha$ in (0, 0.5).
    lags : int
        Lagged hits in the dynamic quantile test.
    significance : float
        Level of the decisions.

    Returns
    -------
    pandas.DataFrame
        One row per test: Kupiec, Christoffersen independence and conditional coverage, DQ (with the VaR as
        regressor) and the traffic light on the last 250 observations (on all if fewer).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import var_backtest
    >>> rng = np.random.default_rng(0)
    >>> sd = np.exp(rng.normal(0.0, 0.3, 1000))
    >>> returns = sd * rng.standard_normal(1000)
    >>> table = var_backtest(returns, 2.326 * sd, level=0.01)
    >>> list(table.index)  # doctest: +NORMALIZE_WHITESPACE
    ['Kupiec POF', 'Christoffersen independence', 'Christoffersen conditional coverage',
     'Engle-Manganelli DQ', 'Basel traffic light']
    """
    level = check_level(level)
    hits = exceedances(returns, var)
    v = as_series(var, "var") if np.ndim(var) else np.full(hits.shape, float(var))
    results = [kupiec(hits, level, significance), christoffersen_independence(hits, significance),
               conditional_coverage(hits, level, significance), dynamic_quantile(hits, level, v, lags, significance),
               traffic_light(hits[-250:], level)]
    return backtest_table(results)
