"""The ``mimo`` problem: symbols of a QAM constellation sent through an i.i.d. Rayleigh channel drawn per instance.

Complex signals are handled through their real-valued equivalent. For ``y = H x + w``
with ``H`` (``n_rx x n_tx``), ``x`` (``n_tx``) and ``w`` complex::

    y_r = [Re y; Im y],   H_r = [[Re H, -Im H], [Im H, Re H]],   x_r = [Re x; Im x],

so that ``y_r = H_r x_r + w_r``. BPSK symbols are real (``Im x = 0``), so only the
first block column is kept: ``H_r = [Re H; Im H]`` (``2 n_rx x n_tx``) and ``x_r = x``.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from du_framework import MSE, LinearObservation, Metric, Problem, option

__all__ = ["Constellation", "ConstellationDetection", "MIMODetection", "SymbolErrors", "BitErrors", "SymbolCount",
           "BitCount", "MODULATIONS", "rayleigh_lipschitz_bound"]

MODULATIONS = ("bpsk", "qpsk", "16qam")

# Deviations t of the Gaussian concentration bound used by the step bound (see rayleigh_lipschitz_bound).
_DEVIATIONS = 3.0


@dataclasses.dataclass(frozen=True)
class Constellation:
    """A square QAM constellation (or BPSK) with unit average symbol energy, seen per real dimension.

    Each real dimension carries a PAM symbol of ``levels_per_dim`` equally spaced levels
    ``spacing * (2 i - (levels_per_dim - 1))``, ``i = 0 .. levels_per_dim - 1`` (the level index),
    labelled with the Gray code ``i ^ (i >> 1)`` on ``bits_per_dim`` bits. A complex symbol is a
    pair of indices (real part, imaginary part); its label is the real part's bits then the
    imaginary part's, which is a Gray mapping of the square constellation (neighbours along a row
    or a column differ in one bit).

    Attributes:
        name: ``"bpsk"``, ``"qpsk"`` or ``"16qam"``.
        complex: whether symbols have an imaginary part (``False`` for BPSK only).
        levels_per_dim: PAM levels per real dimension (2 or 4).
        spacing: ``d``, half the distance between neighbouring levels (``1`` for BPSK,
            ``1/sqrt(2)`` for QPSK, ``1/sqrt(10)`` for 16-QAM), so that ``E|x|^2 = 1``.
    """

    name: str
    complex: bool
    levels_per_dim: int
    spacing: float

    @classmethod
    def of(cls, name: str) -> "Constellation":
        """The constellation called ``name`` (one of :data:`MODULATIONS`)."""
        if name == "bpsk":
            return cls("bpsk", False, 2, 1.0)
        levels = {"qpsk": 2, "16qam": 4}[name]
        # E|x|^2 = 2 d^2 (M_r^2 - 1) / 3 = 1 for a square QAM with M_r levels per dimension.
        return cls(name, True, levels, math.sqrt(3.0 / (2.0 * (levels**2 - 1))))

    @property
    def size(self) -> int:
        """``M``, the number of complex symbols."""
        return self.levels_per_dim ** (2 if self.complex else 1)

    @property
    def bits_per_dim(self) -> int:
        return int(round(math.log2(self.levels_per_dim)))

    @property
    def bits_per_symbol(self) -> int:
        return self.bits_per_dim * (2 if self.complex else 1)

    @property
    def dims_per_symbol(self) -> int:
        return 2 if self.complex else 1

    @property
    def energy_per_dim(self) -> float:
        """``E x_r^2`` of one real dimension: ``1`` for BPSK, ``1/2`` for the complex constellations."""
        return self.spacing**2 * (self.levels_per_dim**2 - 1) / 3.0

    def levels(self) -> np.ndarray:
        """The PAM levels of one real dimension, increasing, as a float64 host array."""
        index = np.arange(self.levels_per_dim)
        return self.spacing * (2.0 * index - (self.levels_per_dim - 1))

    def points(self) -> np.ndarray:
        """The ``M`` complex symbols, symbol ``s`` having level indices ``(s % M_r, s // M_r)`` (host, complex128)."""
        levels = self.levels()
        if not self.complex:
            return levels.astype(np.complex128)
        s = np.arange(self.size)
        return levels[s % self.levels_per_dim] + 1j * levels[s // self.levels_per_dim]

    def labels(self) -> np.ndarray:
        """Gray labels of the symbols of :meth:`points`: an ``(M, bits_per_symbol)`` 0/1 host array."""
        def gray_bits(index):
            code = index ^ (index >> 1)
            return [(code >> (self.bits_per_dim - 1 - b)) & 1 for b in range(self.bits_per_dim)]
        out = []
        for s in range(self.size):
            bits = gray_bits(s % self.levels_per_dim)
            if self.complex:
                bits += gray_bits(s // self.levels_per_dim)
            out.append(bits)
        return np.array(out, np.int64)

    # -- traceable maps on real-valued arrays ---------------------------------------------------

    def level_index(self, r: jax.Array) -> jax.Array:
        """Index of the nearest level of every real entry of ``r`` (``int32``, same shape): the hard decision."""
        index = jnp.round((r / self.spacing + (self.levels_per_dim - 1)) / 2)
        return jnp.clip(index, 0, self.levels_per_dim - 1).astype(jnp.int32)

    def decide(self, r: jax.Array) -> jax.Array:
        """The nearest level of every real entry of ``r``."""
        return self.spacing * (2.0 * self.level_index(r).astype(r.dtype) - (self.levels_per_dim - 1))

    def project(self, r: jax.Array, softness: jax.Array) -> jax.Array:
        """Soft projection onto the levels: ``d sum_j tanh((r/d - b_j) / softness)``.

        ``b_j = 2 j - (M_r - 2)``, ``j = 0 .. M_r - 2``, are the decision boundaries in units of
        ``d``: for BPSK ``tanh(r / softness)``, for QPSK ``d tanh(r / (d softness))``. The result
        lies in ``[-(M_r - 1) d, (M_r - 1) d]`` and tends to :meth:`decide` as ``softness -> 0``.
        ``softness`` broadcasts against ``r`` (a scalar, or ``(batch, 1)``).
        """
        scaled = r / self.spacing
        total = jnp.zeros_like(r)
        for j in range(self.levels_per_dim - 1):
            total = total + jnp.tanh((scaled - (2 * j - (self.levels_per_dim - 2))) / softness)
        return self.spacing * total

    def posterior(self, r: jax.Array, variance: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Posterior mean and variance of a uniform level seen as ``r = level + N(0, variance)``.

        ``r`` is ``(batch, dim)``, ``variance`` ``(batch, 1)``; both outputs are ``(batch, dim)``.
        """
        levels = jnp.asarray(self.levels(), r.dtype).reshape(1, 1, -1)
        logits = -jnp.square(r[..., None] - levels) / (2 * variance[..., None])
        weights = jax.nn.softmax(logits, axis=-1)
        mean = jnp.sum(weights * levels, axis=-1)
        return mean, jnp.maximum(jnp.sum(weights * jnp.square(levels), axis=-1) - jnp.square(mean), 0.0)


def _wrong_per_symbol(constellation: Constellation, n_tx: int, estimate: jax.Array, target: jax.Array) -> jax.Array:
    """``(batch, n_tx)`` booleans: the decided symbol differs from the sent one in some real dimension."""
    wrong = constellation.level_index(estimate) != constellation.level_index(target)
    return wrong[:, :n_tx] | wrong[:, n_tx:] if constellation.complex else wrong


def _gray(index: jax.Array) -> jax.Array:
    return jnp.bitwise_xor(index, jnp.right_shift(index, 1))


@dataclasses.dataclass(frozen=True)
class SymbolErrors:
    """Per instance: the number of wrongly decided symbols (nearest point per real dimension), shape ``(batch,)``."""

    constellation: Constellation
    n_tx: int

    def __call__(self, estimate, instance):
        wrong = _wrong_per_symbol(self.constellation, self.n_tx, estimate, instance["target"])
        return jnp.sum(wrong, axis=-1).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class SymbolCount:
    """Per instance: the number of symbols sent, ``n_tx`` (the normaliser of the symbol error rate)."""

    n_tx: int

    def __call__(self, estimate, instance):
        return jnp.full(estimate.shape[:1], float(self.n_tx), jnp.float32)


@dataclasses.dataclass(frozen=True)
class BitErrors:
    """Per instance: the number of wrong bits under the Gray mapping of :class:`Constellation`, ``(batch,)``."""

    constellation: Constellation

    def __call__(self, estimate, instance):
        decided = _gray(self.constellation.level_index(estimate))
        sent = _gray(self.constellation.level_index(instance["target"]))
        flips = jax.lax.population_count(jnp.bitwise_xor(decided, sent))
        return jnp.sum(flips, axis=-1).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class BitCount:
    """Per instance: the number of bits sent, ``n_tx * bits_per_symbol``."""

    bits: int

    def __call__(self, estimate, instance):
        return jnp.full(estimate.shape[:1], float(self.bits), jnp.float32)


def _metrics(constellation: Constellation, n_tx: int) -> tuple[Metric, ...]:
    return (Metric("ser", SymbolErrors(constellation, n_tx), label="symbol error rate", format=".2e",
                   normalizer=SymbolCount(n_tx), log_axis=True, counts_errors=True),
            Metric("ber", BitErrors(constellation), label="bit error rate", format=".2e",
                   normalizer=BitCount(n_tx * constellation.bits_per_symbol), log_axis=True, counts_errors=True),
            MSE)


def rayleigh_lipschitz_bound(n_tx: int, n_rx: int, modulation: str) -> float:
    """A bound on ``||H_r||_2^2`` that holds for all but about 1 % of the channels drawn.

    Complex (QPSK, 16-QAM): ``H_r`` has the singular values of ``H``; ``||H||_2`` is a 1-Lipschitz
    function of the ``2 n_rx n_tx`` standard Gaussians behind ``H`` (``||H_r||_2 <= ||H_r||_F``) and
    ``E||H||_2 <= sqrt(n_rx) + sqrt(n_tx)``, so ``P(||H||_2 > sqrt(n_rx) + sqrt(n_tx) + t) <= exp(-t^2/2)``.
    BPSK: ``H_r = [Re H; Im H]`` is a real ``2 n_rx x n_tx`` Gaussian matrix with variance 1/2, and
    Davidson and Szarek's bound gives ``||H_r||_2 <= (sqrt(2 n_rx) + sqrt(n_tx) + t) / sqrt(2)`` with the
    same probability. ``t = 3`` (``exp(-4.5)``, about 1.1 %).
    """
    t = _DEVIATIONS
    if modulation == "bpsk":
        return float((math.sqrt(2 * n_rx) + math.sqrt(n_tx) + t) ** 2 / 2)
    return float((math.sqrt(n_rx) + math.sqrt(n_tx) + t) ** 2)


class ConstellationDetection(abc.ABC):
    """Capability: the target is the real-valued equivalent of ``n_tx`` symbols of a known constellation,
    observed through a linear channel in white Gaussian noise of known variance.

    Contract (with :class:`~du_framework.LinearObservation`, ``y_r = H_r x_r + w_r``):

    * the target ``x_r`` has ``dim = n_tx * constellation.dims_per_symbol`` entries; for a complex
      constellation the first ``n_tx`` are the real parts, the last ``n_tx`` the imaginary parts;
    * the symbols are independent, uniform over the constellation, with per real dimension energy
      ``constellation.energy_per_dim``;
    * ``w_r`` has i.i.d. ``N(0, noise_variance(instance))`` entries, the variance given per instance.
    """

    @property
    @abc.abstractmethod
    def constellation(self) -> Constellation:
        """The constellation every symbol is drawn from."""

    @property
    @abc.abstractmethod
    def n_tx(self) -> int:
        """Number of transmitted (complex) symbols per instance."""

    @abc.abstractmethod
    def noise_variance(self, instance) -> jax.Array:
        """Variance of each real noise entry, per instance: shape ``(batch,)``."""


class MIMODetection(Problem, LinearObservation, ConstellationDetection):
    """Detect ``x`` from ``y = H x + w`` through a fresh i.i.d. Rayleigh channel per instance.

    ``H`` (``n_rx x n_tx``) has i.i.d. ``CN(0, 1)`` entries, ``x`` has ``n_tx`` independent
    symbols drawn uniformly from the constellation (unit average energy ``Es = 1``), and ``w``
    has i.i.d. ``CN(0, N0)`` entries. The SNR is the signal-to-noise ratio per receive antenna,

        ``SNR = E|(H x)_i|^2 / E|w_i|^2 = n_tx Es / N0``,   so   ``N0 = n_tx / 10^(snr_db / 10)``,

    and each real noise entry of the real-valued model has variance ``N0 / 2``. ``snr_db`` is a
    number, or ``[low, high]``: each instance then draws its SNR uniformly in dB between them.
    The real-valued equivalent (module docstring) is what the instance holds: ``"H"`` (``H_r``,
    ``(batch, 2 n_rx, dim)``), ``"y"`` (``(batch, 2 n_rx)``), ``"target"`` (``x_r``,
    ``(batch, dim)``) and ``"noise_variance"`` (``N0 / 2`` per instance, ``(batch,)``).

    Metrics: ``ser`` (primary), ``ber`` (Gray mapping) and ``mse``. The error rates are error
    counts over trials: ``per_instance`` is the number of wrong symbols (bits) of an instance and
    ``normalizer`` the number sent, so the reported value is the rate over every instance.
    Decisions are made in the metric: the nearest level per real dimension of the estimate.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        n_tx: int = option(16, ge=1, le=1024, help="transmit antennas: number of symbols per instance")
        n_rx: int = option(16, ge=1, le=1024, help="receive antennas (n_tx > n_rx: an overloaded channel)")
        modulation: Literal["bpsk", "qpsk", "16qam"] = option("qpsk", help="constellation, unit average energy")
        snr_db: float | tuple[float, ...] = option(
            10.0, ge=-30, le=60, help="SNR n_tx Es / N0 per receive antenna in dB, or [low, high]: drawn per "
                                      "instance uniformly in dB")

        def validate(self):
            if isinstance(self.snr_db, tuple) and (len(self.snr_db) != 2 or self.snr_db[0] > self.snr_db[1]):
                raise ValueError(f"snr_db must be a number or a list [low, high] with low <= high, "
                                 f"got {list(self.snr_db)}")

    name = "mimo"
    description = ("MIMO detection: BPSK/QPSK/16-QAM through an i.i.d. Rayleigh channel drawn per instance, "
                   "SNR per receive antenna (a number or a range)")
    metrics = _metrics(Constellation.of("qpsk"), 16)
    per_instance_operator = True

    def __init__(self, options: "MIMODetection.Options"):
        self._n_tx, self.n_rx = int(options.n_tx), int(options.n_rx)
        self.modulation = options.modulation
        self._constellation = Constellation.of(options.modulation)
        low, high = (options.snr_db, options.snr_db) if isinstance(options.snr_db, float) else options.snr_db
        # A leaf, not a static float: problems that differ only in their SNR share compiled programs.
        self.snr_db_range = jax.device_put(np.array([low, high], np.float32))
        self.metrics = _metrics(self._constellation, self._n_tx)
        self.L = rayleigh_lipschitz_bound(self._n_tx, self.n_rx, self.modulation)

    @classmethod
    def from_options(cls, options):
        return cls(options)

    @property
    def dim(self):
        return self._n_tx * self._constellation.dims_per_symbol

    @property
    def m(self) -> int:
        """Rows of the real-valued channel, ``2 n_rx``."""
        return 2 * self.n_rx

    # -- ConstellationDetection ---------------------------------------------------------------

    @property
    def constellation(self):
        return self._constellation

    @property
    def n_tx(self):
        return self._n_tx

    def noise_variance(self, instance):
        return instance["noise_variance"]

    # -- LinearObservation --------------------------------------------------------------------

    def operator(self, instance=None):
        if instance is None:
            raise ValueError(f"problem {self.name!r} draws H per instance: operator() needs the instance")
        return instance["H"]

    def lipschitz_bound(self):
        return self.L

    # -- Problem ------------------------------------------------------------------------------

    def sample(self, key, batch_size):
        symbol_key, channel_key, noise_key, snr_key = jax.random.split(key, 4)
        c, n = self._constellation, self._n_tx
        index = jax.random.randint(symbol_key, (batch_size, self.dim), 0, c.levels_per_dim)
        x = c.spacing * (2.0 * index.astype(jnp.float32) - (c.levels_per_dim - 1))
        parts = jax.random.normal(channel_key, (2, batch_size, self.n_rx, n), jnp.float32) / math.sqrt(2.0)
        re, im = parts[0], parts[1]
        if c.complex:
            h = jnp.concatenate([jnp.concatenate([re, -im], axis=2), jnp.concatenate([im, re], axis=2)], axis=1)
        else:
            h = jnp.concatenate([re, im], axis=1)
        low, high = self.snr_db_range[0], self.snr_db_range[1]
        snr_db = low + (high - low) * jax.random.uniform(snr_key, (batch_size,), jnp.float32)
        # N0 = n_tx Es / 10^(snr/10) with Es = 1; each real noise entry has variance N0 / 2.
        noise_variance = n / (2.0 * 10.0 ** (snr_db / 10.0))
        noise = jnp.sqrt(noise_variance)[:, None] * jax.random.normal(noise_key, (batch_size, self.m), jnp.float32)
        y = jnp.einsum("bmn,bn->bm", h, x) + noise
        return {"H": h, "y": y, "target": x, "noise_variance": noise_variance}

    def describe(self):
        low, high = (float(v) for v in np.asarray(self.snr_db_range))
        return {"name": self.name, "dim": self.dim, "n_tx": self._n_tx, "n_rx": self.n_rx,
                "modulation": self.modulation, "snr_db": low if low == high else [low, high]}
