"""The unrolled iteration: a fixed-length ``lax.scan`` over the depth, with optional remat.

The active depth may be a traced value: iterations past it are skipped with
``lax.cond``, so a stage change never retraces. ``step`` is checked once, at
trace time, to return a state of exactly the structure, shapes and dtypes it
was given; a solver that breaks this gets a :class:`SolverContractError` naming
it and its plugin instead of a JAX traceback.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..errors import SolverContractError
from ..interfaces import Problem, UnfoldedSolver
from ..params import Learned, iteration_slices
from ..registry import describe_solver

__all__ = ["unroll", "remat_levels", "unrolled_iterations", "split_solver"]


def split_solver(solver: UnfoldedSolver):
    """``(merge, params, rest)``: a pure rebuild function and the solver's arrays.

    ``params`` is a plain nested dict of the raw ``nnx.Param`` values; ``merge(params,
    rest)`` returns an equivalent module and is safe to call inside ``jax.jit``.
    """
    graphdef, param_state, rest = nnx.split(solver, nnx.Param, ...)
    params = nnx.to_pure_dict(param_state)

    def merge(params, rest):
        state = jax.tree.map(lambda leaf: leaf, param_state)  # a fresh container
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(graphdef, state, rest)

    return merge, params, rest


def unrolled_iterations(unroll: bool | int, length: int) -> int:
    """Iterations traced per body of a loop of ``length`` iterations for an ``unroll`` setting (``lax.scan``'s
    ``unroll``): ``True`` all of them (no loop is left), ``False`` one, ``k`` at most ``k``."""
    if isinstance(unroll, (bool, np.bool_)):
        return max(length, 1) if unroll else 1
    if not isinstance(unroll, (int, np.integer)) or unroll < 1:
        raise ValueError(f"unroll must be true, false or a number of iterations >= 1, got {unroll!r}")
    return max(1, min(int(unroll), length))


def remat_levels(remat: bool | int) -> int:
    """Checkpoint levels for a ``remat`` setting: False/0 none, True 2 (sqrt), k >= 1 k levels."""
    if isinstance(remat, (bool, np.bool_)):
        return 2 if remat else 0
    if not isinstance(remat, (int, np.integer)) or remat < 0:
        raise ValueError(f"remat must be true, false or a number of levels >= 0, got {remat!r}")
    return int(remat)


_LAYOUT_ONLY = frozenset({"transpose", "broadcast_in_dim", "reshape", "squeeze", "expand_dims", "copy", "copy_p",
                          "convert_element_type", "slice", "dynamic_slice"})


def _saved_unless_layout(primitive, *_, **__) -> bool:
    """Checkpoint policy of a skippable iteration: keep for the backward pass every value the step
    computes but the outputs of layout and indexing operations (a transpose of a constant operator, or
    iteration k's slice of a stacked learned matrix, kept once per iteration is what the policy is there
    to avoid; they are recomputed, at no arithmetic cost)."""
    return primitive.name not in _LAYOUT_ONLY


def _leaves(tree: Any) -> dict[str, str]:
    """``{path: "dtype[shape]"}`` for every leaf of ``tree`` (``state.x: float32[100,8]``)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"state" + jax.tree_util.keystr(path): f"{jnp.result_type(leaf)}{list(jnp.shape(leaf))}"
            for path, leaf in flat}


def _contract_breach(before: Any, after: Any) -> str | None:
    old, new = _leaves(before), _leaves(after)
    if jax.tree.structure(before) != jax.tree.structure(after) and set(old) == set(new):
        return f"the state's type changed from {type(before).__name__} to {type(after).__name__}"
    changes = [f"{path}: {old.get(path, 'absent')} -> {new.get(path, 'absent')}"
               for path in sorted(set(old) | set(new)) if old.get(path) != new.get(path)]
    return "; ".join(changes) or None


def _checked_step(solver: UnfoldedSolver, problem: Problem, context: Any):
    checked = []

    def step(state, k):
        new = solver.step(problem, context, state, k)
        if not checked:  # trace time only: shapes are static
            breach = _contract_breach(state, new)
            if breach:
                raise SolverContractError(
                    f"solver {describe_solver(type(solver), load=False)}: step() must return a state of the same structure, "
                    f"shapes and dtypes as init_state(); {breach}")
            checked.append(True)
        return new

    return step


def _slotted(solver: UnfoldedSolver) -> list[nnx.Variable]:
    """The solver's :func:`~du_framework.params.learned` parameters with more than one slot (their leading
    axis), which :func:`~du_framework.params.per_iteration` indexes. Other variables (a network's weights,
    a plain ``nnx.Param``) are left to be indexed whole, as before."""
    found = []
    for _, node in nnx.iter_graph(solver):
        if isinstance(node, Learned) and jnp.ndim(node[...]) >= 1 and node[...].shape[0] > 1:
            found.append(node)
    return found


def _slices_of(variables: list[nnx.Variable], iterations: np.ndarray | jax.Array, depth: int) -> list[jax.Array]:
    """Slot ``k mod P`` of each variable for every ``k`` of ``iterations`` (any shape; those past the depth,
    skipped, take the last iteration's): stacked with ``iterations``' shape in front."""
    out = []
    for variable in variables:
        value = variable[...]
        slots = value.shape[0]
        if isinstance(iterations, np.ndarray):
            index = np.minimum(iterations, depth - 1) % slots
            flat = index.reshape(-1)
            if flat.size == slots and np.array_equal(flat, np.arange(slots)):
                taken = value  # every slot once, in order: the parameter itself
            else:
                taken = value[flat]
        else:
            flat = (jnp.minimum(iterations, depth - 1) % slots).reshape(-1)
            taken = jnp.take(value, flat, axis=0)
        out.append(taken.reshape(iterations.shape + value.shape[1:]))
    return out


def _sliced_step(step, variables: list[nnx.Variable]):
    """``step(state, k, slices)``: the checked step traced with each variable's slot for ``k`` given
    (:func:`~du_framework.params.iteration_slices`)."""
    if not variables:
        return lambda state, k, slices: step(state, k)

    def sliced(state, k, slices):
        with iteration_slices(k, {id(variable): piece for variable, piece in zip(variables, slices)}):
            return step(state, k)

    return sliced


def unroll(
    solver: UnfoldedSolver,
    problem: Problem,
    instance: Any,
    active_depth: jax.Array | int | None = None,
    *,
    record: Callable[[jax.Array], Any] | None = None,
    remat: bool | int = False,
    truncate: int | None = None,
    implicit: bool = False,
    unroll: bool | int = 1,
):
    """Run the solver's iterations on a batch; return ``(x_final, recorded)``.

    Args:
        active_depth: iterations actually applied (traced or static); ``None``
            applies all ``solver.depth``. Later iterations leave the state alone.
        record: if given, called on the estimate after every iteration; its
            outputs (any pytree) are stacked along a new leading axis of length ``depth``.
        remat: rematerialise in the backward pass with nested
            ``jax.checkpoint``: ``True`` (2 levels) checkpoints blocks of about
            ``sqrt(depth)`` iterations and each iteration, storing about
            ``2 sqrt(depth)`` states instead of ``depth`` for one more forward
            pass; an integer ``k`` uses ``k`` levels of blocks of about
            ``depth^(1/k)`` (about ``k depth^(1/k)`` states, ``k - 1`` more
            forward passes; 1 checkpoints single iterations only).
        truncate: backpropagate through the last ``truncate`` active iterations only
            (truncated backpropagation): the iterations before them run with the
            solver's parameters and context cut from the gradient, in a scan of their
            own that stores nothing for the backward pass, so memory grows with
            ``truncate``, not the depth. The values computed are those of the full unroll.

        implicit: differentiate the fixed point the iterations approach instead of the
            iterations (deep-equilibrium style; for a solver whose :meth:`has_fixed_point`):
            the forward iterations store nothing, and the backward pass solves the adjoint
            equation ``u = g + J^T u`` (``J`` the step's Jacobian in the state at the final
            state) by as many fixed-point iterations as the solver's depth, then takes
            ``u``'s pull-back to the parameters. Memory does not grow with the depth; the
            gradient is that of the fixed point, which the final state approximates.
            The context (:meth:`prepare`) is cut from the gradient. No ``record``.
        unroll: iterations traced per body of the loop over the depth (``lax.scan``'s ``unroll``; with
            ``remat``, of the innermost loop, over the iterations of a block; with ``truncate``, of both
            loops): 1 is the smallest program; ``True`` (all of them) leaves no loop. The values are
            those of any other setting, to rounding.

    Raises:
        SolverContractError: ``step`` changed the state's structure, shape or dtype.
    """
    if implicit:
        if truncate is not None or remat_levels(remat) or record is not None:
            raise ValueError("implicit differentiation takes the final state alone: no truncate, remat or record")
        return _implicit(solver, problem, instance, active_depth, unroll), None
    if truncate is not None:
        if remat_levels(remat):
            raise ValueError("truncate and remat do not combine: a truncated unroll stores only its last iterations")
        return _truncated(solver, problem, instance, active_depth, record, int(truncate), unroll)
    context = solver.prepare(problem, instance)
    state0 = solver.init_state(problem, context)
    step = _checked_step(solver, problem, context)
    depth = solver.depth
    # With `levels` levels of nested checkpointing: blocks of b ~ depth^(1/levels)
    # iterations; the backward pass keeps the state at each block boundary of the
    # outer level, recomputes one block at a time keeping only that block's
    # boundaries, and so on down to single iterations.
    levels = remat_levels(remat)
    block = depth
    if levels:
        block = max(1, math.ceil(depth ** (1.0 / levels)))
        while block ** levels < depth:
            block += 1
        while block > 1 and (block - 1) ** levels >= depth:
            block -= 1
    shape = (block,) * max(levels, 1)
    slots = math.prod(shape)
    limit = depth if active_depth is None else jnp.minimum(active_depth, depth)

    skipping = not (active_depth is None and slots == depth)
    # Each iteration gets its slot of every per-iteration parameter as a scan input (see iteration_slices).
    variables = _slotted(solver)
    sliced_step = _sliced_step(step, variables)
    ks = np.arange(slots, dtype=np.int32).reshape(shape)
    slices = _slices_of(variables, ks, depth)

    def advance(state, k, slices):
        if not skipping:  # every iteration applies: no cond
            return sliced_step(state, k, slices)
        return jax.lax.cond(k < limit, lambda s: sliced_step(s, k, slices), lambda s: s, state)

    if levels:
        advance = jax.checkpoint(advance)
    elif skipping:
        # Differentiated, a lax.cond returns from both branches every residual of the step, the skip's
        # as zeros, and the scan stacks them: the operator and its transpose, constant over the
        # iterations, were copied out once per iteration (16 copies of A at depth 16, written even
        # by the skipped ones). Under this policy the step keeps every value it computes except
        # layout-only ones, and reads the constants it closes over from the scan's own constants.
        advance = jax.checkpoint(advance, policy=_saved_unless_layout)

    def inner(state, xs):
        state = advance(state, *xs)
        return state, (record(solver.estimate(state)) if record is not None else None)

    def nest(level):
        if level <= 1:
            return lambda state, xs: jax.lax.scan(inner, state, xs, unroll=unrolled_iterations(unroll, shape[-1]))
        return lambda state, xs: jax.lax.scan(jax.checkpoint(nest(level - 1)), state, xs)

    state, recorded = nest(levels)(state0, (jnp.asarray(ks), slices))
    if record is not None:
        recorded = jax.tree.map(lambda r: r.reshape((slots,) + r.shape[len(shape):])[:depth], recorded)
    return solver.estimate(state), recorded


def _cut(tree: Any) -> Any:
    """``tree`` with every array leaf cut from the gradient (host numbers left as they are)."""
    return jax.tree.map(lambda leaf: jax.lax.stop_gradient(leaf) if isinstance(leaf, jax.Array) else leaf, tree)


def _truncated(solver: UnfoldedSolver, problem: Problem, instance: Any, active_depth, record, truncate: int,
               unroll: bool | int = 1):
    """:func:`unroll` backpropagating through the last ``truncate`` active iterations: iterations
    ``0 .. start-1`` (``start = max(limit - truncate, 0)``) with everything cut from the gradient, then
    ``truncate`` iterations from ``start`` that are differentiated."""
    depth = solver.depth
    if not 1 <= truncate <= depth:
        raise ValueError(f"truncate = {truncate}: backpropagate through 1..{depth} (the depth) iterations")
    merge, params, rest = split_solver(solver)
    frozen = merge(_cut(params), rest)
    context = solver.prepare(problem, instance)
    limit = depth if active_depth is None else jnp.minimum(active_depth, depth)
    start = jnp.maximum(limit - truncate, 0)
    frozen_step = _checked_step(frozen, problem, _cut(context))
    step = _checked_step(solver, problem, context)

    def scan(step, state, ks, until, variables=()):
        sliced_step = _sliced_step(step, list(variables))

        def advance(state, k, slices):
            return jax.lax.cond(k < until, lambda s: sliced_step(s, k, slices), lambda s: s, state)

        advance = jax.checkpoint(advance, policy=_saved_unless_layout)  # see unroll: no constant kept per iteration

        def inner(state, xs):
            state = advance(state, *xs)
            return state, (record(solver.estimate(state)) if record is not None else None)
        return jax.lax.scan(inner, state, (ks, _slices_of(list(variables), ks, depth)),
                            unroll=unrolled_iterations(unroll, len(ks)))

    early, early_records = scan(frozen_step, _cut(solver.init_state(problem, context)),
                                jnp.arange(depth, dtype=jnp.int32), start)
    # The differentiated iterations take their slots as scan inputs (see unroll).
    state, late_records = scan(step, _cut(early), start + jnp.arange(truncate, dtype=jnp.int32), limit,
                               _slotted(solver))
    if record is None:
        return solver.estimate(state), None
    final_record = record(solver.estimate(state))
    iterations = jnp.arange(depth)

    def combine(early_leaf, late_leaf, final_leaf):  # iteration t's record; past the active depth the final one
        placed = jax.lax.dynamic_update_slice_in_dim(early_leaf, late_leaf.astype(early_leaf.dtype), start, axis=0)
        past = (iterations >= limit).reshape((depth,) + (1,) * (placed.ndim - 1))
        return jnp.where(past, jnp.broadcast_to(final_leaf, placed.shape), placed)

    return solver.estimate(state), jax.tree.map(combine, early_records, late_records, final_record)


def _implicit(solver: UnfoldedSolver, problem: Problem, instance: Any, active_depth, unroll: bool | int = 1):
    """:func:`unroll`'s final estimate, differentiated at the fixed point of the solver's step."""
    merge, params, rest = split_solver(solver)
    context = _cut(solver.prepare(problem, instance))
    frozen = merge(_cut(params), rest)
    step = _checked_step(frozen, problem, context)
    limit = solver.depth if active_depth is None else jnp.minimum(active_depth, solver.depth)

    def inner(state, k):
        return jax.lax.cond(k < limit, lambda s: step(s, k), lambda s: s, state), None

    final, _ = jax.lax.scan(inner, _cut(solver.init_state(problem, context)),
                            jnp.arange(solver.depth, dtype=jnp.int32), unroll=unrolled_iterations(unroll, solver.depth))
    return solver.estimate(_at_fixed_point(_Mapping(merge), solver.depth, params, (problem, context, rest), final))


class _Mapping:
    """``T(params, aux, state)``: one iteration of the solver rebuilt from ``params``, the same at every ``k``
    (everything traced comes in as an argument, so that the custom VJP closes over nothing traced)."""

    def __init__(self, merge):
        self.merge = merge

    def __call__(self, params, aux, state):
        problem, context, rest = aux
        return self.merge(params, rest).step(problem, context, state, jnp.zeros((), jnp.int32))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _at_fixed_point(mapping, iterations: int, params, aux, state):
    """``state`` (a fixed point of ``mapping(params, aux, .)``), with the implicit function theorem's gradient."""
    return state


def _at_fixed_point_forward(mapping, iterations, params, aux, state):
    return state, (params, aux, state)


def _at_fixed_point_backward(mapping, iterations, residuals, cotangent):
    params, aux, state = residuals
    _, pull_state = jax.vjp(lambda s: mapping(params, aux, s), state)

    def adjoint(u, _):  # u <- g + J^T u, converging to (I - J^T)^{-1} g where the step contracts
        (pulled,) = pull_state(u)
        return jax.tree.map(jnp.add, cotangent, pulled), None

    u, _ = jax.lax.scan(adjoint, cotangent, None, length=iterations)
    _, pull_params = jax.vjp(lambda p: mapping(p, aux, state), params)
    (gradient,) = pull_params(u)
    return gradient, None, jax.tree.map(jnp.zeros_like, state)


_at_fixed_point.defvjp(_at_fixed_point_forward, _at_fixed_point_backward)
