"""The ``ldpc`` problem: codewords of a binary linear code sent as BPSK over an AWGN channel."""

from __future__ import annotations

import abc
import dataclasses
import difflib
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import Metric, Problem, option

from .codes import CODES, Code, load_code

__all__ = ["TannerGraph", "LDPCDecoding", "BER", "FER", "bit_errors", "frame_errors", "bit_cross_entropy",
           "noise_variance"]


class TannerGraph(abc.ABC):
    """Capability: a code's Tanner graph as edge arrays, and channel LLRs in the instance.

    Contract: edge ``e`` joins check ``check_of_edge[e]`` and variable ``variable_of_edge[e]``
    (``int32`` device arrays, pytree leaves, built once); ``n`` variables and ``checks`` checks
    are Python ints. :meth:`channel_llr` gives ``log P(bit = 0 | y) / P(bit = 1 | y)`` per bit,
    shape ``(batch, n)``; the estimate a decoder returns is an LLR vector of the same shape.
    """

    check_of_edge: jax.Array
    variable_of_edge: jax.Array
    n: int
    checks: int

    @abc.abstractmethod
    def channel_llr(self, instance) -> jax.Array:
        """The channel LLRs of the instance's bits, ``(batch, n)``."""


def bit_errors(llr, instance):
    """Number of wrongly decided bits per instance (bit 1 where the LLR is negative), shape ``(batch,)``."""
    return jnp.sum((llr < 0) != (instance["target"] > 0.5), axis=-1).astype(jnp.float32)


def bits_per_instance(llr, instance):
    """The number of bits of each instance, ``(batch,)``: BER's normaliser."""
    return jnp.full(llr.shape[:1], llr.shape[-1], jnp.float32)


def frame_errors(llr, instance):
    """1 for an instance with any wrongly decided bit, else 0, shape ``(batch,)``."""
    return jnp.any((llr < 0) != (instance["target"] > 0.5), axis=-1).astype(jnp.float32)


def bit_cross_entropy(llr, instance):
    """Binary cross-entropy of the bits under the LLRs (as logits of bit 0), mean over bits and instances.

    ``-log P(b) = b softplus(L) + (1 - b) softplus(-L)``: finite for any LLR.
    """
    bits = instance["target"]
    return jnp.mean(bits * jax.nn.softplus(llr) + (1 - bits) * jax.nn.softplus(-llr))


BER = Metric("ber", bit_errors, label="bit error rate", format=".2e", normalizer=bits_per_instance, log_axis=True,
             counts_errors=True)
FER = Metric("fer", frame_errors, label="frame error rate", format=".2e", log_axis=True, counts_errors=True)


def noise_variance(eb_n0_db, rate: float):
    """``sigma^2 = 1 / (2 R 10^(Eb/N0 / 10))`` for BPSK symbols of unit energy at code rate ``R``."""
    return 1.0 / (2.0 * rate * 10.0 ** (eb_n0_db / 10.0))


class LDPCDecoding(Problem, TannerGraph):
    """Decode a binary linear code's codewords sent as BPSK (``x = 1 - 2c``) over AWGN.

    ``y = x + w``, ``w ~ N(0, sigma^2)`` with ``sigma^2 = 1 / (2 R 10^(Eb/N0 / 10))``
    (``R = k / n``). The instance holds the channel LLRs ``2 y / sigma^2`` (``"llr"``), each
    instance's Eb/N0 in dB (``"eb_n0_db"``) and the bits (``"target"``, 0.0 / 1.0). With
    ``eb_n0_db = [low, high]`` each instance draws its Eb/N0 uniformly in dB. The estimate is
    an LLR vector; metrics decide ``bit = 1`` where it is negative: the bit error rate
    (primary: bit errors over bits) and the frame error rate. The training loss is the
    cross-entropy of the bits under the LLRs.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        code: str = option("bch-63-45", help=f"a shipped code: {', '.join(CODES)} (ignored with code_file)")
        code_file: str = option("", help="path of an alist file holding H; empty: use code")
        eb_n0_db: float | tuple[float, ...] = option(
            4.0, ge=-10, le=30, help="Eb/N0 in dB, or [low, high]: drawn per instance uniformly in dB")
        codeword: Literal["random", "zero"] = option("random", help="uniform random codewords or the all-zero one")

        def validate(self):
            if not self.code_file and self.code not in CODES:
                hint = difflib.get_close_matches(self.code, list(CODES), n=1, cutoff=0.0)
                raise ValueError(f"problem.code {self.code!r} is not a shipped code ({', '.join(CODES)})"
                                 + (f"; did you mean {hint[0]!r}?" if hint else ""))
            if isinstance(self.eb_n0_db, tuple) and (len(self.eb_n0_db) != 2 or self.eb_n0_db[0] > self.eb_n0_db[1]):
                raise ValueError(f"problem.eb_n0_db as a list must be [low, high] with low <= high, "
                                 f"got {list(self.eb_n0_db)}")

    name = "ldpc"
    description = "codewords of a binary linear code (alist) as BPSK over AWGN at a set Eb/N0; LLR estimates"
    metrics = (BER, FER)

    def __init__(self, code: Code, *, eb_n0_db: float | tuple[float, float] = 4.0, codeword: str = "random"):
        self.code_name = code.name
        self.n, self.k, self.checks = code.n, code.k, int(code.parity_check.shape[0])
        self.rate = code.rate
        self.codeword = codeword
        low, high = (eb_n0_db, eb_n0_db) if np.isscalar(eb_n0_db) else eb_n0_db
        self.eb_n0_label = float(low) if low == high else (float(low), float(high))
        # Leaves, not static floats: another Eb/N0 reuses the compiled programs.
        self.eb_n0_range = jax.device_put(np.array([low, high], np.float32))
        checks, variables = np.nonzero(code.parity_check)  # edges sorted by check
        self.edges = int(checks.size)
        self.check_of_edge = jax.device_put(checks.astype(np.int32))
        self.variable_of_edge = jax.device_put(variables.astype(np.int32))
        self.generator = jax.device_put(code.generator.astype(np.int32))

    @classmethod
    def from_options(cls, options: "LDPCDecoding.Options") -> "LDPCDecoding":
        code = load_code(path=options.code_file) if options.code_file else load_code(options.code)
        return cls(code, eb_n0_db=options.eb_n0_db, codeword=options.codeword)

    @property
    def dim(self):
        return self.n

    def channel_llr(self, instance):
        return instance["llr"]

    def sample(self, key, batch_size):
        message_key, snr_key, noise_key = jax.random.split(key, 3)
        if self.codeword == "zero":
            bits = jnp.zeros((batch_size, self.n), jnp.float32)
        else:
            message = jax.random.bernoulli(message_key, 0.5, (batch_size, self.k)).astype(jnp.int32)
            bits = ((message @ self.generator) % 2).astype(jnp.float32)
        low, high = self.eb_n0_range[0], self.eb_n0_range[1]
        eb_n0_db = low + (high - low) * jax.random.uniform(snr_key, (batch_size,), jnp.float32)
        sigma2 = noise_variance(eb_n0_db, self.rate)[:, None]
        y = 1.0 - 2.0 * bits + jnp.sqrt(sigma2) * jax.random.normal(noise_key, bits.shape, jnp.float32)
        return {"llr": 2.0 * y / sigma2, "eb_n0_db": eb_n0_db, "target": bits}

    def loss(self, estimate, instance):
        return bit_cross_entropy(estimate, instance)

    def describe(self):
        return {**super().describe(), "code": self.code_name, "n": self.n, "k": self.k, "rate": self.rate,
                "checks": self.checks, "edges": self.edges, "eb_n0_db": self.eb_n0_label if isinstance(self.eb_n0_label, float) else list(self.eb_n0_label), "codeword": self.codeword}
