import os

# Tests exercise the installed plugins only; a stray allow-list would hide them.
os.environ.pop("DU_PLUGINS", None)
# Tests never write JAX's persistent compilation cache into the home folder.
os.environ["DU_COMPILE_CACHE"] = "off"

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(autouse=True)
def fresh_registry():
    """Every test sees a registry loaded from the current environment."""
    from du_framework import plugins
    from du_framework.engine import clear_program_cache

    plugins.reset()
    clear_program_cache()  # so that each test's compilation count is its own
    yield
    plugins.reset()
