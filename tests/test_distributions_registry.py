"""Shape, jit, vmap and pytree behaviour of bayesvol's distributions, in the manner of NumPyro's own tests."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions.transforms import biject_to

import bayesvol  # noqa: F401  (float64)
from bayesvol.distributions import InverseGaussian, SkewedStudentT, StandardizedStudentT


class Case(NamedTuple):
    name: str
    make: object  # callable building the distribution from `params`
    params: tuple  # parameter arrays, broadcasting to `batch_shape`
    batch_shape: tuple
    test_values: np.ndarray  # points inside the support, broadcastable to batch_shape


CASES = [
    Case("SkewedStudentT-scalar", SkewedStudentT, (6.0, -0.3), (), np.array(0.4)),
    Case(
        "SkewedStudentT-batch",
        SkewedStudentT,
        (np.array([2.5, 5.0, 30.0]), np.array([[-0.9], [0.2]])),
        (2, 3),
        np.array([-1.0, 0.0, 2.0]),
    ),
    Case("StandardizedStudentT-scalar", StandardizedStudentT, (4.0,), (), np.array(-2.0)),
    Case(
        "StandardizedStudentT-batch",
        StandardizedStudentT,
        (np.array([[2.2, 3.0], [9.0, 90.0]]),),
        (2, 2),
        np.array(1.5),
    ),
    Case("InverseGaussian-scalar", InverseGaussian, (2.0, 5.0), (), np.array(0.7)),
    Case(
        "InverseGaussian-batch",
        InverseGaussian,
        (np.array([0.5, 1.0, 9.0]), np.array([[0.1], [40.0]])),
        (2, 3),
        np.array([0.2, 1.0, 30.0]),
    ),
]
IDS = [case.name for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shapes(case):
    law = case.make(*case.params)
    assert law.batch_shape == case.batch_shape
    assert law.event_shape == ()
    draws = law.sample(jax.random.key(0), (4,))
    assert draws.shape == (4,) + case.batch_shape
    assert law.log_prob(draws).shape == (4,) + case.batch_shape
    assert law.log_prob(case.test_values).shape == jnp.broadcast_shapes(case.batch_shape, case.test_values.shape)
    assert jnp.shape(law.mean) == case.batch_shape
    assert jnp.shape(law.variance) == case.batch_shape
    assert law.support(draws).all()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_matches_eager(case):
    eager = case.make(*case.params).log_prob(case.test_values)
    compiled = jax.jit(lambda *p: case.make(*p).log_prob(case.test_values))(*case.params)
    np.testing.assert_allclose(compiled, eager, rtol=1e-13)
    if case.batch_shape:  # sampling under jit compiles the gamma sampler; once per law is enough
        draws_eager = case.make(*case.params).sample(jax.random.key(3), (4,))
        draws_jit = jax.jit(lambda key, *p: case.make(*p).sample(key, (4,)))(jax.random.key(3), *case.params)
        np.testing.assert_allclose(draws_jit, draws_eager, rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_over_parameters(case):
    # Stack the parameters twice along a new leading axis; vmap must reproduce the unbatched result.
    stacked = [jnp.stack([jnp.broadcast_to(p, case.batch_shape)] * 2) for p in case.params]
    batched = jax.vmap(lambda *p: case.make(*p).log_prob(case.test_values))(*stacked)
    expected = case.make(*case.params).log_prob(case.test_values)
    np.testing.assert_allclose(batched, jnp.stack([expected, expected]), rtol=1e-13)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_distribution_is_a_pytree(case):
    law = case.make(*case.params)
    leaves, treedef = jax.tree_util.tree_flatten(law)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    np.testing.assert_allclose(rebuilt.log_prob(case.test_values), law.log_prob(case.test_values))
    through_jit = jax.jit(lambda d: d.log_prob(case.test_values))(law)
    np.testing.assert_allclose(through_jit, law.log_prob(case.test_values), rtol=1e-13)
    returned = jax.jit(lambda *p: case.make(*p))(*case.params)
    assert type(returned) is type(law) and returned.batch_shape == law.batch_shape


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_constraints_map_unconstrained_values_to_valid_parameters(case):
    # Maximum likelihood optimises over biject_to(constraint): any real vector must give a usable law.
    unconstrained = jax.random.normal(jax.random.key(1), (len(case.params),) + case.batch_shape) * 3.0
    params = {
        name: biject_to(constraint)(unconstrained[i])
        for i, (name, constraint) in enumerate(case.make.arg_constraints.items())
    }
    law = case.make(**params, validate_args=True)
    assert np.all(np.isfinite(np.asarray(law.log_prob(case.test_values))))
    support_map = biject_to(law.support)
    assert law.support(support_map(jnp.linspace(-5.0, 5.0, 11))).all()
