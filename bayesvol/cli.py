"""The ``bayesvol`` command line: fit a volatility model to bundled data or a CSV and write the results.

Examples
--------
``bayesvol demo --out demo-output``
    SV fitted by NUTS to the bundled GBP/USD 1981–85 returns.
``bayesvol fit --model sv --data fred_h10 --column DEXUSUK --start 2005-01-01 --method nuts --out out``
    SV on the percent log returns of a bundled price series.
``bayesvol fit --model sv --data prices.csv --column close --method svi --out out``
    SV on a user's CSV of prices (first column dates).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesvol", description="Bayesian estimation of volatility models.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_sampling(p, num_warmup, num_samples, num_chains):
        p.add_argument("--method", choices=["nuts", "svi"], default="nuts", help="inference method")
        p.add_argument("--num-chains", type=int, default=num_chains)
        p.add_argument("--num-warmup", type=int, default=num_warmup)
        p.add_argument("--num-samples", type=int, default=num_samples)
        p.add_argument("--num-steps", type=int, default=20_000, help="SVI optimisation steps")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", default="bayesvol-output", help="output folder (created if absent)")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    demo = sub.add_parser("demo", help="fit SV to the bundled GBP/USD 1981-85 returns and write results")
    add_sampling(demo, 1000, 1000, 4)
    demo.set_defaults(out="demo-output")

    fit = sub.add_parser("fit", help="fit a model to bundled data or a CSV file")
    fit.add_argument("--model", choices=["sv"], default="sv")
    fit.add_argument("--errors", choices=["normal", "t"], default="normal", help="SV error law")
    fit.add_argument("--leverage", action="store_true", help="SV with leverage (normal errors)")
    fit.add_argument("--data", required=True, help="bundled data set name (gbpusd, fred_h10) or a CSV path")
    fit.add_argument("--column", help="column of the data to model")
    fit.add_argument("--returns", action="store_true",
                     help="the CSV column already holds returns (default: prices, turned into percent log returns)")
    fit.add_argument("--start", help="first date to keep (YYYY-MM-DD)")
    fit.add_argument("--end", help="last date to keep (YYYY-MM-DD)")
    add_sampling(fit, 1000, 1000, 4)
    return parser


def _load_returns(args):
    import bayesvol.datasets as datasets

    source = args.data
    if source in datasets.available():
        data = datasets.load(source)
        is_returns = source == "gbpusd"
        if hasattr(data, "columns"):
            if not args.column:
                raise ValueError(f"--column is required for {source!r}; choose one of: {', '.join(data.columns)}")
            if args.column not in data.columns:
                raise ValueError(f"no column {args.column!r} in {source!r}; columns: {', '.join(data.columns)}")
            data = data[args.column]
        label = f"{source}:{args.column}" if args.column else source
    else:
        if not (source.endswith(".csv") or Path(source).exists()):
            raise ValueError(f"--data {source!r} is neither a bundled data set ({', '.join(datasets.available())}) "
                             "nor an existing CSV file")
        if args.column:
            data = datasets.load_csv(source, column=args.column)
        else:
            frame = datasets.load_csv(source)
            if frame.shape[1] != 1:
                raise ValueError(f"{source!r} has several columns; choose one with --column "
                                 f"({', '.join(frame.columns)})")
            data = frame.iloc[:, 0]
        is_returns = args.returns
        label = f"{Path(source).name}:{data.name}"
    data = _date_range(data, args.start, args.end, label)
    if is_returns:
        returns = data.dropna()
    else:
        returns = datasets.log_returns(data)
    return returns.rename("y"), label


def _date_range(data, start, end, label):
    """The rows from ``--start`` to ``--end``, with errors that say why a range is empty."""
    import pandas as pd

    bounds = {}
    for flag, text in (("--start", start), ("--end", end)):
        if text:
            try:
                bounds[flag] = pd.Timestamp(text)
            except (ValueError, TypeError):
                raise ValueError(f"{flag} {text!r} is not a date; write it as YYYY-MM-DD") from None
    first, last = data.index[0], data.index[-1]
    if "--start" in bounds and bounds["--start"] > last:
        raise ValueError(f"--start {start} is after the last date of {label} ({last:%Y-%m-%d}); choose an earlier "
                         f"start (the data run from {first:%Y-%m-%d})")
    if "--end" in bounds and bounds["--end"] < first:
        raise ValueError(f"--end {end} is before the first date of {label} ({first:%Y-%m-%d}); choose a later end "
                         f"(the data run to {last:%Y-%m-%d})")
    if len(bounds) == 2 and bounds["--start"] > bounds["--end"]:
        raise ValueError(f"--start {start} is after --end {end}")
    return data.loc[bounds.get("--start"): bounds.get("--end")] if bounds else data


def _run(args, model, returns, label) -> int:
    import arviz_stats
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import bayesvol.plots as plots
    from bayesvol._version import __version__
    from bayesvol.inference import sample

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"bayesvol {__version__}: {model.describe()} on {label}, {returns.shape[0]} returns "
          f"({returns.index[0]:%Y-%m-%d} .. {returns.index[-1]:%Y-%m-%d}), method {args.method}")
    started = time.perf_counter()
    idata = sample(model, returns, method=args.method, num_chains=args.num_chains,
                   num_warmup=args.num_warmup, num_samples=args.num_samples, seed=args.seed,
                   num_steps=args.num_steps, posterior_predictive=True, progress_bar=not args.no_progress)
    elapsed = time.perf_counter() - started
    idata.posterior.attrs["data"] = label
    idata.to_netcdf(out / "idata.nc")
    names = list(model.param_names)
    summary = dict(var_names=names, ci_kind="hdi", ci_prob=0.9)
    arviz_stats.summary(idata, round_to="none", **summary).to_csv(out / "summary.csv")
    print(f"\nPosterior summary ({elapsed:.1f} s):")
    print(arviz_stats.summary(idata, **summary).to_string())
    if "sample_stats" in idata.children:
        print(f"divergences: {int(idata.sample_stats['diverging'].sum())}")

    ax = plots.plot_volatility(idata, title=f"{model.describe()} — {label}")
    ax.figure.savefig(out / "volatility.png", dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    files = ["idata.nc", "summary.csv", "volatility.png"]
    if args.method == "nuts":
        for name, fn in (("trace.png", plots.plot_trace), ("rank.png", plots.plot_rank)):
            fn(idata).savefig(out / name, dpi=100, bbox_inches="tight")
            plt.close("all")
            files.append(name)
    print(f"\nwrote {', '.join(files)} to {out}/")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``bayesvol`` command."""
    args = _parser().parse_args(argv)
    for name in ("num_chains", "num_warmup", "num_samples", "num_steps"):
        if getattr(args, name) < (0 if name == "num_warmup" else 1):
            print(f"bayesvol: error: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return 2
    previous_format = warnings.formatwarning
    warnings.formatwarning = lambda message, category, *rest: f"warning: {message}\n"
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={max(args.num_chains, 1)}")
    try:
        import bayesvol.datasets as datasets
        from bayesvol.models.sv import SV

        if args.command == "demo":
            returns = datasets.load("gbpusd").rename("y")
            model, label = SV(), "gbpusd (GBP/USD 1981-85, Harvey, Ruiz & Shephard 1994)"
        else:
            returns, label = _load_returns(args)
            model = SV(errors=args.errors, leverage=args.leverage)
        return _run(args, model, returns, label)
    except (ValueError, TypeError, NotImplementedError, OSError, KeyError, FloatingPointError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"bayesvol: error: {message}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":
    sys.exit(main())
