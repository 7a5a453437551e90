r"""Posterior against maximum likelihood, and models against each other on predictive scores.

The one module that speaks ArviZ beyond building ``InferenceData``:

* :func:`estimates_table` — posterior mean, sd and HDI beside MLE ± SE, one row per parameter name;
* :func:`plot_estimates` — a forest plot of the posterior HDIs with the MLEs (and their 95% intervals)
  overlaid;
* :func:`add_predictive_log_likelihood` — one-step-ahead predictive log-likelihoods
  :math:`\log p(y_t \mid y_{1:t-1}, \theta)` per posterior draw in the ``log_likelihood`` group, so that
  ``arviz.loo`` / ``arviz.compare`` rank latent-state models (particle filter) and observation-driven
  models (exact recursion) on the same footing;
* :func:`leave_future_out` — the log predictive score of the last part of the sample.

Everything works for any :class:`~bayesvol.MLEResult` (SV by EIS, PF, Bellman or QML, and the GARCH
family) and any posterior whose variable names are the model's parameter names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayesvol.inference import registry
from bayesvol.inference.results import MLEResult
from bayesvol.models._protocol import LatentStateModel

__all__ = [
    "LeaveFutureOutResult",
    "add_predictive_log_likelihood",
    "estimates_table",
    "leave_future_out",
    "plot_estimates",
]

PREDICTIVE_ATTR = ("one-step-ahead predictive: log p(y_t | y_{{1:t-1}}, theta) per posterior draw, by {how}; "
                   "comparable across latent-state and observation-driven models")


def _as_mle_dict(mle) -> dict[str, MLEResult]:
    if mle is None:
        return {}
    if isinstance(mle, MLEResult):
        return {f"MLE ({mle.method})": mle}
    if isinstance(mle, Mapping) and all(isinstance(v, MLEResult) for v in mle.values()):
        return dict(mle)
    raise TypeError("mle must be an MLEResult or a dict of label -> MLEResult")


def _posterior(idata):
    if isinstance(idata, az.InferenceData):
        if "posterior" not in idata.groups():
            raise ValueError("the InferenceData has no posterior group")
        return idata.posterior
    raise TypeError(f"expected arviz.InferenceData, got {type(idata).__name__}")


def _scalar_rows(posterior, names):
    """Flattened (label, draws) for each named variable, matrix parameters element by element."""
    rows = []
    for name in names:
        if name not in posterior:
            raise ValueError(f"parameter {name!r} is not in the posterior (has {', '.join(posterior.data_vars)})")
        values = posterior[name].values  # (chain, draw, ...)
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        if values.ndim == 2:
            rows.append((name, flat[:, :, 0]))
        else:
            for k, idx in enumerate(np.ndindex(values.shape[2:])):
                rows.append((f"{name}[{','.join(map(str, idx))}]", flat[:, :, k]))
    return rows


def _names(idata, mles, var_names):
    if var_names is not None:
        return list(var_names)
    for result in mles.values():
        return list(result.model.param_names)
    return [v for v in _posterior(idata).data_vars if _posterior(idata)[v].ndim == 2]


def estimates_table(idata=None, mle=None, *, var_names=None, hdi_prob: float = 0.94,
                    robust: bool = False) -> pd.DataFrame:
    """Posterior summaries beside maximum-likelihood estimates, one row per parameter.

    Parameters
    ----------
    idata : arviz.InferenceData, optional
        With a ``posterior`` group whose variables carry the model's parameter names.
    mle : MLEResult or dict of label -> MLEResult, optional
        One or several MLE fits (e.g. ``{"EIS": res_eis, "PF": res_pf}``).
    var_names : list of str, optional
        Parameters to show; by default the MLE model's ``param_names``.
    hdi_prob : float
        Probability mass of the highest-density interval.
    robust : bool
        Use the sandwich standard errors of the MLEs.

    Returns
    -------
    pandas.DataFrame
        Columns ``mean``, ``sd``, ``hdi_<lo>%``, ``hdi_<hi>%`` (posterior) and, per MLE, ``<label>`` and
        ``<label> se``.

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> from bayesvol.compare import estimates_table
    >>> draws = np.random.default_rng(0).normal([[0.9], [0.2]], 0.01, (2, 2, 100)).transpose(1, 0, 2)
    >>> idata = az.from_dict(posterior={"phi": draws[0], "sigma": draws[1]})
    >>> list(estimates_table(idata, var_names=["phi", "sigma"]).columns)
    ['mean', 'sd', 'hdi_3%', 'hdi_97%']
    """
    if idata is None and mle is None:
        raise ValueError("give a posterior (idata), an MLE result, or both")
    mles = _as_mle_dict(mle)
    names = _names(idata, mles, var_names)
    lo, hi = 100 * (1 - hdi_prob) / 2, 100 * (1 + hdi_prob) / 2
    lo_label, hi_label = f"hdi_{lo:g}%", f"hdi_{hi:g}%"
    frame = pd.DataFrame(index=pd.Index([], name="parameter"))
    if idata is not None:
        rows = _scalar_rows(_posterior(idata), names)
        stats = {}
        for label, draws in rows:
            interval = az.hdi(draws.ravel(), hdi_prob=hdi_prob)
            stats[label] = {"mean": draws.mean(), "sd": draws.std(ddof=1), lo_label: interval[0],
                            hi_label: interval[1]}
        frame = pd.DataFrame.from_dict(stats, orient="index")
        frame.index.name = "parameter"
    for label, result in mles.items():
        estimates = pd.Series(result.flat(result.params), index=result.labels)
        errors = pd.Series(result.flat(result.robust_se if robust else result.se), index=result.labels)
        keep = [lab for lab in result.labels if lab.split("[")[0] in names]
        block = pd.DataFrame({label: estimates[keep], f"{label} se": errors[keep]})
        frame = block if frame.empty else frame.join(block, how="outer")
    order = [row for name in names for row in frame.index if row == name or row.startswith(name + "[")]
    return frame.loc[order]


def plot_estimates(idata=None, mle=None, *, var_names=None, hdi_prob: float = 0.94, ax=None):
    """Forest plot: posterior mean and HDI per parameter, MLEs with 95% Wald intervals overlaid.

    Parameters
    ----------
    idata, mle, var_names, hdi_prob :
        As for :func:`estimates_table`.
    ax : matplotlib.axes.Axes or array of Axes, optional
        One axis per parameter (parameters live on different scales); created when omitted.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    table = estimates_table(idata, mle, var_names=var_names, hdi_prob=hdi_prob)
    mles = _as_mle_dict(mle)
    rows = list(table.index)
    if ax is None:
        _, ax = plt.subplots(len(rows), 1, figsize=(7, 1.1 * len(rows) + 0.6), squeeze=False)
    axes = np.ravel(ax)
    if axes.size != len(rows):
        raise ValueError(f"need {len(rows)} axes, one per parameter; got {axes.size}")
    hdi_cols = [c for c in table.columns if c.startswith("hdi_")]
    for axis, row in zip(axes, rows, strict=True):
        labels, position = [], 0
        if idata is not None:
            axis.plot(table.loc[row, hdi_cols], [position, position], color="C0", lw=3)
            axis.plot(table.loc[row, "mean"], position, "o", color="C0")
            labels.append(f"posterior ({100 * hdi_prob:g}% HDI)")
            position += 1
        for k, label in enumerate(mles):
            est, se = table.loc[row, label], table.loc[row, f"{label} se"]
            if np.isfinite(est):
                width = 1.959964 * se if np.isfinite(se) else 0.0
                axis.errorbar(est, position, xerr=width, fmt="D", color=f"C{k + 1}", capsize=3)
            labels.append(f"{label} ± 1.96 se")
            position += 1
        axis.set_yticks(range(position), labels, fontsize=8)
        axis.set_ylim(-0.7, position - 0.3)
        axis.invert_yaxis()
        axis.set_title(row, fontsize=10, loc="left")
    axes[0].figure.tight_layout()
    return axes


def _draws_as_params(model, posterior, draw_slice):
    values = {}
    for name in model.param_names:
        if name not in posterior:
            raise ValueError(f"parameter {name!r} of {model!r} is not in the posterior")
        arr = posterior[name].values[:, draw_slice]
        values[name] = arr.reshape((-1,) + arr.shape[2:])
    return values, posterior[model.param_names[0]].values[:, draw_slice].shape[:2]


def _default_method(model) -> str:
    return "pf" if isinstance(model, LatentStateModel) else "exact"


def _pointwise_fn(model, y, method, options):
    fn = registry.lookup(model, method).loglik
    y = jnp.asarray(y, dtype=jnp.float64)

    def one(params):
        return fn(model, model.params_type(**params), y, **options)

    return one


def add_predictive_log_likelihood(idata, model, y, *, method: str | None = None, thin: int = 1,
                                  batch_size: int = 16, **options):
    r"""Add one-step-ahead predictive log-likelihoods per posterior draw as the ``log_likelihood`` group.

    Parameters
    ----------
    idata : arviz.InferenceData
        Posterior of ``model`` given ``y`` (e.g. from :func:`bayesvol.sample`).
    model : bayesvol model
    y : array_like or pandas.Series
        The data the posterior was fitted to.
    method : str, optional
        Likelihood method giving :math:`\log p(y_t \mid y_{1:t-1}, \theta)`: ``"pf"`` (default for
        latent-state models; the particle filter) or ``"exact"`` (default for observation-driven models).
    thin : int
        Keep every ``thin``-th draw (in every group), to bound the cost of one filter run per draw.
    batch_size : int
        Draws evaluated at once (``jax.lax.map``).
    **options
        Passed to the method, e.g. ``num_particles=1000, seed=0`` (the same seed for every draw: common
        random numbers). The auxiliary proposal (``proposal="auxiliary"``) lowers the noise per particle.

    Returns
    -------
    arviz.InferenceData
        A copy with ``log_likelihood["y"]`` of dims ``(chain, draw, time)``; its ``attrs`` say that the
        values are one-step-ahead predictive and how they were computed, so ``arviz.loo`` and
        ``arviz.compare`` treat SV and GARCH alike.

    Notes
    -----
    PSIS-LOO on these terms approximates leaving out the *term* :math:`\log p(y_t \mid y_{1:t-1})`, the
    standard way of comparing time-series models by ``arviz.compare``; :func:`leave_future_out` scores the
    last part of the sample as a genuine forecast. The particle-filter terms are Monte Carlo estimates;
    their noise adds to the LOO standard errors (use enough particles that the per-draw log-likelihood SD
    is well below 1).
    """
    posterior = _posterior(idata)
    if not isinstance(thin, int) or thin < 1:
        raise ValueError(f"thin must be a positive integer, got {thin!r}")
    method = method or _default_method(model)
    data = model.validate_data(y)
    idata = idata.sel(draw=slice(None, None, thin)) if thin > 1 else idata.copy()
    params, (num_chains, num_draws) = _draws_as_params(model, posterior, slice(None, None, thin))
    one = _pointwise_fn(model, data.values, method, options)
    flat = jax.lax.map(one, {k: jnp.asarray(v) for k, v in params.items()}, batch_size=batch_size)
    values = np.asarray(flat).reshape(num_chains, num_draws, -1)
    how = (f"the particle filter ({options})" if method == "pf" else f"the {method!r} likelihood ({options})")
    if "observed_data" in idata.groups() and "time" in idata.observed_data.coords:
        times = idata.observed_data["time"].values
    else:
        times = np.arange(values.shape[-1])
    if times.shape[0] != values.shape[-1]:
        raise ValueError(f"y has {values.shape[-1]} observations but the InferenceData has {times.shape[0]}")
    dataset = az.from_dict(log_likelihood={"y": values}, dims={"y": ["time"]},
                           coords={"time": times}).log_likelihood
    dataset = dataset.assign_coords(chain=idata.posterior.chain.values, draw=idata.posterior.draw.values)
    dataset.attrs.update(dict(idata.posterior.attrs))
    dataset.attrs["log_likelihood"] = PREDICTIVE_ATTR.format(how=how)
    if "log_likelihood" in idata.groups():
        del idata.log_likelihood
    idata.add_groups(log_likelihood=dataset)
    return idata


class LeaveFutureOutResult(NamedTuple):
    """Log predictive score of the last ``num_test`` observations.

    Attributes
    ----------
    elpd : float
        :math:`\\sum_t \\log \\hat p(y_t \\mid y_{1:t-1})` over the test period.
    se : float
        Standard error of ``elpd`` from the spread of the pointwise terms (:math:`\\sqrt{n}\\,` sd).
    pointwise : numpy.ndarray
        The terms, shape ``(num_test,)``.
    """

    elpd: float
    se: float
    pointwise: np.ndarray


def leave_future_out(fitted, model, y, num_test: int, *, method: str | None = None, thin: int = 1,
                     **options) -> LeaveFutureOutResult:
    r"""Leave-future-out predictive score of the last ``num_test`` observations.

    Fit the model to ``y[:-num_test]`` first (by :func:`bayesvol.sample` or :func:`bayesvol.fit`) and pass
    the result with the *full* ``y``: the state is filtered through the whole sample with the parameters
    from the training part, and the one-step predictive densities of the test part are scored.

    Parameters
    ----------
    fitted : arviz.InferenceData or MLEResult
        Posterior or estimate from the training part.
    model : bayesvol model
    y : array_like or pandas.Series
        The full sample.
    num_test : int
        Length of the test period at the end of ``y``.
    method, thin, **options :
        As for :func:`add_predictive_log_likelihood`.

    Returns
    -------
    LeaveFutureOutResult

    Notes
    -----
    With posterior draws :math:`\theta^{(s)}`, :math:`s = 1..S`, each term is
    :math:`\log \frac1S \sum_s \hat p(y_t \mid y_{1:t-1}, \theta^{(s)})`; with an MLE it is
    :math:`\log \hat p(y_t \mid y_{1:t-1}, \hat\theta)`. The parameters are not updated inside the test
    period (no refits), which is the usual cheap form of leave-future-out; higher is better.
    """
    data = model.validate_data(y)
    total = int(np.asarray(data.values).shape[0])
    if not isinstance(num_test, int) or not 1 <= num_test < total:
        raise ValueError(f"num_test must be an integer between 1 and {total - 1}, got {num_test!r}")
    method = method or _default_method(model)
    one = _pointwise_fn(model, data.values, method, options)
    if isinstance(fitted, MLEResult):
        terms = np.asarray(one({k: jnp.asarray(v) for k, v in fitted.params.items()}))[-num_test:]
    else:
        params, _ = _draws_as_params(model, _posterior(fitted), slice(None, None, thin))
        flat = np.asarray(jax.lax.map(one, {k: jnp.asarray(v) for k, v in params.items()}, batch_size=16))
        terms = logsumexp(flat[:, -num_test:], axis=0) - np.log(flat.shape[0])
    return LeaveFutureOutResult(elpd=float(terms.sum()), se=float(np.sqrt(num_test) * terms.std(ddof=1)),
                                pointwise=terms)
