"""The ``bayesvol`` command line: fit a volatility model to bundled data or a CSV and write the results.

Examples
--------
``bayesvol demo --out demo-output``
    SV fitted by NUTS to the bundled GBP/USD 1981–85 returns.
``bayesvol fit --model sv --data fred_h10 --column DEXUSUK --start 2005-01-01 --method nuts --out out``
    SV on the percent log returns of a bundled price series.
``bayesvol fit --model gjr --dist t --data prices.csv --column close --method exact --out out``
    GJR-GARCH with Student-t errors by maximum likelihood on a user's CSV of prices (first column dates).
``bayesvol fit --model dcc --data fred_h10 --column DEXUSUK DEXJPUS --method two_step --out out``
    DCC on two series.

Which ``--method`` a ``--model`` takes is read from the registry (`bayesvol.inference.registry`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

__all__ = ["main"]

# Sampler settings: (default, the methods that use it). A setting given for another method is an error.
_SAMPLER_SETTINGS = {
    "num_chains": (4, ("nuts", "pmmh")),
    "num_warmup": (1000, ("nuts", "pmmh")),
    "num_samples": (1000, ("nuts", "svi", "pmmh")),
    "num_steps": (20_000, ("svi",)),
    "save": ("compact", ("nuts", "svi", "pmmh")),
}
_MODELS = ("sv", "garch", "gjr", "egarch", "iggarch", "dcc", "dfsv", "wishart")  # the keys of families.FAMILIES


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _add_estimation(p) -> None:
    p.add_argument("--method", default="nuts",
                   help="estimation method: a sampler (nuts, svi, pmmh) or a likelihood for maximum likelihood "
                        "(such as exact, eis, pf, bellman, qml); which ones a model has comes from the "
                        "registry, and a wrong pair is an error naming the valid ones (default nuts)")
    p.add_argument("--num-chains", type=int, help="NUTS/PMMH chains (default 4)")
    p.add_argument("--num-warmup", type=int, help="NUTS/PMMH warm-up iterations per chain (default 1000)")
    p.add_argument("--num-samples", type=int, help="kept draws per chain, or SVI draws (default 1000)")
    p.add_argument("--num-steps", type=int, help="SVI optimisation steps (default 20000)")
    p.add_argument("--num-particles", type=int,
                   help="particles of PMMH or of a particle-filter likelihood (pf); default: the method's")
    p.add_argument("--seed", type=int,
                   help="random seed of the samplers (default 0) and simulated likelihoods (default: the method's)")
    p.add_argument("--save", choices=["compact", "full"],
                   help="samplers: idata.nc with parameters in full and per-date paths summarised (compact, "
                        "default: a few MB) or the whole tree (full)")
    p.add_argument("--out", default="bayesvol-output", help="output folder (created if absent)")
    p.add_argument("--no-progress", action="store_true", help="hide the sampler's progress bar")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesvol", description="Bayesian and frequentist estimation of "
                                                                  "volatility models.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="fit SV to the bundled GBP/USD 1981-85 returns and write results")
    _add_estimation(demo)
    demo.set_defaults(out="demo-output", model="sv", data="gbpusd", column=None, returns=False, start=None,
                      end=None, date_format=None, dayfirst=False)

    fit = sub.add_parser("fit", help="fit a model to bundled data or a CSV file")
    fit.add_argument("--model", choices=_MODELS, default="sv",
                     help="model family: sv, garch, gjr (GJR-GARCH), egarch, iggarch, dcc, dfsv, wishart "
                          "(Wishart SV); the last three take several series")
    model = fit.add_argument_group("model options (each applies to the families named)")
    model.add_argument("--errors", choices=["normal", "t"], help="sv: law of the return errors")
    model.add_argument("--leverage", action="store_true", help="sv: correlated return and volatility shocks")
    model.add_argument("--dist", choices=["normal", "t", "skewt"],
                       help="garch, gjr, egarch, dcc: law of the standardised innovations")
    model.add_argument("--mean", choices=["zero", "constant"], help="garch, gjr, egarch, dcc: mean of the returns")
    model.add_argument("--components", type=int, choices=[1, 2], help="iggarch: variance components")
    model.add_argument("--num-factors", type=int, help="dfsv: number of factors K")
    model.add_argument("--idiosyncratic", choices=["constant", "sv"], help="dfsv: idiosyncratic variances")
    data = fit.add_argument_group("data")
    data.add_argument("--data", required=True, help="bundled data set name (gbpusd, fred_h10) or a CSV path")
    data.add_argument("--column", action="extend", nargs="+",
                      help="series to model: one for a univariate model, two or more for dcc, dfsv, wishart "
                           "(repeat the flag or list them; a multivariate model on a CSV takes every column "
                           "by default)")
    data.add_argument("--returns", action="store_true",
                      help="the CSV columns already hold returns (default: prices, turned into percent log returns)")
    data.add_argument("--start", help="first date to keep (YYYY-MM-DD)")
    data.add_argument("--end", help="last date to keep (YYYY-MM-DD)")
    data.add_argument("--date-format", help="strftime format of the CSV's dates, e.g. %%d/%%m/%%Y (default: inferred)")
    data.add_argument("--dayfirst", action="store_true", help="read ambiguous CSV dates as day/month/year")
    _add_estimation(fit)
    return parser


def _check_settings(args) -> None:
    """Fill in the sampler settings' defaults; a setting given for a method that does not use it is an error."""
    for dest, (default, methods) in _SAMPLER_SETTINGS.items():
        value = getattr(args, dest)
        if value is None:
            setattr(args, dest, default)
        elif args.method not in methods:
            raise ValueError(f"{_flag(dest)} applies to --method {' or '.join(methods)}, not to --method "
                             f"{args.method}; drop it")
        elif dest != "save" and value < (0 if dest == "num_warmup" else 1):
            raise ValueError(f"{_flag(dest)} must be {'non-negative' if dest == 'num_warmup' else 'positive'}, "
                             f"got {value}")
    if args.num_particles is not None and args.num_particles < 1:
        raise ValueError(f"--num-particles must be positive, got {args.num_particles}")
    if args.num_particles is not None and args.method in ("nuts", "svi"):
        raise ValueError(f"--num-particles applies to --method pmmh and particle-filter likelihoods, not to "
                         f"--method {args.method}; drop it")


def _likelihood_options(args, model) -> dict:
    """Options of a maximum-likelihood method that the command line sets: the seed and the particles."""
    import inspect

    from bayesvol.inference import registry

    row = registry.lookup(model, args.method)
    parameters = inspect.signature(row.loglik).parameters if row.loglik is not None else {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    options = {}
    if args.seed is not None:
        if "seed" not in parameters and not takes_any:
            raise ValueError(f"--seed applies to the samplers and simulated likelihoods, not to --method "
                             f"{args.method}; drop it")
        options["seed"] = args.seed
    if args.num_particles is not None:
        if "num_particles" not in parameters and not takes_any:
            raise ValueError(f"--num-particles applies to --method pmmh and particle-filter likelihoods, not to "
                             f"--method {args.method}; drop it")
        options["num_particles"] = args.num_particles
    return options


def _describe_data(returns) -> str:
    values = returns.values
    shape = f"{values.shape[0]} returns" + (f" x {values.shape[1]} series" if values.ndim == 2 else "")
    return f"{shape} ({values.index[0]:%Y-%m-%d} .. {values.index[-1]:%Y-%m-%d})"


def _sample(args, model, returns):
    from bayesvol.inference import sample

    chains = f"{args.num_chains} chain{'s' if args.num_chains > 1 else ''}"
    setting = (f"{args.num_steps} steps, {args.num_samples} draws" if args.method == "svi" else
               f"{chains} x ({args.num_warmup} warm-up + {args.num_samples}) draws")
    print(f"sampling by {args.method} ({setting}) ...", flush=True)
    options = {"num_particles": args.num_particles} if args.num_particles is not None else {}
    return sample(model, returns.values, method=args.method, num_chains=args.num_chains,
                  num_warmup=args.num_warmup, num_samples=args.num_samples, seed=args.seed or 0,
                  num_steps=args.num_steps, posterior_predictive=args.method != "pmmh",
                  progress_bar=not args.no_progress, **options)


def _write_posterior(args, model, idata, returns, out: Path, title: str) -> list[str]:
    import arviz_stats
    import matplotlib.pyplot as plt
    import numpy as np

    import bayesvol.plots as plots
    from bayesvol.cli.output import compact_tree, write_netcdf

    idata.posterior.attrs["data"] = returns.label
    saved = idata if args.save == "full" else compact_tree(idata)
    write_netcdf(saved, out / "idata.nc")
    summary = dict(var_names=list(model.param_names), ci_kind="hdi", ci_prob=0.9)
    # Entries fixed by identification (DFSV's unit loadings) have sd 0: their MCSE is undefined and shown as nan.
    with np.errstate(invalid="ignore", divide="ignore"):
        arviz_stats.summary(idata, round_to="none", **summary).to_csv(out / "summary.csv")
        printed = arviz_stats.summary(idata, **summary).to_string()
    print("\nPosterior summary:")
    print(printed)
    stats = idata["sample_stats"] if "sample_stats" in idata.children else None
    if stats is not None and "diverging" in stats:
        print(f"divergences: {int(stats['diverging'].sum())}")
    files = ["idata.nc", "summary.csv"]
    if "vol" in idata.posterior:
        axes = plots.plot_volatility(idata, title=title)
        np.ravel(axes)[0].figure.savefig(out / "volatility.png", dpi=120, bbox_inches="tight")
        plt.close("all")
        files.append("volatility.png")
    else:
        print(f"no volatility.png: the {args.method} posterior holds the parameters only (no volatility path)")
    if args.method in ("nuts", "pmmh"):
        for name, fn in (("trace.png", plots.plot_trace), ("rank.png", plots.plot_rank)):
            fn(idata).savefig(out / name, dpi=100, bbox_inches="tight")
            plt.close("all")
            files.append(name)
    return files


def _write_mle(args, result, returns, out: Path, title: str) -> list[str]:
    import matplotlib.pyplot as plt
    import numpy as np

    import bayesvol.plots as plots
    from bayesvol.cli import output
    from bayesvol.inference.conditional import conditional_moments
    from bayesvol.inference.results import MLEResult

    text = result.summary()
    (out / "summary.txt").write_text(text + "\n")
    print("\n" + text)
    if not isinstance(result, MLEResult):
        # Engle's two-step DCC estimate: estimates and the conditional sd at them, without joint standard errors.
        result.to_frame().to_csv(out / "estimates.csv")
        output.write_netcdf(output.two_step_tree(result, returns.values.columns), out / "estimates.nc")
        moments = conditional_moments(result.model, result.params, returns.values)
        output.plot_moments(moments, returns.values, title).savefig(out / "volatility.png", dpi=120,
                                                                    bbox_inches="tight")
        plt.close("all")
        return ["summary.txt", "estimates.csv", "estimates.nc", "volatility.png"]
    output.estimates_frame(result).to_csv(out / "estimates.csv", index_label="param")
    output.write_netcdf(result.to_datatree(), out / "estimates.nc")
    axes = plots.plot_volatility(result, title=title)
    np.ravel(axes)[0].figure.savefig(out / "volatility.png", dpi=120, bbox_inches="tight")
    result.plot(title=f"{title}: standardised residuals").savefig(out / "residuals.png", dpi=100,
                                                                   bbox_inches="tight")
    plt.close("all")
    return ["summary.txt", "estimates.csv", "estimates.nc", "volatility.png", "residuals.png"]


def _run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")

    from bayesvol._version import __version__
    from bayesvol.cli import data, families

    model = families.build_model(args.model, args)
    kind = families.check_method(args.model, model, args.method)
    _check_settings(args)
    options = _likelihood_options(args, model) if kind == "likelihood" else {}
    returns = data.load_returns(args, families.FAMILIES[args.model].multivariate, model.supports_missing)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"bayesvol {__version__}: {model.describe()} on {returns.label}, {_describe_data(returns)}, "
          f"method {args.method}")
    for note in returns.notes:
        print(f"data: {note}")
    title = f"{model.describe()} — {returns.label}"
    started = time.perf_counter()
    if kind == "sampler":
        idata = _sample(args, model, returns)
        print(f"sampling finished in {time.perf_counter() - started:.1f} s", flush=True)
        files = _write_posterior(args, model, idata, returns, out, title)
    else:
        from bayesvol.inference import fit

        print(f"maximum likelihood by {args.method} ...", flush=True)
        try:
            result = fit(model, returns.values, method=args.method, **options)
        except TypeError as err:
            if not options:
                raise
            # A likelihood that takes **options and refuses these ones (an exact likelihood has no seed).
            flags = " and ".join(_flag(name) for name in options)
            raise ValueError(f"{flags} applies to the samplers and simulated likelihoods, not to --method "
                             f"{args.method} ({err}); drop it") from None
        print(f"maximum likelihood finished in {time.perf_counter() - started:.1f} s", flush=True)
        files = _write_mle(args, result, returns, out, title)
    print(f"\nwrote {', '.join(files)} to {out}/")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``bayesvol`` command."""
    args = _parser().parse_args(argv)
    previous_format = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    chains = args.num_chains if args.num_chains is not None and args.num_chains > 0 else 4
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={chains}")
    try:
        return _run(args)
    except (ValueError, TypeError, NotImplementedError, OSError, KeyError, FloatingPointError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bayesvol: error: {' '.join(str(message).split())}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":
    sys.exit(main())
