"""Neural networks as learned parts of an unfolded step.

A solver holds a Flax NNX module (an MLP denoiser, a small CNN proximal
operator) as a :class:`Network`::

    self.prox = Network(MLP, problem.dim, 64, slots=1, lr="prox_lr", doc="MLP 1x64")
    ...
    z = self.prox.at(k)(z)          # in step(): the network iteration k uses

and the network falls under the policy of every learned parameter
(:mod:`du_framework.params`):

* **slots**: the network's weights are stacked along a leading axis of
  ``slots`` copies; iteration ``k`` uses copy ``k mod slots``. ``slots=1``
  (the default) is one network tied across iterations, ``slots=depth`` one
  network per iteration. The engine's slot masks therefore freeze the copies of
  iterations a stage does not train (``incremental``: the networks of not yet
  active iterations; ``incremental-frozen``: all but the newest), while a tied
  network, used by every iteration, trains throughout.
* **learning-rate group**: ``lr`` names the solver option holding the rate of
  every weight of the network (a missing option is refused, as for scalars).
* **initialisation from the run's seed**: the module is built by calling
  ``module_type(*args, **kwargs, rngs=nnx.Rngs(key))`` once per copy. The
  constructor builds it from ``seed`` (for a solver evaluated untrained); every
  training run draws it afresh from its own key (:func:`initialise_networks`),
  so the members of an ensemble over seeds start from different weights.
* **reports**: weights are left out of ``learned_parameters()`` (results and
  plots); :func:`network_summaries` and :func:`parameter_count` describe them
  instead (``prox: MLP 1x64, shared, 609 parameters``). Checkpoints hold every
  weight under its dotted path (``prox.module.layers.0.kernel``).

The module may hold only ``nnx.Param`` variables: running statistics (batch
normalisation) and random streams (dropout) would change outside the engine's
pure step, so they are refused when the network is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["Network", "networks", "initialise_networks", "network_summaries", "parameter_count",
           "check_networks_declared", "params_at", "learned_parts"]

# The stream an initialisation key is folded from: the training instances use other folds of the run's key.
_INIT_FOLD = 0x6E657473  # "nets"


def _copies(module_type, args, kwargs, slots: int, key: jax.Array):
    """``slots`` freshly initialised copies, as ``(graphdef, params stacked along a leading axis)``."""
    keys = jax.random.split(key, slots)
    states, graphdef = [], None
    for copy in range(slots):
        module = module_type(*args, **dict(kwargs), rngs=nnx.Rngs(keys[copy]))
        if not isinstance(module, nnx.Module):
            raise TypeError(f"Network: {module_type.__name__}(...) built {type(module).__name__}, not an nnx.Module")
        graphdef, params, rest = nnx.split(module, nnx.Param, ...)
        others = [".".join(map(str, path)) + f" ({type(variable).__name__})"
                  for path, variable in nnx.to_flat_state(rest)]
        if others:
            raise TypeError(f"Network: {module_type.__name__} holds variables that are not nnx.Param: "
                            f"{', '.join(others)}; a network inside an unfolded step may hold learned weights only "
                            f"(use LayerNorm or GroupNorm instead of BatchNorm, and no Dropout)")
        if not nnx.to_flat_state(params):
            raise TypeError(f"Network: {module_type.__name__} has no nnx.Param to learn")
        states.append(params)
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    return graphdef, stacked


class Network(nnx.Module):
    """A Flax NNX module learned inside a solver's step, tied across iterations or one per slot.

    Args:
        module_type: an ``nnx.Module`` class whose constructor takes ``rngs=`` (every
            Flax layer does); it holds only ``nnx.Param`` variables.
        *args: its constructor's other positional arguments (hashable values:
            sizes, strings, tuples; they are part of the compiled program's identity).
        slots: copies of the network; iteration ``k`` uses copy ``k mod slots``
            (1: shared by every iteration; the solver's depth: one per iteration).
        lr: the solver option holding the learning rate of the network's weights.
        doc: one line naming the architecture in reports (``"MLP 2x64"``; default:
            the class name).
        seed: the seed of the weights the constructor draws (a training run draws
            them again from its own key, :func:`initialise_networks`).
        **kwargs: its constructor's keyword arguments (hashable values, as ``args``).

    Attributes:
        module: the copies, one module whose weights have a leading axis of length ``slots``.

    Raises:
        TypeError: the module holds variables other than ``nnx.Param``, or none; an argument is not hashable.
        ValueError: ``slots`` is not a positive integer, or ``lr`` is empty.
    """

    def __init__(self, module_type: Callable[..., nnx.Module], *args: Any, slots: int = 1, lr: str = "lr",
                 doc: str = "", seed: int = 0, **kwargs: Any):
        if isinstance(slots, bool) or not isinstance(slots, (int, np.integer)) or slots < 1:
            raise ValueError(f"Network: slots must be a positive integer (1 shared, depth per iteration), got {slots!r}")
        if not isinstance(lr, str) or not lr:
            raise ValueError(f"Network: lr must name the solver option holding the learning rate, got {lr!r}")
        try:
            hash((module_type, tuple(args), tuple(sorted(kwargs.items()))))
        except TypeError as error:
            raise TypeError(f"Network: the arguments of {getattr(module_type, '__name__', module_type)} must be "
                            f"hashable (sizes, strings, tuples), being part of the compiled program's identity: "
                            f"{error}; pass a tuple instead of a list") from None
        self.module_type = module_type
        self.args = tuple(args)
        self.kwargs = tuple(sorted(kwargs.items()))
        self.slots = int(slots)
        self.lr = lr
        self.doc = doc or getattr(module_type, "__name__", "network")
        graphdef, stacked = _copies(module_type, self.args, self.kwargs, self.slots, jax.random.key(seed))
        self.module = nnx.merge(graphdef, stacked)
        for _, variable in nnx.to_flat_state(nnx.state(self.module, nnx.Param)):
            variable.set_metadata(lr=lr, doc=f"weights of {self.doc}", report=False)

    def initial_params(self, key: jax.Array) -> dict:
        """Freshly drawn weights from ``key``, as the pure dict ``nnx.to_pure_dict(nnx.state(self.module))`` gives."""
        _, stacked = _copies(self.module_type, self.args, self.kwargs, self.slots, key)
        return nnx.to_pure_dict(stacked)

    def at(self, k: jax.Array | int) -> nnx.Module:
        """The network iteration ``k`` uses (copy ``k mod slots``); ``k`` may be traced."""
        graphdef, params = nnx.split(self.module)
        if self.slots == 1:  # a static index: nothing to gather
            return nnx.merge(graphdef, jax.tree.map(lambda leaf: leaf[0], params))
        return nnx.merge(graphdef, jax.tree.map(lambda leaf: leaf[k % self.slots], params))

    def parameters_per_copy(self) -> int:
        """Learned numbers in one copy of the network."""
        return sum(int(np.prod(leaf.shape[1:])) for leaf in jax.tree.leaves(nnx.state(self.module, nnx.Param)))

    def summary(self) -> str:
        """One line for reports: ``"MLP 2x64, shared by every iteration, 8,577 parameters"``, or for several copies
        ``"MLP 2x64, 5 copies (iteration k uses copy k mod 5), 8,577 parameters each, 42,885 in all"``."""
        per_copy = self.parameters_per_copy()
        if self.slots == 1:
            return f"{self.doc}, shared by every iteration, {per_copy:,} parameters"
        return (f"{self.doc}, {self.slots} copies (iteration k uses copy k mod {self.slots}), "
                f"{per_copy:,} parameters each, {per_copy * self.slots:,} in all")


def networks(module: nnx.Module) -> dict[str, Network]:
    """The :class:`Network` parts of ``module`` by dotted attribute path (``"prox"``, ``"block.denoiser"``)."""
    return {".".join(map(str, path)): node for path, node in nnx.iter_graph(module)
            if isinstance(node, Network) and path}


def initialise_networks(params: dict, solver: nnx.Module, key: jax.Array) -> dict:
    """``params`` (the solver's pure parameter dict) with every network's weights drawn afresh from ``key``.

    The key of the network at path ``p`` is folded from ``key`` by a fixed stream
    and the network's index in path order, so a run's training instances and its
    networks' weights never share random numbers. Everything else is unchanged.
    """
    found = networks(solver)
    if not found:
        return params
    stream = jax.random.fold_in(key, _INIT_FOLD)
    out = jax.tree.map(lambda leaf: leaf, params)  # a fresh container
    for index, (path, network) in enumerate(sorted(found.items())):
        params_at(out, path)["module"] = network.initial_params(jax.random.fold_in(stream, index))
    return out


def params_at(params: dict, path: str) -> dict:
    """The part of a pure parameter dict at a dotted attribute path (``"prox"``, ``"blocks.0.prox"``)."""
    node = params
    for part in path.split("."):
        node = node[int(part) if part.isdigit() and int(part) in node else part]
    return node


def network_summaries(module: nnx.Module) -> dict[str, str]:
    """``{path: summary}`` for every :class:`Network` of ``module`` (see :meth:`Network.summary`)."""
    return {path: network.summary() for path, network in networks(module).items()}


def parameter_count(module: nnx.Module) -> int:
    """Learned numbers of ``module``: the size of every ``nnx.Param``, networks' copies included."""
    return sum(int(np.size(leaf)) for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)))


def learned_parts(solver: nnx.Module) -> list[dict[str, Any]]:
    """What ``solver`` learns, one entry per learned parameter or :class:`Network`, in attribute order.

    A parameter: ``{"name", "kind": "parameter", "slots", "shape", "parameters", "constraint", "lr", "doc"}``;
    a network: ``{"name", "kind": "network", "slots", "parameters", "lr", "summary"}`` (``parameters``
    counts every copy). ``unfold list --options`` prints them.
    """
    from .params import learned_variables

    found = networks(solver)
    parts, seen = [], set()
    for name, variable in learned_variables(solver).items():
        owner = next((path for path in found if name.startswith(path + ".")), None)
        if owner is not None:
            if owner not in seen:
                seen.add(owner)
                network = found[owner]
                parts.append({"name": owner, "kind": "network", "slots": network.slots,
                              "parameters": network.parameters_per_copy() * network.slots, "lr": network.lr,
                              "summary": network.summary()})
            continue
        shape = tuple(int(d) for d in np.shape(variable[...]))
        constraint = getattr(variable, "constraint", None)
        parts.append({"name": name, "kind": "parameter", "slots": shape[0] if shape else 1, "shape": list(shape),
                      "parameters": int(np.prod(shape)), "constraint": constraint.describe() if constraint else "any real",
                      "lr": getattr(variable, "lr", "lr"), "doc": getattr(variable, "doc", "")})
    return parts


def check_networks_declared(solver: nnx.Module) -> None:
    """Refuse a Flax layer held directly by a solver, outside a :class:`Network`.

    Its weights would be read as stacked over iterations along their first axis
    (a kernel's input rows taken for slots), frozen and reported wrongly.

    Raises:
        ConfigError: naming the layer's path and the way to declare it.
    """
    from .errors import ConfigError

    inside = {path for path, node in nnx.iter_graph(solver) if isinstance(node, Network)}
    for path, node in nnx.iter_graph(solver):
        # Flax's layers (flax.nnx.nn: Linear, Conv, LayerNorm, ...), not its containers (nnx.List, nnx.Dict)
        if (isinstance(node, nnx.Module) and type(node).__module__.startswith("flax.nnx.nn.")
                and not any(path[:len(outer)] == outer for outer in inside)):
            where = ".".join(map(str, path))
            raise ConfigError(
                f"solver {getattr(solver, 'name', type(solver).__name__)!r} holds the Flax layer {where!r} "
                f"({type(node).__name__}) outside a du_framework.Network: its weights would be taken for "
                f"per-iteration slots along their first axis. Declare the network with "
                f"Network(ModuleClass, *args, slots=1, lr=...) and call it as self.<name>.at(k)(x)")
