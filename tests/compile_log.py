"""Counting XLA compilations from JAX's own log (as optax's tests do), not from a home-made counter."""

import contextlib
import logging
import re

import jax


@contextlib.contextmanager
def compilations(name: str | None = None):
    """Yield a list that collects one entry per XLA compilation of the jitted function ``name`` (any if None)."""
    seen: list[str] = []
    pattern = re.compile(rf"Finished XLA compilation of jit\({'.*' if name is None else re.escape(name)}\)")

    class Handler(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if pattern.search(message):
                seen.append(message)

    handler = Handler(level=logging.DEBUG)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            yield seen
    finally:
        logger.removeHandler(handler)
