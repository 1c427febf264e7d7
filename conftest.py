import os
import sys

# Tests exercise the installed plugins only; a stray allow-list would hide them.
os.environ.pop("DU_PLUGINS", None)
# Tests never write JAX's persistent compilation cache into the home folder.
os.environ["DU_COMPILE_CACHE"] = "off"
# LAPACK calls inside compiled programs (per-instance pseudo-inverses) run many times slower when
# OpenBLAS threads compete with XLA's on two cores; set before numpy loads it (subprocesses inherit it).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def fresh_registry():
    """Every test sees a registry loaded from the current environment, and leaks no in-process plugin."""
    from du_framework import registry

    before = registry.in_process_plugins()
    registry.reset()
    # Only an imported engine has compiled programs to forget (so that each test's
    # compilation count is its own); the engine may not offer this function.
    engine = sys.modules.get("du_framework.engine")
    clear_program_cache = getattr(engine, "clear_program_cache", None)
    if clear_program_cache is not None:
        clear_program_cache()
    yield
    for name in registry.in_process_plugins():
        if name not in before:
            registry.unregister_plugin(name)
    registry.reset()
