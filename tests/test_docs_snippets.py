"""Every ```python block of the docs runs, page by page, and its results are checked.

The blocks of a page run in order in one namespace, in a temporary working directory, with matplotlib's Agg
backend. A block preceded by ``<!-- skip-test: reason -->`` is not run (used only where the example is
inherently long; the reason is on the page). The samplers run on small settings: ``bayesvol.sample`` is
called with at most one chain, 100 warm-up iterations and 100 draws and without progress bar or convergence
warnings (such short chains do not converge, and the checks below do not rely on them); everything else runs
as written. ``CHECKS`` holds, per page, assertions on what the snippets computed.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

import bayesvol

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
SKIP = re.compile(r"<!--\s*skip-test:\s*\S.*?-->\s*$")
SMALL_SAMPLER = {"num_chains": 1, "num_warmup": 100, "num_samples": 100}


def snippets(page: Path):
    """``(first line, code, skipped)`` of each fenced python block of ``page``."""
    text = page.read_text()
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        yield text[: match.start()].count("\n") + 2, match.group(1), bool(SKIP.search(before))


def _small_sample(sample):
    def small(model, y, method="nuts", **options):
        for name, cap in SMALL_SAMPLER.items():
            options[name] = min(options.get(name, cap), cap)
        options.update(progress_bar=False, warn=False)
        if method == "svi":
            options["num_steps"] = min(options.get("num_steps", 2000), 2000)
        return sample(model, y, method, **options)
    return small


def run_page(page: Path, monkeypatch, tmp_path) -> dict:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bayesvol, "sample", _small_sample(bayesvol.sample))
    namespace = {"__name__": "docs_snippet"}
    ran = 0
    for line, code, skipped in snippets(page):
        if skipped:
            continue
        exec(compile(code, f"{page.relative_to(DOCS.parent)}:{line}", "exec"), namespace)
        ran += 1
    plt.close("all")
    assert ran, f"{page.name}: no block ran"
    return namespace


def _quickstart_prices(directory: Path):
    """The page reads the reader's ``prices.csv`` (dates first, a ``close`` column); these are H.10 GBP/USD rates."""
    close = bayesvol.datasets.load("fred_h10")["DEXUSUK"].loc["2010":"2013"].dropna()
    close.rename("close").rename_axis("date").to_csv(directory / "prices.csv")
    return close


def _demo_output(directory: Path):
    """The page reads ``demo-output/idata.nc``: the compact file of a short SV fit, written as the demo writes it."""
    from bayesvol.cli.output import compact_tree, write_netcdf

    y = bayesvol.datasets.load("gbpusd").iloc[:60]
    idata = bayesvol.sample(bayesvol.models.SV(), y, num_chains=1, num_warmup=30, num_samples=20, seed=0,
                            progress_bar=False, warn=False)
    (directory / "demo-output").mkdir()
    write_netcdf(compact_tree(idata), directory / "demo-output" / "idata.nc")
    return y


SETUP = {"quickstart.md": _quickstart_prices, "cli.md": _demo_output}


def _check_quickstart(ns, close):
    posterior = ns["idata"].posterior
    assert posterior.sizes["draw"] == SMALL_SAMPLER["num_samples"]
    assert 0.8 < float(posterior["phi"].mean()) < 1.0  # the page quotes about 0.97 from long chains
    assert Path("sv_gbpusd.nc").exists()
    expected = 100 * np.diff(np.log(close.to_numpy()))
    np.testing.assert_allclose(ns["returns"].to_numpy(), expected, rtol=1e-12)
    phi_prior = ns["model"].prior_distributions().phi  # the page's ScaledBeta(20, 1.5) on (-1, 1)
    assert float(phi_prior.log_prob(0.97)) > float(phi_prior.log_prob(0.5))
    assert ns["sim"].y.shape == ns["sim"].h.shape == (2000,)
    # leverage: shocks to returns and next log-variance are negatively correlated (rho = -0.4)
    assert np.corrcoef(ns["sim"].y[:-1] / np.exp(ns["sim"].h[:-1] / 2), np.diff(ns["sim"].h))[0, 1] < -0.2


def _check_results(ns, _):
    result = ns["result"]
    assert result.converged
    np.testing.assert_allclose(result.std_resid.to_numpy(),
                               (result.resid / result.conditional_volatility).to_numpy(), rtol=1e-10)
    sigma2 = result.model.filter(result.params, ns["y"].to_numpy())
    np.testing.assert_allclose(result.conditional_volatility.to_numpy(), np.sqrt(sigma2[:-1]), rtol=1e-10)
    assert np.all(np.isfinite(ns["shocks"]))


def _check_filters(ns, _):
    result = ns["res"]
    assert result.converged and abs(result.params["phi"] - 0.975) < 0.05
    # EIS and the particle filter estimate the same likelihood, each with a Monte Carlo error below 1
    assert ns["loglik_pf"].shape == (len(ns["y"]),)
    assert abs(float(ns["loglik_eis"]) - float(np.sum(ns["loglik_pf"]))) < 3.0
    assert np.asarray(ns["loglik_grid"]).shape == (3,) and np.all(np.isfinite(ns["loglik_grid"]))


def _check_input_checks(ns, _):
    assert np.isfinite(float(ns["value"]))
    assert all(np.isfinite(float(g)) for g in ns["grad"].values())


def _check_distributions(ns, _):
    import numpyro
    from numpyro.infer.util import log_density
    z = np.array([-1.0, 0.3, 2.0])
    value, _ = log_density(ns["model"], (z,), {}, {"df": 6.0, "skew": -0.2})
    expected = (ns["dist"].Uniform(2.0, 40.0).log_prob(6.0) + ns["dist"].Uniform(-1.0, 1.0).log_prob(-0.2)
                + ns["SkewedStudentT"](6.0, -0.2).log_prob(z).sum())
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-12)
    assert numpyro is not None


def _check_backtest(ns, _):
    from scipy import integrate, stats
    sd, level = ns["sd"], 0.01
    np.testing.assert_allclose(ns["var_normal"], stats.norm.ppf(1 - level) * sd, rtol=1e-10)
    # ES of the unit-variance t(5) by integrating the density, independently of the closed form
    for i, s in enumerate(sd):
        law = stats.t(5.0, scale=s * np.sqrt(3 / 5))
        q = law.ppf(0.025)
        tail = integrate.quad(lambda x, law=law: x * law.pdf(x), -np.inf, q)[0] / 0.025
        np.testing.assert_allclose(ns["es_t"][i], -tail, rtol=1e-7)
    # empirical 1% quantile of 20 000 draws: standard error sqrt(a(1-a)/n) / phi(z_a) per unit of sd
    se = np.sqrt(level * (1 - level) / 20_000) / stats.norm.pdf(stats.norm.ppf(level)) * sd
    assert np.all(np.abs(ns["var_draws"] - ns["var_normal"]) < 4 * se)
    # CRPS against its definition, integrated numerically
    y = ns["y_test"][:3]
    laws = {"normal": stats.norm(), "t(5)": stats.t(5.0, scale=np.sqrt(3 / 5)), "too wide": stats.norm(scale=2)}
    for name, law in laws.items():
        for t, y_t in enumerate(y):
            below = integrate.quad(lambda x, law=law: law.cdf(x) ** 2, -np.inf, y_t)[0]
            above = integrate.quad(lambda x, law=law: law.sf(x) ** 2, y_t, np.inf)[0]
            np.testing.assert_allclose(ns["losses"][name].iloc[t], below + above, rtol=1e-6)
    assert ns["dm"].statistic < 0 and ns["dm"].p_value < 0.01
    assert "too wide" in ns["mcs"].excluded and "t(5)" in ns["mcs"].included
    if "result" in ns:
        forecasts = ns["result"].forecasts
        assert forecasts.index.min() > ns["y"].index[499]  # out of sample: after the first window
        assert np.all(forecasts["var_0.01"] > 0) and np.all(forecasts["es_0.01"] >= forecasts["var_0.01"])


def _check_compare(ns, _):
    table = ns["estimates_table"](ns["idata"], ns["mles"])
    for name in ("EIS", "QML"):
        for parameter in ("mu", "phi", "sigma"):
            assert np.isclose(table.loc[parameter, name], ns["mles"][name].params[parameter])
    reread = ns["estimates_table"](ns["xr"].load_datatree("posterior.nc"),
                                   {"EIS": ns["xr"].load_datatree("eis.nc")})
    assert np.allclose(reread.loc[:, "EIS"], table.loc[:, "EIS"])


def _check_sv(ns, _):
    posterior = ns["idata"].posterior
    assert "nu" in posterior and posterior["vol"].sizes["time"] == len(ns["y"])
    assert np.all(posterior["vol"] > 0)


def _check_garch(ns, _):
    from arch import arch_model
    result = ns["result"]
    assert result.converged
    reference = arch_model(ns["y"], mean="Constant", vol="GARCH", p=1, o=1, q=1, dist="skewt").fit(disp="off")
    assert abs(result.loglik - reference.loglikelihood) < 0.05  # same likelihood (arch's backcast start)
    estimates = ns["batch"].params
    assert ns["batch"].converged.mean() >= 0.9
    for name, true in result.params.items():  # each truth within the spread of 100 replications' estimates
        low, high = np.quantile(estimates[name], [0.02, 0.98])
        assert low < true < high, name
    variance = ns["fc"].variance
    assert len(variance) == 10 and np.all(np.asarray(variance) > 0)


def _check_egarch(ns, _):
    assert ns["result"].converged
    assert ns["sim"].y.shape == ns["sim"].variance.shape == (1000,) and np.all(ns["sim"].variance > 0)
    assert ns["idata"].posterior["beta"].sizes["draw"] == SMALL_SAMPLER["num_samples"]


def _check_iggarch(ns, _):
    assert ns["result"].converged
    persistence = np.asarray(ns["model"].persistence(ns["result"].params))
    assert np.all((persistence > 0) & (persistence < 1))
    assert len(ns["fc"].variance) == 10


def _check_wishart_sv(ns, _):
    # the three estimators of the same likelihood agree within their Monte Carlo error (a few units here)
    estimates = [float(ns[name]) for name in ("ll_eis", "ll_seis", "ll_pf")]
    assert max(estimates) - min(estimates) < 10.0


def _check_datasets(ns, _):
    gap = [100 * np.log(101 / 100), np.nan, np.nan, 100 * np.log(98.5 / 99)]
    np.testing.assert_allclose(bayesvol.datasets.log_returns(ns["prices"]).to_numpy(), gap, rtol=1e-12)
    assert ns["rates"]["DEXUSEU"].first_valid_index() == np.datetime64("1999-01-05")
    assert ns["rates"]["DEXUSUK"].first_valid_index() == np.datetime64("1971-01-05")


def _check_cli(ns, y):
    tree = ns["tree"]
    assert tree["posterior"]["phi"].dims == ("chain", "draw") and tree["posterior"]["phi"].shape == (1, 20)
    median = tree["posterior_quantiles"]["vol"].sel(quantile=0.5)
    assert median.sizes["time"] == len(y) and bool((median > 0).all())
    assert tree["posterior_paths"]["h"].sizes["draw"] <= 20


def _check_dcc(ns, _):
    assert ns["joint"].converged
    assert ns["joint"].loglik >= ns["two_step"].loglik - 1e-6  # the joint MLE starts from the two-step one
    a, b = ns["joint"].params["dcc_a"], ns["joint"].params["dcc_b"]
    assert a >= 0 and b >= 0 and a + b < 1
    assert "dcc_a" in ns["idata"].posterior


def _check_dfsv(ns, _):
    result, states = ns["result"], ns["states"]
    assert result.converged
    assert states.f_filtered.shape[0] == states.h_filtered.shape[0] == len(ns["y"])
    np.testing.assert_allclose(states.pointwise_log_likelihood.sum(), result.loglik, rtol=1e-6)


CHECKS = {
    "quickstart.md": _check_quickstart,
    "datasets.md": _check_datasets,
    "results.md": _check_results,
    "filters.md": _check_filters,
    "input_checks.md": _check_input_checks,
    "distributions.md": _check_distributions,
    "backtest.md": _check_backtest,
    "compare.md": _check_compare,
    "sv.md": _check_sv,
    "garch.md": _check_garch,
    "egarch.md": _check_egarch,
    "iggarch.md": _check_iggarch,
    "wishart_sv.md": _check_wishart_sv,
    "cli.md": _check_cli,
    "dcc.md": _check_dcc,
    "dfsv.md": _check_dfsv,
}

PAGES = sorted(p for p in [*DOCS.glob("*.md"), *DOCS.glob("models/*.md")] if BLOCK.search(p.read_text()))
# Pages whose snippets take more than about 15 s (fitting on the full data sets, NUTS, compilation of several
# filters); the others run in the quick suite.
SLOW_PAGES = {"quickstart.md", "results.md", "filters.md", "compare.md", "backtest.md", "sv.md", "garch.md",
              "egarch.md", "wishart_sv.md", "dcc.md", "cli.md"}


def test_every_page_with_snippets_has_checks():
    assert {p.name for p in PAGES} == set(CHECKS)


def test_every_skip_marker_gives_a_reason_and_precedes_a_block():
    for page in [*DOCS.glob("*.md"), *DOCS.glob("models/*.md")]:
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.startswith("<!--") and "skip-test" in line:
                assert SKIP.search(line), f"{page.name}:{number + 1}: write <!-- skip-test: reason -->"
                assert lines[number + 1] == "```python", f"{page.name}:{number + 1}: no python block follows"


@pytest.mark.parametrize("page", [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.name in SLOW_PAGES
                                               else []) for p in PAGES])
def test_docs_page_snippets(page, monkeypatch, tmp_path):
    given = SETUP[page.name](tmp_path) if page.name in SETUP else None
    namespace = run_page(page, monkeypatch, tmp_path)
    CHECKS[page.name](namespace, given)
