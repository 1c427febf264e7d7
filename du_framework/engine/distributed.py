"""Many processes and machines: one run trained by several JAX processes (``jax.distributed``).

There is no distribution layer of our own. :func:`initialize` starts JAX's
multi-controller runtime (a coordinator and every process connecting to it);
afterwards ``jax.devices()`` lists the devices of every process, the training
program's one-axis mesh (``train.devices = 0``) spans them all, every process
runs the same program on the same replicated parameters, optimiser state and
PRNG key, draws the same instances inside the compiled program and unrolls its
share of the batch, and XLA sums the gradients across processes (gloo on CPU,
NCCL on GPU). Every process ends with the same learned parameters and loss
history as plain host arrays.

Environment variables read by :func:`initialize_from_environment` (the CLI calls it
for ``unfold train``, ``compare`` and ``tune``):

* ``DU_NUM_PROCESSES``: the number of processes (at least 2 to start anything);
* ``DU_PROCESS_ID``: this process's id, ``0 .. DU_NUM_PROCESSES - 1``;
* ``DU_COORDINATOR_ADDRESS``: ``host:port`` of process 0's coordinator (default
  ``localhost:12321``, which suits processes of one machine);
* ``DU_DISTRIBUTED=auto``: let JAX detect the cluster instead (SLURM's ``srun``,
  Open MPI's ``mpirun``, Kubernetes, Cloud TPU); ``DU_DISTRIBUTED=off`` disables all of this;
* ``DU_DISTRIBUTED_TIMEOUT``: seconds to wait for every process to connect (default 300).

Process 0 (:func:`is_main_process`) is the one that writes files; see docs/performance.md,
"Many processes and machines".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from ..errors import ConfigError

__all__ = ["initialize", "initialize_from_environment", "is_initialized", "process_index", "process_count",
           "is_main_process", "shutdown", "replicate", "host_local", "DEFAULT_COORDINATOR"]

DEFAULT_COORDINATOR = "localhost:12321"

_STARTED = False


def is_initialized() -> bool:
    """Whether :func:`initialize` (or ``jax.distributed.initialize``) started the multi-process runtime."""
    return _STARTED or _jax_distributed_started()


def _jax_distributed_started() -> bool:
    try:
        from jax._src import distributed as _state  # the only place JAX records it

        return _state.global_state.client is not None
    except (ImportError, AttributeError):  # pragma: no cover - a JAX without that record
        return False


def _use_gloo_on_cpu() -> None:
    """CPU collectives across processes through gloo (the only implementation without MPI)."""
    try:
        current = jax.config.jax_cpu_collectives_implementation
    except AttributeError:  # pragma: no cover - a JAX without the option
        return
    if current in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout: int = 300, auto: bool = False) -> None:
    """Start JAX's multi-process runtime; call it in every process before anything else uses JAX.

    Args:
        coordinator_address: ``host:port`` where process 0 serves the coordinator
            (every process gives the same address).
        num_processes: how many processes take part.
        process_id: this process's id, ``0 .. num_processes - 1``.
        timeout: seconds to wait for every process to connect.
        auto: leave all three to JAX's cluster detection (SLURM, Open MPI, Kubernetes, Cloud TPU).

    On CPU, collectives go through gloo. A second call is a no-op.

    Raises:
        ConfigError: missing or inconsistent arguments, JAX already in use in this
            process, or the processes did not all connect within ``timeout``.
    """
    global _STARTED
    if is_initialized():
        return
    if not auto:
        missing = [name for name, value in (("coordinator_address", coordinator_address),
                                            ("num_processes", num_processes), ("process_id", process_id))
                   if value is None]
        if missing:
            raise ConfigError(f"distributed training needs {', '.join(missing)} (or auto=True on a cluster JAX "
                              f"detects)")
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ConfigError(f"process id {process_id} is not in 0..{num_processes - 1} "
                              f"(of {num_processes} processes)")
    _use_gloo_on_cpu()
    try:
        if auto:
            jax.distributed.initialize(initialization_timeout=timeout)
        else:
            jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                       initialization_timeout=timeout)
    except RuntimeError as error:
        text = " ".join(str(error).split())
        if "before any JAX" in text or "already" in text:
            raise ConfigError(f"jax.distributed could not start: {text[:300]}; initialise it before anything "
                              f"else uses JAX in this process") from None
        raise ConfigError(f"jax.distributed could not start ({text[:300]}): check that every process runs, "
                          f"with the same coordinator address and number of processes") from None
    except ValueError as error:  # auto without a detectable cluster, or JAX's own argument checks
        raise ConfigError(f"jax.distributed could not start: {' '.join(str(error).split())[:300]}") from None
    _STARTED = True


def _int_variable(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not an integer") from None


def initialize_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """:func:`initialize` from ``DU_*`` environment variables (see the module docs); True if it started.

    Nothing is started (False) without ``DU_NUM_PROCESSES`` above 1 or ``DU_DISTRIBUTED=auto``.

    Raises:
        ConfigError: a variable is malformed or missing (``DU_PROCESS_ID``), or the runtime did not start.
    """
    environ = os.environ if environ is None else environ
    mode = environ.get("DU_DISTRIBUTED", "").strip().lower()
    if mode in ("off", "0", "false", "no"):
        return False
    if mode not in ("", "auto", "on"):
        raise ConfigError(f"DU_DISTRIBUTED={mode!r}: use auto (let JAX detect the cluster) or off")
    timeout = _int_variable(environ, "DU_DISTRIBUTED_TIMEOUT") or 300
    if mode in ("auto", "on") and "DU_NUM_PROCESSES" not in environ:
        initialize(timeout=timeout, auto=True)
        return True
    processes = _int_variable(environ, "DU_NUM_PROCESSES")
    if processes is None or processes == 1:
        return False
    if processes < 1:
        raise ConfigError(f"DU_NUM_PROCESSES={processes}: use the number of processes (2 or more)")
    process_id = _int_variable(environ, "DU_PROCESS_ID")
    if process_id is None:
        raise ConfigError(f"DU_NUM_PROCESSES={processes} but DU_PROCESS_ID is not set: give every process its "
                          f"id, 0..{processes - 1}")
    if not 0 <= process_id < processes:
        raise ConfigError(f"DU_PROCESS_ID={process_id} is not in 0..{processes - 1} (DU_NUM_PROCESSES={processes})")
    address = environ.get("DU_COORDINATOR_ADDRESS", "").strip() or DEFAULT_COORDINATOR
    initialize(address, processes, process_id, timeout=timeout)
    return True


def process_index() -> int:
    """This process's index (0 without :func:`initialize`)."""
    return jax.process_index()


def process_count() -> int:
    """How many processes train together (1 without :func:`initialize`)."""
    return jax.process_count()


def is_main_process() -> bool:
    """Whether this is process 0, the one that writes run folders and prints results."""
    return jax.process_index() == 0


def shutdown() -> None:
    """Leave the multi-process runtime (waits for the other processes); a no-op when none was started."""
    global _STARTED
    if is_initialized():
        jax.distributed.shutdown()
    _STARTED = False


def _replicated_leaf(leaf: Any, sharding: jax.sharding.Sharding) -> Any:
    if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, bool, complex)):
        return leaf
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = _replicated_leaf(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return leaf  # already a global array
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """Every array of ``tree`` replicated on every device of ``mesh``, across processes too.

    In one process this is ``jax.device_put`` with a replicated ``NamedSharding``.
    Across processes each one places its own (identical) copy on its own devices
    (``jax.make_array_from_callback``); nothing is communicated.
    """
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda leaf: _replicated_leaf(leaf, sharding), tree)


def _local_leaf(leaf: Any, device: jax.Device) -> Any:
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        if not leaf.is_fully_replicated:
            raise ValueError(f"an array of shape {leaf.shape} is split over processes ({leaf.sharding}); "
                             f"only replicated results can be handed back")
        return leaf.addressable_data(0)
    return jax.device_put(leaf, device)


def host_local(tree: Any) -> Any:
    """``tree`` on this process's first device: replicated global arrays as this process's copy."""
    device = jax.local_devices()[0]
    if jax.process_count() == 1:
        return jax.device_put(tree, device)
    return jax.tree.map(lambda leaf: _local_leaf(leaf, device), tree)
