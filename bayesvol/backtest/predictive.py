r"""One-step-ahead predictive distributions of returns, one per time step.

Three kinds cover what the estimators produce:

* [`NormalPredictive`][bayesvol.backtest.NormalPredictive] — $y_t \sim N(\mu_t, \sigma_t^2)$ (plug-in GARCH with normal
errors,
  a portfolio of a multivariate normal);
* [`StudentTPredictive`][bayesvol.backtest.StudentTPredictive] — $y_t = \mu_t + \sigma_t z_t$ with $z_t$ a Student-t
with
  $\nu > 2$ degrees of freedom scaled to unit variance, so that $\sigma_t$ is the standard
  deviation (the parametrisation of the GARCH family);
* [`DrawsPredictive`][bayesvol.backtest.DrawsPredictive] — a sample of draws per time step (a posterior predictive, a
simulation).

Each offers the quantile, value at risk, expected shortfall, CDF, log density, CRPS, standard deviation and
simulation used by the backtests. `as_predictive` turns an array of draws into a
[`DrawsPredictive`][bayesvol.backtest.DrawsPredictive] and passes the predictive objects through.

Sign convention: returns are profits (negative returns are losses) and the level $\alpha$ is the
tail probability (0.01 for a 99% VaR). $\mathrm{VaR}_\alpha = -q_\alpha(y)$ and
$\mathrm{ES}_\alpha = -E[y \mid y \le q_\alpha(y)]$ are reported as positive losses, as
``bayesvol.forecast`` does; an exceedance is $y_t < -\mathrm{VaR}_t$. The return quantile of
rugarch's ``VaRTest`` is $-\mathrm{VaR}$.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from bayesvol.backtest._checks import as_float_array, check_level

__all__ = ["DrawsPredictive", "NormalPredictive", "StudentTPredictive", "as_predictive"]


def _scalar_or_array(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def _check_point(shape: tuple, y, name: str = "returns") -> np.ndarray:
    """Observations ``y`` (finite) broadcast against a predictive of the given shape."""
    y = as_float_array(y, name)
    try:
        out = np.broadcast_shapes(shape, y.shape)
    except ValueError:
        raise ValueError(f"lengths differ ({name}: shape {y.shape}, predictive: shape {shape}); the predictive "
                         "must hold one distribution per observation") from None
    if out != y.shape:
        raise ValueError(f"the predictive has shape {shape} but {name} has shape {y.shape}; "
                         "give one distribution per observation")
    return y


def _check_scale(loc, scale):
    loc = as_float_array(loc, "loc")
    scale = as_float_array(scale, "scale")
    if np.any(scale <= 0):
        raise ValueError("scale (the predictive standard deviation) must be positive everywhere")
    try:
        np.broadcast_shapes(loc.shape, scale.shape)
    except ValueError:
        raise ValueError(f"lengths differ (loc: shape {loc.shape}, scale: shape {scale.shape})") from None
    return loc, scale


@dataclass(frozen=True, eq=False)
class NormalPredictive:
    r"""Normal predictive $y_t \sim N(\mathrm{loc}_t, \mathrm{scale}_t^2)$.

    Parameters
    ----------
    loc : array_like
        Predictive means.
    scale : array_like
        Predictive standard deviations (positive), broadcast against ``loc``.

    Notes
    -----
    With $z_\alpha = \Phi^{-1}(\alpha)$: $\mathrm{VaR}_\alpha = -(\mu + \sigma z_\alpha)$,
    $\mathrm{ES}_\alpha = -\mu + \sigma\,\varphi(z_\alpha)/\alpha$, and the CRPS at $y$, with
    $z = (y-\mu)/\sigma$, is
    $\sigma\,[z(2\Phi(z)-1) + 2\varphi(z) - 1/\sqrt{\pi}]$ (Gneiting & Raftery 2007, eq. 21).

    Examples
    --------
    >>> from bayesvol.backtest import NormalPredictive
    >>> p = NormalPredictive(0.0, [1.0, 2.0])
    >>> p.value_at_risk(0.05).round(4)
    array([1.6449, 3.2897])
    >>> p.expected_shortfall(0.05).round(4)
    array([2.0627, 4.1254])
    """

    loc: np.ndarray
    scale: np.ndarray

    def __post_init__(self):
        loc, scale = _check_scale(self.loc, self.scale)
        object.__setattr__(self, "loc", loc)
        object.__setattr__(self, "scale", scale)

    @property
    def shape(self) -> tuple:
        return np.broadcast_shapes(self.loc.shape, self.scale.shape)

    def sd(self):
        return _scalar_or_array(np.broadcast_to(self.scale, self.shape))

    def quantile(self, probability: float):
        return _scalar_or_array(self.loc + self.scale * stats.norm.ppf(probability))

    def value_at_risk(self, level: float):
        return _scalar_or_array(-np.asarray(self.quantile(check_level(level))))

    def expected_shortfall(self, level: float):
        level = check_level(level)
        z = stats.norm.ppf(level)
        return _scalar_or_array(-self.loc + self.scale * stats.norm.pdf(z) / level)

    def cdf(self, y):
        y = _check_point(self.shape, y)
        return _scalar_or_array(stats.norm.cdf((y - self.loc) / self.scale))

    def logpdf(self, y):
        y = _check_point(self.shape, y)
        return _scalar_or_array(stats.norm.logpdf(y, self.loc, self.scale))

    def crps(self, y):
        y = _check_point(self.shape, y)
        z = (y - self.loc) / self.scale
        value = z * (2.0 * stats.norm.cdf(z) - 1.0) + 2.0 * stats.norm.pdf(z) - 1.0 / np.sqrt(np.pi)
        return _scalar_or_array(self.scale * value)

    def sample(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """``num_samples`` draws of every time step's predictive, shape ``(num_samples, *shape)``."""
        return self.loc + self.scale * rng.standard_normal((num_samples, *self.shape))


@dataclass(frozen=True, eq=False)
class StudentTPredictive:
    r"""Student-t predictive with unit-variance innovations: $y_t = \mathrm{loc}_t + \mathrm{scale}_t z_t$.

    $z_t = \sqrt{(\nu-2)/\nu}\, T_\nu$ has mean 0 and variance 1, so ``scale`` is the predictive
    standard deviation, as in the GARCH family's ``dist="t"``.

    Parameters
    ----------
    df : float or array_like
        Degrees of freedom $\nu > 2$.
    loc, scale : array_like
        Predictive means and standard deviations (positive), broadcast together.

    Notes
    -----
    With $c = \sigma\sqrt{(\nu-2)/\nu}$, $t_\alpha = F_\nu^{-1}(\alpha)$ and $f_\nu$ the
    Student-t density: $\mathrm{VaR}_\alpha = -(\mu + c\,t_\alpha)$ and
    $\mathrm{ES}_\alpha = -\mu + c\,\frac{\nu + t_\alpha^2}{\nu - 1}\,\frac{f_\nu(t_\alpha)}{\alpha}$.
    The CRPS at $y$, with $z = (y-\mu)/c$, is (Jordan, Krüger & Lerch 2019)

    $$
    c\Big[z(2F_\nu(z)-1) + 2 f_\nu(z)\frac{\nu+z^2}{\nu-1}
    - \frac{2\sqrt{\nu}\,B(\tfrac12, \nu-\tfrac12)}{(\nu-1)\,B(\tfrac12, \tfrac\nu2)^2}\Big].
    $$

    Examples
    --------
    >>> from bayesvol.backtest import StudentTPredictive
    >>> p = StudentTPredictive(5.0, 0.0, 1.0)
    >>> round(p.value_at_risk(0.01), 4), round(p.expected_shortfall(0.01), 4)
    (2.6065, 3.4488)
    """

    df: np.ndarray
    loc: np.ndarray
    scale: np.ndarray

    def __post_init__(self):
        loc, scale = _check_scale(self.loc, self.scale)
        df = as_float_array(self.df, "df")
        if np.any(df <= 2.0):
            raise ValueError("df must exceed 2 (the unit-variance Student-t needs a finite variance)")
        try:
            np.broadcast_shapes(df.shape, loc.shape, scale.shape)
        except ValueError:
            raise ValueError(f"lengths differ (df: {df.shape}, loc: {loc.shape}, scale: {scale.shape})") from None
        object.__setattr__(self, "df", df)
        object.__setattr__(self, "loc", loc)
        object.__setattr__(self, "scale", scale)

    @property
    def shape(self) -> tuple:
        return np.broadcast_shapes(self.df.shape, self.loc.shape, self.scale.shape)

    @property
    def _c(self) -> np.ndarray:
        return self.scale * np.sqrt((self.df - 2.0) / self.df)

    def sd(self):
        return _scalar_or_array(np.broadcast_to(self.scale, self.shape))

    def quantile(self, probability: float):
        return _scalar_or_array(self.loc + self._c * stats.t.ppf(probability, self.df))

    def value_at_risk(self, level: float):
        return _scalar_or_array(-np.asarray(self.quantile(check_level(level))))

    def expected_shortfall(self, level: float):
        level = check_level(level)
        nu = self.df
        q = stats.t.ppf(level, nu)
        tail = (nu + q**2) / (nu - 1.0) * stats.t.pdf(q, nu) / level
        return _scalar_or_array(-self.loc + self._c * tail)

    def cdf(self, y):
        y = _check_point(self.shape, y)
        return _scalar_or_array(stats.t.cdf((y - self.loc) / self._c, self.df))

    def logpdf(self, y):
        y = _check_point(self.shape, y)
        return _scalar_or_array(stats.t.logpdf((y - self.loc) / self._c, self.df) - np.log(self._c))

    def crps(self, y):
        y = _check_point(self.shape, y)
        nu, c = self.df, self._c
        z = (y - self.loc) / c
        constant = 2.0 * np.sqrt(nu) * special.beta(0.5, nu - 0.5) / ((nu - 1.0) * special.beta(0.5, nu / 2.0) ** 2)
        value = (z * (2.0 * stats.t.cdf(z, nu) - 1.0)
                 + 2.0 * stats.t.pdf(z, nu) * (nu + z**2) / (nu - 1.0) - constant)
        return _scalar_or_array(c * value)

    def sample(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """``num_samples`` draws of every time step's predictive, shape ``(num_samples, *shape)``."""
        t = rng.standard_t(np.broadcast_to(self.df, self.shape), size=(num_samples, *self.shape))
        return self.loc + self._c * t


@dataclass(frozen=True, eq=False)
class DrawsPredictive:
    r"""A predictive given by draws: ``draws[s, t]`` is draw ``s`` of the predictive of time step ``t``.

    Parameters
    ----------
    draws : array_like
        Shape ``(num_draws,)`` for one distribution or ``(num_draws, T)`` for one per time step (the draw
        axis first, as in ``bayesvol.forecast``). At least 2 draws, all finite.
    quantile_method : str
        The ``method`` of `numpy.quantile` for the VaR (default linear interpolation, as
        ``bayesvol.forecast``).

    Notes
    -----
    With the sorted draws $x_{(1)} \le \dots \le x_{(S)}$, $k = \lfloor \alpha S \rfloor$:
    the expected shortfall is that of the empirical distribution (Acerbi & Tasche 2002),
    $\mathrm{ES}_\alpha = -\frac{1}{\alpha S}\big[\sum_{i \le k} x_{(i)} + (\alpha S - k)\,x_{(k+1)}\big]$.
    The CRPS is the energy form $E|X-y| - \tfrac12 E|X-X'|$ of the empirical distribution, with
    $\sum_{i,j}|x_i - x_j| = 2\sum_i (2i - S - 1)\,x_{(i)}$; ``fair=True`` divides the pair sum by
    $S(S-1)$ instead of $S^2$ (unbiased for the CRPS of the distribution the draws come from;
    Ferro 2014). The log density is a Gaussian kernel density estimate with Silverman's bandwidth
    $0.9\min(s, \mathrm{IQR}/1.34)\,S^{-1/5}$, an approximation; where the predictive has a known
    density per posterior draw use [`bayesvol.backtest.mixture_log_score`][bayesvol.backtest.mixture_log_score].

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvol.backtest import DrawsPredictive
    >>> p = DrawsPredictive(np.arange(1.0, 101.0))   # draws 1, 2, ..., 100
    >>> float(p.expected_shortfall(0.05))             # minus the mean of the 5 smallest
    -3.0
    """

    draws: np.ndarray
    quantile_method: str = "linear"

    def __post_init__(self):
        draws = as_float_array(self.draws, "draws")
        if draws.ndim == 0 or draws.shape[0] < 2:
            raise ValueError(f"draws must have at least 2 draws on its first axis; got shape {draws.shape}")
        object.__setattr__(self, "draws", draws)

    @property
    def shape(self) -> tuple:
        return self.draws.shape[1:]

    @property
    def num_draws(self) -> int:
        return self.draws.shape[0]

    def sd(self):
        return _scalar_or_array(self.draws.std(axis=0, ddof=1))

    def quantile(self, probability: float):
        return _scalar_or_array(np.quantile(self.draws, probability, axis=0, method=self.quantile_method))

    def value_at_risk(self, level: float):
        return _scalar_or_array(-np.asarray(self.quantile(check_level(level))))

    def expected_shortfall(self, level: float):
        level = check_level(level)
        sorted_draws = np.sort(self.draws, axis=0)
        mass = level * self.num_draws
        k = int(np.floor(mass))
        tail = sorted_draws[:k].sum(axis=0) + (mass - k) * sorted_draws[k]
        return _scalar_or_array(-tail / mass)

    def cdf(self, y):
        y = _check_point(self.shape, y)
        return _scalar_or_array(np.mean(self.draws <= y, axis=0))

    def logpdf(self, y):
        y = _check_point(self.shape, y)
        x = self.draws
        s = x.std(axis=0, ddof=1)
        iqr = np.subtract(*np.quantile(x, [0.75, 0.25], axis=0))
        spread = np.where(iqr > 0, np.minimum(s, iqr / 1.34), s)
        if np.any(spread <= 0):
            raise ValueError("the draws of some time step are all equal; their density cannot be estimated")
        h = 0.9 * spread * self.num_draws ** (-0.2)
        kernel = -0.5 * ((y - x) / h) ** 2
        return _scalar_or_array(special.logsumexp(kernel, axis=0) - np.log(self.num_draws * h * np.sqrt(2 * np.pi)))

    def crps(self, y, fair: bool = False):
        y = _check_point(self.shape, y)
        num = self.num_draws
        sorted_draws = np.sort(self.draws, axis=0)
        ranks = np.arange(1, num + 1).reshape((num,) + (1,) * (self.draws.ndim - 1))
        pair_sum = 2.0 * np.sum((2 * ranks - num - 1) * sorted_draws, axis=0)  # sum_{i,j} |x_i - x_j|
        denominator = num * (num - 1) if fair else num**2
        value = np.mean(np.abs(self.draws - y), axis=0) - 0.5 * pair_sum / denominator
        return _scalar_or_array(value)

    def sample(self, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Draws resampled with replacement, independently per time step: shape ``(num_samples, *shape)``."""
        pick = rng.integers(0, self.num_draws, size=(num_samples, *self.shape))
        return np.take_along_axis(self.draws, pick, axis=0)


PREDICTIVES = (NormalPredictive, StudentTPredictive, DrawsPredictive)


def as_predictive(predictive):
    """A predictive object, or an array of draws (draw axis first) wrapped as
[`DrawsPredictive`][bayesvol.backtest.DrawsPredictive]."""
    if isinstance(predictive, PREDICTIVES):
        return predictive
    if isinstance(predictive, (dict, str)) or predictive is None:
        raise TypeError("predictive must be NormalPredictive, StudentTPredictive, DrawsPredictive or an array "
                        f"of draws of shape (num_draws, T); got {type(predictive).__name__}")
    return DrawsPredictive(predictive)
