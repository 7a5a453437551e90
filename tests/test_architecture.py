"""The shape of the package, read from its source: layers, import cycles, module sizes, protocols, registry.

Layers, bottom to top: the layer-0 helpers (``_config``, ``_validation``, ``_version``,
``datasets``) < ``distributions`` < ``models`` < ``filters`` < ``inference`` < everything at the top
(``compare``, ``forecasting``, ``plots``, ``cli``, ``simulation``, the package root). A module may import
from its own layer and the ones below; every import counts, including those deferred inside functions.
"""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

import bayesvol
from bayesvol.inference import registry
from bayesvol.models import _protocol

PACKAGE = pathlib.Path(bayesvol.__file__).parent
MAX_LINES = 600
RANK = {"_config": 0, "_validation": 0, "_version": 0, "datasets": 0, "distributions": 1,
        "models": 2, "filters": 3, "inference": 4}
TOP = 5


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    return TOP if len(parts) < 2 else RANK.get(parts[1], TOP)


def _imports(modules) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (resolved to the longest existing module name)."""
    edges = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in candidates:
                while target and target not in modules:
                    target = target.rsplit(".", 1)[0] if "." in target else ""
                if target and target != name and target.startswith("bayesvol"):
                    targets.add(target)
        edges[name] = targets
    return edges


MODULES = _modules()
EDGES = _imports(MODULES)


def test_no_module_imports_upward_or_the_package_root():
    bad = []
    for module, targets in sorted(EDGES.items()):
        for target in sorted(targets):
            if target == "bayesvol" and module != "bayesvol":
                bad.append(f"{module} imports the package root")
            elif _layer(target) > _layer(module) and _layer(module) < TOP:
                bad.append(f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})")
    assert not bad, "\n".join(bad)


def _cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), ignoring package ``__init__`` re-exports."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    # A package's __init__ re-exports its children: cycles through __init__ modules alone are not cycles of code.
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    edges = {m: {t for t in ts if t not in packages} for m, ts in EDGES.items() if m not in packages}
    assert _cycles(edges) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_is_over_the_size_limit():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


# The public families (the registry also holds the second step of the two-step DCC estimator, a model of
# standardised residuals used inside that estimator only).
MODEL_FAMILIES = sorted({family for (family, _) in registry.TABLE if family.__name__ in bayesvol.models.__all__},
                        key=lambda cls: cls.__name__)


@pytest.mark.parametrize("family", MODEL_FAMILIES, ids=lambda cls: cls.__name__)
def test_every_registered_family_satisfies_a_protocol(family):
    model = family()
    assert isinstance(model, (_protocol.LatentStateModel, _protocol.ObservationDrivenModel))
    assert isinstance(model, _protocol.ModelDefaults)


@pytest.mark.parametrize("family", MODEL_FAMILIES, ids=lambda cls: cls.__name__)
def test_registry_rows_name_something_to_run(family):
    for (cls, method), row in registry.TABLE.items():
        if cls is not family:
            continue
        if method in registry.SAMPLERS:
            assert row.loglik is None and row.fitter is None
        else:
            assert row.loglik is not None or row.fitter is not None, (cls, method)
            assert row.hessian in ("autodiff", "differences")


def test_registry_lookup_names_the_available_methods():
    with pytest.raises(ValueError, match="available: .*bellman.*eis.*pf.*qml"):
        registry.lookup(bayesvol.models.SV(), "exact")
    assert registry.available(bayesvol.models.GARCH(), "samplers") == ["nuts", "svi"]


def test_an_object_that_is_no_model_is_refused_with_what_it_lacks():
    class NotAModel:
        def initial(self, params):
            return None

    with pytest.raises(TypeError, match="lacks .*transition"):
        _protocol.check_model(NotAModel())
    with pytest.raises(TypeError, match="not a bayesvol model"):
        bayesvol.simulate(NotAModel(), {}, 10)


def test_every_model_module_holds_no_estimator():
    # Models sit below filters and inference; a model file may not reach up into them (layer test) and
    # registers nothing: the registry's rows are the only place a method is attached to a family.
    for name, path in MODULES.items():
        if name.startswith("bayesvol.models"):
            text = path.read_text()
            assert "register_loglik" not in text and "register_fitter" not in text, name


def test_default_hooks_are_written_once():
    # Estimators read optional hooks from the model; the defaults live in _protocol.ModelDefaults only.
    defaults = {name for name in vars(_protocol.ModelDefaults) if not name.startswith("__")}
    assert {"validate_data", "bind_data", "param_transforms", "from_unconstrained", "to_unconstrained",
            "bounded_free_names", "site_dims", "pointwise_loglik_draws", "predictive_draws"} <= defaults
    for name, path in MODULES.items():
        if name.startswith(("bayesvol.inference", "bayesvol.filters")) or name.count(".") == 1:
            assert "hasattr(model" not in path.read_text(), name


def test_simulation_fields_are_uniform():
    sim = bayesvol.simulate(bayesvol.models.SV(), {"mu": -0.5, "phi": 0.9, "sigma": 0.3}, 30, seed=1)
    assert sim._fields[0] == "y" and "variance" in sim._fields
    np.testing.assert_allclose(sim.variance, np.exp(sim.h), rtol=1e-12)


MULTIVARIATE = ("DCC", "DFSV", "WishartSV")


@pytest.mark.parametrize("family", MODEL_FAMILIES, ids=lambda cls: cls.__name__)
def test_simulate_works_for_every_family(family):
    """``bayesvol.simulate`` from each family's own start values: ``y`` first, a variance or covariance path."""
    model = family()
    multivariate = family.__name__ in MULTIVARIATE
    rng = np.random.default_rng(0)
    data = rng.standard_normal((300, 3) if multivariate else 300)
    model = model.bind_data(data)
    start = model.start_values(model.validate_data(data).values)[0]
    sim = bayesvol.simulate(model, start, 40, seed=3)
    assert sim._fields[0] == "y"
    assert sim.y.shape[0] == 40 and np.all(np.isfinite(sim.y))
    if multivariate:
        assert sim.covariance.shape == (40, sim.y.shape[1], sim.y.shape[1])
    else:
        assert sim.variance.shape == (40,) and np.all(sim.variance > 0)
