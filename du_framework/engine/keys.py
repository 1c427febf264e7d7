"""PRNG keys derived on the host, bit for bit as ``jax.random`` derives them, without compiling anything.

``jax.random.key(seed)`` and ``jax.random.fold_in`` are jitted functions: in a
fresh process each costs an XLA compilation (about 0.1 s together on a 2-core
CPU), a noticeable share of a short ``unfold train``. The default PRNG is
Threefry-2x32 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC 2011); the few hashes a run's keys need are computed here with
Python integers and wrapped with ``jax.random.wrap_key_data``, which compiles
nothing. The tests check every function against ``jax.random``.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["host_key", "host_fold_in", "threefry2x32"]

_MASK = 0xFFFFFFFF
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA


def _rotate_left(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


def threefry2x32(key: tuple[int, int], counter: tuple[int, int]) -> tuple[int, int]:
    """The Threefry-2x32 hash (20 rounds) of a two-word ``counter`` under a two-word ``key``."""
    schedule = (key[0], key[1], key[0] ^ key[1] ^ _PARITY)
    x0, x1 = (counter[0] + schedule[0]) & _MASK, (counter[1] + schedule[1]) & _MASK
    for block in range(5):
        for bits in _ROTATIONS[block % 2]:
            x0 = (x0 + x1) & _MASK
            x1 = _rotate_left(x1, bits) ^ x0
        x0 = (x0 + schedule[(block + 1) % 3]) & _MASK
        x1 = (x1 + schedule[(block + 2) % 3] + block + 1) & _MASK
    return x0, x1


def _seed_words(seed: int) -> tuple[int, int]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
        raise ValueError(f"a seed must be an integer in [0, 2**32), got {seed!r}")
    return 0, int(seed)


def _wrap(words: tuple[int, int]) -> jax.Array:
    return jax.random.wrap_key_data(np.array(words, np.uint32), impl="threefry2x32")


def host_key(seed: int) -> jax.Array:
    """``jax.random.key(seed)`` for a seed in ``[0, 2**32)``, made on the host."""
    return _wrap(_seed_words(seed))


def host_fold_in(key: jax.Array, data: int) -> jax.Array:
    """``jax.random.fold_in(key, data)`` for a Threefry key and ``data`` in ``[0, 2**32)``, on the host."""
    words = tuple(int(word) for word in np.asarray(jax.random.key_data(key)).reshape(-1))
    if len(words) != 2:
        raise ValueError(f"host_fold_in needs a single Threefry-2x32 key, got key data of shape "
                         f"{np.shape(jax.random.key_data(key))}")
    return _wrap(threefry2x32(words, _seed_words(data)))
