r"""Posterior against maximum likelihood, and models against each other on predictive scores.

Statistics and plots come from ArviZ 1.x (arviz-stats, arviz-plots); this module arranges them:

* [`estimates_table`][bayesvol.compare.estimates_table] — posterior mean, sd and HDI (``arviz_stats.summary``) beside
MLE ± SE, one row
  per parameter name;
* [`plot_estimates`][bayesvol.compare.plot_estimates] — a forest plot (``arviz_plots.plot_forest``) of the posterior
HDIs with the MLEs and
  their Wald intervals as further rows of the same plot;
* [`add_predictive_log_likelihood`][bayesvol.compare.add_predictive_log_likelihood] — one-step-ahead predictive
log-likelihoods
  $\log p(y_t \mid y_{1:t-1}, \theta)$ per posterior draw in the ``log_likelihood`` group, so that
  ``arviz_stats.loo`` / ``arviz_stats.compare`` rank latent-state models (particle filter) and
  observation-driven models (exact recursion) on the same footing;
* [`leave_future_out`][bayesvol.compare.leave_future_out] — the log predictive score of the last part of the sample.

Everything works for any [`MLEResult`][bayesvol.MLEResult] (SV by EIS, PF, Bellman or QML, and the GARCH
family) and any posterior whose variable names are the model's parameter names.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import NamedTuple

import arviz_plots
import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp
from scipy.stats import norm

from bayesvol.inference import registry
from bayesvol.inference._idata import MLE_GROUPS
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
SAMPLE_DIMS = ("chain", "draw")


def _as_mle_trees(mle) -> dict[str, xr.DataTree]:
    """Label -> tree of estimates and standard errors ([`MLEResult.to_datatree`][bayesvol.MLEResult.to_datatree]),
however ``mle`` came."""
    if mle is None:
        return {}
    if isinstance(mle, MLEResult | xr.DataTree):
        tree = _mle_tree(mle)
        return {f"MLE ({tree.attrs.get('method', 'mle')})": tree}
    if isinstance(mle, Mapping) and all(isinstance(v, MLEResult | xr.DataTree) for v in mle.values()):
        return {label: _mle_tree(value) for label, value in mle.items()}
    raise TypeError("mle must be an MLEResult (or its to_datatree()) or a dict of label -> MLEResult")


def _mle_tree(value) -> xr.DataTree:
    tree = value.to_datatree() if isinstance(value, MLEResult) else value
    missing = [group for group in MLE_GROUPS if group not in tree.children]
    if missing:
        raise ValueError(f"an MLE tree needs the groups {', '.join(MLE_GROUPS)} (MLEResult.to_datatree()); "
                         f"this one lacks {', '.join(missing)}")
    return tree


def _posterior(idata):
    """The ``posterior`` node of an ArviZ 1.x tree."""
    if isinstance(idata, xr.DataTree):
        if "posterior" not in idata.children:
            raise ValueError("the DataTree has no posterior group")
        return idata["posterior"]
    raise TypeError(f"expected an xarray.DataTree with a posterior group (ArviZ 1.x), got {type(idata).__name__}")


def _check_names(posterior, names):
    for name in names:
        if name not in posterior.data_vars:
            raise ValueError(f"parameter {name!r} is not in the posterior (has {', '.join(posterior.data_vars)})")


def _row_labels(name, shape):
    """``name`` or ``name[i,j]`` per entry, in C order: the labels of `MLEResult.labels`."""
    if not shape:
        return [name]
    return [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(shape)]


def _names(idata, mles, var_names):
    if var_names is not None:
        return list(var_names)
    for tree in mles.values():
        return list(tree["estimate"].data_vars)
    posterior = _posterior(idata)
    return [v for v in posterior.data_vars if set(posterior[v].dims) <= set(SAMPLE_DIMS)]


def estimates_table(idata=None, mle=None, *, var_names=None, hdi_prob: float = 0.94,
                    robust: bool = False) -> pd.DataFrame:
    """Posterior summaries beside maximum-likelihood estimates, one row per parameter.

    Parameters
    ----------
    idata : xarray.DataTree, optional
        With a ``posterior`` group whose variables carry the model's parameter names.
    mle : MLEResult or dict of label -> MLEResult, optional
        One or several MLE fits (e.g. ``{"EIS": res_eis, "PF": res_pf}``), or their trees
        ([`MLEResult.to_datatree`][bayesvol.MLEResult.to_datatree], also as read back from netCDF).
    var_names : list of str, optional
        Parameters to show; by default the MLE model's parameter names.
    hdi_prob : float
        Probability mass of the highest-density interval.
    robust : bool
        Use the sandwich standard errors of the MLEs.

    Returns
    -------
    pandas.DataFrame
        Columns ``mean``, ``sd``, ``hdi_<lo>%``, ``hdi_<hi>%`` (posterior, from ``arviz_stats.summary``) and,
        per MLE, ``<label>`` and ``<label> se``. Matrix parameters take one row per entry, labelled
        ``name[i,j]`` as in [`MLEResult.to_frame`][bayesvol.MLEResult.to_frame].

    Examples
    --------
    >>> import numpy as np, arviz_base
    >>> from bayesvol.compare import estimates_table
    >>> draws = np.random.default_rng(0).normal([[0.9], [0.2]], 0.01, (2, 2, 100)).transpose(1, 0, 2)
    >>> idata = arviz_base.from_dict({"posterior": {"phi": draws[0], "sigma": draws[1]}})
    >>> list(estimates_table(idata, var_names=["phi", "sigma"]).columns)
    ['mean', 'sd', 'hdi_3%', 'hdi_97%']
    """
    if idata is None and mle is None:
        raise ValueError("give a posterior (idata), an MLE result, or both")
    mles = _as_mle_trees(mle)
    names = _names(idata, mles, var_names)
    lo, hi = 100 * (1 - hdi_prob) / 2, 100 * (1 + hdi_prob) / 2
    lo_label, hi_label = f"hdi_{lo:g}%", f"hdi_{hi:g}%"
    frame = pd.DataFrame(index=pd.Index([], name="parameter"))
    if idata is not None:
        posterior = _posterior(idata)
        _check_names(posterior, names)
        stats = arviz_stats.summary(idata, var_names=names, kind="stats", ci_kind="hdi", ci_prob=hdi_prob,
                                    round_to="none")
        # arviz-stats labels entries by coordinate values; the MLE side uses positions, so relabel by position
        # (both are in C order of each variable's own dims).
        stats.index = [label for name in names
                       for label in _row_labels(name, posterior[name].shape[len(SAMPLE_DIMS):])]
        stats.columns = ["mean", "sd", lo_label, hi_label]
        frame = stats
        frame.index.name = "parameter"
    group = "robust_std_error" if robust else "std_error"
    for label, tree in mles.items():
        present = [name for name in names if name in tree["estimate"].data_vars]
        rows = [row for name in present for row in _row_labels(name, tree["estimate"][name].shape)]
        block = pd.DataFrame({
            label: np.concatenate([np.ravel(tree["estimate"][name].values) for name in present]),
            f"{label} se": np.concatenate([np.ravel(tree[group][name].values) for name in present]),
        }, index=rows) if present else pd.DataFrame(columns=[label, f"{label} se"])
        frame = block if frame.empty else frame.join(block, how="outer")
    order = [row for name in names for row in frame.index if row == name or row.startswith(name + "[")]
    return frame.loc[order]


def _like_posterior(dataset: xr.Dataset, posterior) -> xr.Dataset:
    """``dataset`` with each variable on the posterior's dims and coords (an MLE fitted without labels)."""
    if posterior is None:
        return dataset
    out = {}
    for name, var in dataset.data_vars.items():
        target = posterior[name]
        dims = [d for d in target.dims if d not in SAMPLE_DIMS]
        if tuple(var.dims) != tuple(dims) and var.shape == tuple(target.sizes[d] for d in dims):
            var = xr.DataArray(var.values, dims=dims)
        out[name] = var.assign_coords({d: target[d].values for d in var.dims if d in target.coords})
    return xr.Dataset(out)


def plot_estimates(idata=None, mle=None, *, var_names=None, hdi_prob: float = 0.94, robust: bool = False,
                   **kwargs):
    """Forest plot of posterior and maximum-likelihood estimates (``arviz_plots.plot_forest``).

    One row per parameter entry and per source: the posterior mean with its central 50% and ``hdi_prob``
    HDIs, and each MLE with its Wald intervals of the same probabilities (estimate ± z se), in one plot and
    one colour per source.

    Parameters
    ----------
    idata :
        As for [`estimates_table`][bayesvol.compare.estimates_table].
    mle :
        As for [`estimates_table`][bayesvol.compare.estimates_table].
    var_names :
        As for [`estimates_table`][bayesvol.compare.estimates_table].
    hdi_prob :
        As for [`estimates_table`][bayesvol.compare.estimates_table].
    robust :
        As for [`estimates_table`][bayesvol.compare.estimates_table].
    **kwargs
        Passed to ``arviz_plots.plot_forest`` (e.g. ``backend``, ``figure_kwargs``).

    Returns
    -------
    arviz_plots.PlotCollection
        ``.savefig(path)`` writes the figure; ``.viz["twig"][name]`` holds the interval lines, with a ``model``
        dim whose labels are ``"posterior"`` and the MLE labels.
    """
    if idata is None and mle is None:
        raise ValueError("give a posterior (idata), an MLE result, or both")
    mles = _as_mle_trees(mle)
    names = _names(idata, mles, var_names)
    posterior = None
    sources, twig, trunk, point = {}, [], [], []
    if idata is not None:
        posterior = _posterior(idata)
        _check_names(posterior, names)
        sources["posterior"] = idata
        for probability, store in ((hdi_prob, twig), (0.5, trunk)):
            store.append(arviz_stats.hdi(idata, prob=probability, var_names=names).to_dataset())
        point.append(posterior.to_dataset()[names].mean(SAMPLE_DIMS))
    bounds = xr.DataArray(["lower", "upper"], dims="ci_bound", name="ci_bound")
    for label, tree in mles.items():
        estimate = _like_posterior(tree["estimate"].to_dataset()[names], posterior)
        group = "robust_std_error" if robust else "std_error"
        error = _like_posterior(tree[group].to_dataset()[names], posterior)
        for probability, store in ((hdi_prob, twig), (0.5, trunk)):
            z = norm.ppf((1 + probability) / 2)
            store.append(xr.concat([estimate - z * error, estimate + z * error], dim=bounds))
        point.append(estimate)
        # plot_forest lays out rows from a draw-shaped group: one pseudo-draw at the estimate
        sources[label] = xr.DataTree.from_dict({"posterior": estimate.expand_dims(chain=[0], draw=[0])})
    models = xr.DataArray(list(sources), dims="model", name="model")
    stats = {key: xr.concat(values, dim=models, join="outer")
             for key, values in (("twig", twig), ("trunk", trunk), ("point_estimate", point))}
    if len(sources) == 1:
        stats = {key: value.isel(model=0, drop=True) for key, value in stats.items()}
    kwargs.setdefault("backend", "matplotlib")
    with warnings.catch_warnings():
        # arviz-plots aligns the sources' chain and draw coords by xarray's default join, which is changing
        warnings.filterwarnings("ignore", message="In a future version of xarray the default value for join",
                                category=FutureWarning)
        collection = arviz_plots.plot_forest(sources if len(sources) > 1 else next(iter(sources.values())),
                                             var_names=names, combined=True, stats=stats, **kwargs)
    if len(sources) > 1:
        collection.add_legend("model")
    return collection


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
    idata : xarray.DataTree
        Posterior of ``model`` given ``y`` (e.g. from [`bayesvol.sample`][bayesvol.sample]).
    model : bayesvol model
    y : array_like or pandas.Series
        The data the posterior was fitted to.
    method : str, optional
        Likelihood method giving $\log p(y_t \mid y_{1:t-1}, \theta)$: ``"pf"`` (default for
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
    xarray.DataTree
        A copy with ``log_likelihood["y"]`` of dims ``(chain, draw, time)``; its ``attrs`` say that the
        values are one-step-ahead predictive and how they were computed, so ``arviz_stats.loo`` and
        ``arviz_stats.compare`` treat SV and GARCH alike.

    Notes
    -----
    PSIS-LOO on these terms approximates leaving out the *term* $\log p(y_t \mid y_{1:t-1})$, the
    standard way of comparing time-series models by ``arviz_stats.compare``;
    [`leave_future_out`][bayesvol.compare.leave_future_out] scores the last part of the sample as a genuine forecast.
    The particle-filter terms are Monte Carlo estimates; their noise adds to the LOO standard errors (use enough
    particles that the per-draw log-likelihood SD is well below 1).
    """
    posterior = _posterior(idata)
    if not isinstance(thin, int) or thin < 1:
        raise ValueError(f"thin must be a positive integer, got {thin!r}")
    method = method or _default_method(model)
    data = model.validate_data(y)
    params, (num_chains, num_draws) = _draws_as_params(model, posterior, slice(None, None, thin))
    one = _pointwise_fn(model, data.values, method, options)
    flat = jax.lax.map(one, {k: jnp.asarray(v) for k, v in params.items()}, batch_size=batch_size)
    values = np.asarray(flat).reshape(num_chains, num_draws, -1)
    how = (f"the particle filter ({options})" if method == "pf" else f"the {method!r} likelihood ({options})")
    tree = idata.isel(draw=slice(None, None, thin), missing_dims="ignore") if thin > 1 else idata.copy()
    if "observed_data" in tree.children and "time" in tree["observed_data"].coords:
        times = tree["observed_data"]["time"].values
    else:
        times = np.arange(values.shape[-1])
    if times.shape[0] != values.shape[-1]:
        raise ValueError(f"y has {values.shape[-1]} observations but the DataTree has {times.shape[0]}")
    kept = tree["posterior"]
    attrs = dict(kept.attrs) | {"log_likelihood": PREDICTIVE_ATTR.format(how=how)}
    tree["log_likelihood"] = xr.Dataset(
        {"y": (("chain", "draw", "time"), values)},
        coords={"chain": kept["chain"].values, "draw": kept["draw"].values, "time": times}, attrs=attrs)
    return tree


class LeaveFutureOutResult(NamedTuple):
    """Log predictive score of the last ``num_test`` observations.

    Attributes
    ----------
    elpd : float
        $\\sum_t \\log \\hat p(y_t \\mid y_{1:t-1})$ over the test period.
    se : float
        Standard error of ``elpd`` from the spread of the pointwise terms ($\\sqrt{n}\\,$ sd).
    pointwise : numpy.ndarray
        The terms, shape ``(num_test,)``.
    """

    elpd: float
    se: float
    pointwise: np.ndarray


def leave_future_out(fitted, model, y, num_test: int, *, method: str | None = None, thin: int = 1,
                     **options) -> LeaveFutureOutResult:
    r"""Leave-future-out predictive score of the last ``num_test`` observations.

    Fit the model to ``y[:-num_test]`` first (by [`bayesvol.sample`][bayesvol.sample] or [`bayesvol.fit`][bayesvol.fit])
    and pass the result with the *full* ``y``: the state is filtered through the whole sample with the parameters
    from the training part, and the one-step predictive densities of the test part are scored.

    Parameters
    ----------
    fitted : xarray.DataTree or MLEResult
        Posterior or estimate from the training part.
    model : bayesvol model
    y : array_like or pandas.Series
        The full sample.
    num_test : int
        Length of the test period at the end of ``y``.
    method :
        As for [`add_predictive_log_likelihood`][bayesvol.compare.add_predictive_log_likelihood].
    thin :
        As for [`add_predictive_log_likelihood`][bayesvol.compare.add_predictive_log_likelihood].
    **options :
        As for [`add_predictive_log_likelihood`][bayesvol.compare.add_predictive_log_likelihood].

    Returns
    -------
    LeaveFutureOutResult

    Notes
    -----
    With posterior draws $\theta^{(s)}$, $s = 1..S$, each term is
    $\log \frac1S \sum_s \hat p(y_t \mid y_{1:t-1}, \theta^{(s)})$; with an MLE it is
    $\log \hat p(y_t \mid y_{1:t-1}, \hat\theta)$. The parameters are not updated inside the test
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
