r"""Scores of the whole predictive distribution and the Diebold–Mariano test of score differences.

* [`log_score`][bayesvol.backtest.log_score] — $\log p_t(y_t)$ (higher is better);
* [`mixture_log_score`][bayesvol.backtest.mixture_log_score] — the same for a posterior predictive given per-draw log
densities;
* [`crps`][bayesvol.backtest.crps] — the continuous ranked probability score (lower is better);
* [`pit`][bayesvol.backtest.pit] — probability integral transforms $F_t(y_t)$, uniform under a correct predictive
  (plot them with [`bayesvol.backtest.plot_pit`][bayesvol.backtest.plot_pit]);
* [`diebold_mariano`][bayesvol.backtest.diebold_mariano] — equal expected loss of two forecasts, with a HAC variance.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import logsumexp

from bayesvol.backtest._checks import as_series, check_significance, same_length
from bayesvol.backtest._result import BacktestResult
from bayesvol.backtest.predictive import DrawsPredictive, as_predictive

__all__ = ["crps", "diebold_mariano", "log_score", "mixture_log_score", "newey_west_lag", "pit"]


def log_score(predictive, returns):
    r"""Predictive log score $\log p_t(y_t)$ of each observation (higher is better).

    Parameters
    ----------
    predictive : NormalPredictive, StudentTPredictive, DrawsPredictive or array_like
        One predictive per observation (an array is read as draws, draw axis first).
    returns : array_like
        The observations.

    Returns
    -------
    float or numpy.ndarray
        One log density per observation. For draws it comes from a Gaussian kernel density estimate
        (see [`DrawsPredictive`][bayesvol.backtest.DrawsPredictive]), an approximation.

    Notes
    -----
    The logarithmic score (Good 1952; Gneiting & Raftery 2007) is strictly proper; its mean over a test
    period is the out-of-sample log predictive density per observation.

    Examples
    --------
    >>> from bayesvol.backtest import NormalPredictive, log_score
    >>> log_score(NormalPredictive(0.0, 1.0), [0.0, 1.0]).round(4)
    array([-0.9189, -1.4189])
    """
    return as_predictive(predictive).logpdf(returns)


def mixture_log_score(log_densities, axis: int = 0):
    r"""Log score of an equally weighted mixture from the log density of each component.

    Parameters
    ----------
    log_densities : array_like
        $\log p(y_t \mid \theta^{(s)})$ with the draws $s$ on ``axis`` (e.g. a posterior's
        one-step predictive log-likelihood per draw, shape ``(num_draws, T)``).
    axis : int
        The draw axis.

    Returns
    -------
    float or numpy.ndarray
        $\log \frac1S \sum_s p(y_t \mid \theta^{(s)})$ for each observation.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import mixture_log_score
    >>> mixture_log_score(np.log([[0.1], [0.3]])).round(4)   # log(0.2)
    array([-1.6094])
    """
    values = np.asarray(log_densities, dtype=np.float64)
    if values.ndim == 0 or np.isnan(values).any() or np.isposinf(values).any():
        raise ValueError("log_densities must be an array of log densities without NaN or +inf")
    out = logsumexp(values, axis=axis) - np.log(values.shape[axis])
    return float(out) if np.ndim(out) == 0 else out


def crps(predictive, returns, fair: bool = False):
    r"""Continuous ranked probability score of each predictive at its observation (lower is better).

    Parameters
    ----------
    predictive : NormalPredictive, StudentTPredictive, DrawsPredictive or array_like
        One predictive per observation (an array is read as draws, draw axis first).
    returns : array_like
        The observations.
    fair : bool
        For draws only: divide the pair sum by $S(S-1)$ (an unbiased estimate of the CRPS of the
        distribution that generated the draws) instead of $S^2$ (the CRPS of their empirical
        distribution).

    Returns
    -------
    float or numpy.ndarray
        One score per observation, in the units of the returns.

    Notes
    -----
    $\mathrm{CRPS}(F, y) = \int (F(x) - 1\{y \le x\})^2\,dx = E|X - y| - \tfrac12 E|X - X'|$ with
    $X, X'$ independent draws of $F$ (Gneiting & Raftery 2007). Normal: closed form
    $\sigma[z(2\Phi(z)-1) + 2\varphi(z) - 1/\sqrt\pi]$, $z = (y-\mu)/\sigma$; Student-t: the
    closed form of [`StudentTPredictive`][bayesvol.backtest.StudentTPredictive]; draws: the energy form with the
    sorted-sample identity $\sum_{i,j}|x_i - x_j| = 2\sum_i (2i-S-1)\,x_{(i)}$, $O(S\log S)$ per observation.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import NormalPredictive, crps
    >>> round(crps(NormalPredictive(0.0, 1.0), 0.0), 4)
    0.2337
    >>> draws = np.random.default_rng(0).standard_normal((20_000, 1))
    >>> bool(abs(crps(draws, [0.0])[0] - 0.2337) < 0.01)
    True
    """
    predictive = as_predictive(predictive)
    if isinstance(predictive, DrawsPredictive):
        return predictive.crps(returns, fair=fair)
    return predictive.crps(returns)


def pit(predictive, returns):
    r"""Probability integral transforms $u_t = F_t(y_t)$.

    Parameters
    ----------
    predictive : NormalPredictive, StudentTPredictive, DrawsPredictive or array_like
        One predictive per observation (an array is read as draws, draw axis first).
    returns : array_like
        The observations.

    Returns
    -------
    float or numpy.ndarray
        Values in [0, 1]: independent and uniform when the predictives are correct (Diebold, Gunther & Tay
        1998). For draws, the share of draws at or below the observation.

    Examples
    --------
    >>> from bayesvol.backtest import NormalPredictive, pit
    >>> pit(NormalPredictive(0.0, 1.0), [-1.96, 0.0]).round(3)
    array([0.025, 0.5  ])
    """
    return as_predictive(predictive).cdf(returns)


def newey_west_lag(num_observations: int) -> int:
    r"""The Newey–West (1994) rule of thumb $\lfloor 4 (T/100)^{2/9} \rfloor$ for the Bartlett kernel.

    Examples
    --------
    >>> from bayesvol.backtest import newey_west_lag
    >>> newey_west_lag(250), newey_west_lag(1000)
    (4, 6)
    """
    return int(np.floor(4.0 * (num_observations / 100.0) ** (2.0 / 9.0)))


def _long_run_variance(d, lag):
    """Bartlett-weighted (Newey–West) long-run variance of the series on the last axis."""
    centred = d - d.mean(axis=-1, keepdims=True)
    n = d.shape[-1]
    variance = np.mean(centred**2, axis=-1)
    for k in range(1, lag + 1):
        gamma = np.sum(centred[..., k:] * centred[..., :-k], axis=-1) / n
        variance = variance + 2.0 * (1.0 - k / (lag + 1.0)) * gamma
    return variance


def diebold_mariano(loss_a, loss_b, lag: int | None = None, horizon: int = 1, small_sample: bool = False,
                    alternative: str = "two-sided", significance: float = 0.05) -> BacktestResult:
    r"""Diebold and Mariano's test of equal expected loss of two forecasts.

    Parameters
    ----------
    loss_a, loss_b : array_like
        Losses of forecasts A and B on the same observations (lower is better): CRPS values, or minus the
        log scores.
    lag : int, optional
        Truncation lag $L$ of the Newey–West variance; by default
        $\max(h - 1, \lfloor 4(T/100)^{2/9}\rfloor)$ ([`newey_west_lag`][bayesvol.backtest.newey_west_lag]).
    horizon : int
        Forecast horizon $h$ (1 for one-step forecasts), used by the default lag and the correction.
    small_sample : bool
        Apply Harvey, Leybourne and Newbold's (1997) correction and take the p-value from $t_{T-1}$.
    alternative : {"two-sided", "less", "greater"}
        "less": A has the smaller expected loss; "greater": A has the larger.
    significance : float
        Level of the decision.

    Returns
    -------
    BacktestResult
        ``statistic`` DM (positive when A's losses are larger on average), ``p_value`` from $N(0, 1)$
        (or $t_{T-1}$); details: mean difference, lag, observations.

    Notes
    -----
    With $d_t = L^A_t - L^B_t$, $\bar d$ its mean and
    $\hat\gamma_k = \frac1T\sum_{t=k+1}^T (d_t - \bar d)(d_{t-k} - \bar d)$ (Diebold & Mariano 1995),

    $$
    DM = \frac{\bar d}{\sqrt{\hat\Omega / T}}, \qquad
    \hat\Omega = \hat\gamma_0 + 2\sum_{k=1}^{L}\Big(1 - \frac{k}{L+1}\Big)\hat\gamma_k,
    $$

    asymptotically $N(0, 1)$ under $E[d_t] = 0$. The Bartlett weights (Newey & West 1987) keep
    $\hat\Omega$ non-negative. The small-sample version multiplies DM by
    $\sqrt{(T + 1 - 2h + h(h-1)/T)/T}$.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import diebold_mariano
    >>> rng = np.random.default_rng(0)
    >>> y = rng.standard_normal(500)
    >>> result = diebold_mariano((y - 0.5) ** 2, y**2)   # A forecasts 0.5, B forecasts 0
    >>> result.statistic > 0, result.decision
    (True, 'reject')
    """
    significance = check_significance(significance)
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater'; got {alternative!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer; got {horizon!r}")
    a = as_series(loss_a, "loss_a")
    b = as_series(loss_b, "loss_b")
    n = same_length(loss_a=a, loss_b=b)
    if lag is None:
        lag = max(horizon - 1, newey_west_lag(n))
    if isinstance(lag, bool) or not isinstance(lag, (int, np.integer)) or lag < 0:
        raise ValueError(f"lag must be a non-negative integer; got {lag!r}")
    if n < max(10, 2 * (lag + 1)):
        raise ValueError(f"the Diebold-Mariano test needs at least {max(10, 2 * (lag + 1))} observations "
                         f"for lag {lag}; got {n}")
    d = a - b
    variance = float(_long_run_variance(d, int(lag)))
    if variance <= 0:
        raise ValueError("the loss differences have zero variance (identical or shifted losses); "
                         "the Diebold-Mariano statistic is undefined")
    statistic = float(d.mean() / np.sqrt(variance / n))
    law = stats.norm
    null = "N(0, 1)"
    if small_sample:
        statistic *= np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
        law = stats.t(n - 1)
        null = f"t({n - 1})"
    if alternative == "two-sided":
        p_value = 2.0 * law.sf(abs(statistic))
    elif alternative == "less":
        p_value = law.cdf(statistic)
    else:
        p_value = law.sf(statistic)
    details = {"mean_difference": float(d.mean()), "lag": int(lag), "observations": n, "alternative": alternative}
    return BacktestResult("Diebold-Mariano", float(statistic), float(p_value), significance, null, details)

