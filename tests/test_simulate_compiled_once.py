"""``bayesvol.simulate`` over many seeds compiles once per model and path length, and compiling changes nothing."""

import functools

import jax
import numpy as np
import pytest

import bayesvol
from bayesvol.models.garch import GARCH
from bayesvol.models.sv import SV

CASES = [
    (GARCH, "update", dict(vol="gjr", dist="t", mean="zero"),
     {"omega": 0.02, "alpha": 0.05, "gamma": 0.05, "beta": 0.9, "nu": 8.0}),
    (SV, "transition", dict(errors="t"), {"mu": -0.5, "phi": 0.95, "sigma": 0.2, "nu": 10.0}),
]


@pytest.mark.parametrize(("family", "method", "options", "params"), CASES, ids=["garch", "sv"])
def test_simulate_traces_once_per_model_and_length(monkeypatch, family, method, options, params):
    traces = []
    original = getattr(family, method)

    @functools.wraps(original)
    def counting(self, *args):
        traces.append(1)  # runs only while JAX traces the path, not when a compiled path runs
        return original(self, *args)

    monkeypatch.setattr(family, method, counting)
    model = family(**options)
    first = bayesvol.simulate(model, params, 37, seed=0)
    assert traces, "the recursion was never traced: the counter does not see it"
    after_first = len(traces)
    paths = [bayesvol.simulate(family(**options), params, 37, seed=seed).y for seed in range(1, 5)]
    assert len(traces) == after_first, "simulate traced again for a new seed or an equal model"
    assert len({p.tobytes() for p in paths + [first.y]}) == 5

    with jax.disable_jit():
        reference = bayesvol.simulate(model, params, 37, seed=0)
    for name, value in first._asdict().items():
        np.testing.assert_allclose(value, getattr(reference, name), rtol=1e-10, atol=1e-12, err_msg=name)
