r"""The filter driver: every filter of this package is an ``init`` and a small ``step`` run by `run_filter`.

A filter is written as two pure functions of one time step's inputs,

- ``init(inputs_0) -> (carry, outputs_0)``: the first step, from the initial law of the state (or, where the
  first step is like the others, an initial ``carry`` instead);
- ``step(carry, inputs_t) -> (carry, outputs_t)``: every later step (predict, update, weigh, ...);

and `run_filter` runs ``step`` over the time axis with ``lax.scan``, stacks the per-step outputs and
assembles the filter's result NamedTuple. The outputs are a dict keyed by the result's field names, so the
same names mean the same thing in every filter:

``log_likelihood``
    The total, the sum of ``pointwise_log_likelihood`` (added by the driver).
``pointwise_log_likelihood``
    The terms $\log p(y_t \mid y_{1:t-1})$ (exact or estimated), shape ``(T,)``.
``filtered_mean``, ``filtered_variance`` / ``filtered_covariance``
    Moments of $x_t \mid y_{1:t}$ (elementwise variances, or full covariances of the flattened state).

plus what a filter adds of its own (``ess`` and ``resampled`` of a particle filter, the predicted moments of
a Kalman-type filter, ...). Result types may keep older attribute names readable through `alias`.

Where a filter's step is associative — the carry after step $t$ is
$e_1 \bullet e_2 \bullet \dots \bullet e_t$ for per-step elements $e_t$ and an associative
operator $\bullet$ — ``run_filter(..., combine=...)`` computes all prefixes with
``lax.associative_scan`` (logarithmic depth) instead of the sequential scan. None of the filters here is
written that way (the covariance-form Kalman filter, for one, is not associative as it stands); the option
keeps the driver's contract the same for one that is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["Blocks", "alias", "lagged", "run_filter", "scan_steps"]


class Blocks(NamedTuple):
    """Per-step inputs generated a block of steps at a time inside the scan, e.g. random numbers.

    The steps after the first run as an outer scan over whole blocks of ``length`` steps around an inner scan
    over the steps of a block; ``generate(key, num_steps)`` makes the generated inputs of one block (a pytree
    with leading axis ``num_steps``) in one vectorised call, so they are neither made one small call per step
    nor all stored at once. Full blocks use the keys ``jax.random.split(key, num_blocks)`` in order; the
    remaining steps form one shorter block with ``tail_key``. ``step`` then receives
    ``(inputs_t, generated_t)``.
    """

    length: int
    generate: Callable
    key: jax.Array
    tail_key: jax.Array


def _first(tree):
    return jax.tree.map(lambda v: v[0], tree)


def _rest(tree):
    return jax.tree.map(lambda v: v[1:], tree)


def _prepend(first, rest):
    return jax.tree.map(lambda a, b: jnp.concatenate([jnp.expand_dims(a, 0), b]), first, rest)


def _num_steps(inputs) -> int:
    leaves = jax.tree.leaves(inputs)
    if not leaves:
        raise ValueError("inputs must hold at least one array with a leading time axis")
    return leaves[0].shape[0]


def _scan_blocks(step, carry, inputs, blocks: Blocks):
    def run_block(carry, block_inputs):
        block_key, step_inputs = block_inputs
        length = _num_steps(step_inputs)
        return lax.scan(step, carry, (step_inputs, blocks.generate(block_key, length)))

    num_steps = _num_steps(inputs)
    block = blocks.length
    num_blocks, tail = divmod(num_steps, block)
    outputs = []
    if num_blocks:
        head = jax.tree.map(lambda v: v[: num_blocks * block].reshape((num_blocks, block) + v.shape[1:]), inputs)
        carry, out = lax.scan(run_block, carry, (jax.random.split(blocks.key, num_blocks), head))
        outputs.append(jax.tree.map(lambda v: v.reshape((num_blocks * block,) + v.shape[2:]), out))
    if tail or not num_blocks:
        carry, out = run_block(carry, (blocks.tail_key, jax.tree.map(lambda v: v[num_blocks * block:], inputs)))
        outputs.append(out)
    if len(outputs) == 1:
        return carry, outputs[0]
    return carry, jax.tree.map(lambda *v: jnp.concatenate(v), *outputs)


def scan_steps(step: Callable, inputs, *, init: Callable | None = None, carry: Any = None, reverse: bool = False,
               blocks: Blocks | None = None):
    """Run ``step`` over the leading (time) axis of ``inputs``; the final carry and the stacked outputs.

    Start either from ``init(inputs_0) -> (carry, outputs_0)``, which takes the place of the first step
    (the last one with ``reverse=True``), or from an initial ``carry``, with every step going through
    ``step``. ``blocks`` (forward scans from ``init`` only) generates part of each step's inputs a block of
    steps at a time (see `Blocks`).
    """
    if (init is None) == (carry is None):
        raise ValueError("give exactly one of init and carry")
    if blocks is not None and (reverse or init is None):
        raise ValueError("blocks are for forward scans that start from init")
    if init is None:
        return lax.scan(step, carry, inputs, reverse=reverse)
    if reverse:
        last = jax.tree.map(lambda v: v[-1], inputs)
        carry, final = init(last)
        carry, outputs = lax.scan(step, carry, jax.tree.map(lambda v: v[:-1], inputs), reverse=True)
        return carry, jax.tree.map(lambda a, b: jnp.concatenate([a, jnp.expand_dims(b, 0)]), outputs, final)
    carry, first = init(_first(inputs))
    if blocks is None:
        carry, outputs = lax.scan(step, carry, _rest(inputs))
    else:
        carry, outputs = _scan_blocks(step, carry, _rest(inputs), blocks)
    return carry, _prepend(first, outputs)


def run_filter(result_type: type, init: Callable | None, step: Callable, inputs, *, carry: Any = None,
               combine: Callable | None = None, blocks: Blocks | None = None, finish: Callable | None = None):
    """Run a filter written as ``init`` and ``step`` and assemble its ``result_type``.

    Parameters
    ----------
    result_type : NamedTuple class
        With fields ``log_likelihood``, ``pointwise_log_likelihood`` and those the outputs name.
    init : callable or None
        ``init(inputs_0) -> (carry, outputs_0)``; with ``combine``: ``init(inputs_t) -> element_t``, mapped
        over all steps. ``None`` with ``carry``.
    step : callable
        ``step(carry, inputs_t) -> (carry, outputs_t)``; with ``combine``: ``step(prefix_t, inputs_t) ->
        outputs_t``, reading the outputs off the prefix $e_1 \\bullet \\dots \\bullet e_t$, mapped
        over all steps. Outputs are a dict keyed by field names of ``result_type``.
    inputs : pytree
        Per-step inputs, leading axis time (length ``T``).
    carry : pytree, optional
        Instead of ``init``: the carry before the first step, so that every step, the first included, goes
        through ``step`` (for a filter whose first step is no different from the others).
    combine : callable, optional
        An associative operator on elements: the prefixes are computed with ``lax.associative_scan``.
    blocks : Blocks, optional
        Inputs generated a block of steps at a time (sequential scan only; see `Blocks`).
    finish : callable, optional
        ``finish(carry, outputs) -> fields``: the stacked outputs turned into the result's fields (e.g. to add
        a field computed from the final carry, or drop an output that is no field); by default the outputs.
        An estimator whose total is not computed as a sum of per-step terms (an importance sampler over
        whole paths, whose terms split the log of its average weight) returns ``log_likelihood`` itself.

    Returns
    -------
    result_type
        ``log_likelihood`` is the sum of ``pointwise_log_likelihood`` unless ``finish`` gives it.
    """
    if combine is None:
        carry, outputs = scan_steps(step, inputs, init=init, carry=carry, blocks=blocks)
    else:
        if blocks is not None or carry is not None:
            raise ValueError("blocks and carry are for the sequential scan")
        prefixes = lax.associative_scan(combine, jax.vmap(init)(inputs))
        outputs = jax.vmap(step)(prefixes, inputs)
        carry = jax.tree.map(lambda v: v[-1], prefixes)
    fields = dict(outputs) if finish is None else dict(finish(carry, outputs))
    if "log_likelihood" not in fields:
        fields["log_likelihood"] = jnp.sum(fields["pointwise_log_likelihood"])
    return result_type(**fields)


def lagged(y):
    """``y_{t-1}`` at step ``t``, for a state equation that reads the previous observation; the first
    element is a placeholder (zeros): the first step starts from the initial law and reads no lag."""
    return jnp.concatenate([jnp.zeros_like(y[:1]), y[:-1]])


def alias(field: str, doc: str | None = None) -> property:
    """A read-only attribute that returns ``field`` under an older name (for result NamedTuples)."""

    def get(self):
        return getattr(self, field)

    return property(get, doc=doc or f"Older name of ``{field}`` (read-only).")
