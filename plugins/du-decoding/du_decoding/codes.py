"""Binary linear codes: the shipped parity-check matrices, their constructions, and encoders.

The shipped codes are alist files in ``du_decoding/codes/`` (package data), written by
``python -m du_decoding.codes`` from the constructions below; the tests rebuild each one and
compare it with the file.

* ``bch-63-45``: the narrow-sense binary BCH code of length 63 correcting 3 errors,
  ``g(x) = m_1(x) m_3(x) m_5(x)`` over GF(64) with the primitive polynomial ``x^6 + x + 1``
  (Lin and Costello, *Error Control Coding*, 2nd ed., ch. 6); ``H`` is the cyclic
  ``18 x 63`` matrix whose rows are the shifts of the reciprocal of ``h(x) = (x^63 + 1) / g(x)``.
* ``gallager-96-3-6``: a (3, 6)-regular LDPC code of length 96 by Gallager's construction
  (R. G. Gallager, *Low-Density Parity-Check Codes*, MIT Press, 1963, ch. 2): three stacked
  16 x 96 bands, the first with six consecutive ones per row, the other two random column
  permutations of it (numpy ``default_rng(0).permutation``; 4-cycles are not removed).
  Gallager's bands make two rows dependent, so ``k = 96 - rank(H) = 50``.
* ``wimax-576-r12``: the IEEE 802.16e rate-1/2 LDPC code with ``n = 576`` (``z = 24``):
  IEEE Std 802.16e-2005, section 8.4.9.2.5, the rate-1/2 base model matrix (12 x 24, defined for
  ``z_0 = 96``), each entry ``p >= 0`` lifted to the ``z x z`` identity cyclically shifted right
  by ``floor(p z / 96)``, ``-1`` to the zero block.
"""

from __future__ import annotations

import dataclasses
import difflib
from importlib.resources import files

import numpy as np

from du_framework import ConfigError

from .alist import parse_alist, write_alist

__all__ = ["CODES", "Code", "bch_63_45", "gallager_regular", "load_code", "systematic_generator", "wimax_rate_half",
           "WIMAX_RATE_HALF_BASE", "gf2_rank"]


@dataclasses.dataclass(frozen=True)
class Code:
    """A binary linear code: its parity-check matrix and a systematic generator.

    Attributes:
        name: a shipped code's name, or the alist path it came from.
        parity_check: ``H``, ``m x n`` ``uint8`` (rows may be dependent).
        generator: ``G``, ``k x n`` ``uint8``, ``G H^T = 0 (mod 2)``; systematic on ``information_positions``.
        information_positions: the ``k`` columns where ``G`` is the identity.
        permutation: the column order used by the elimination: ``H[:, permutation]`` reduces to
            ``[P | I]`` on its independent rows (the last ``n - k`` positions are the pivots).
    """

    name: str
    parity_check: np.ndarray
    generator: np.ndarray
    information_positions: np.ndarray
    permutation: np.ndarray

    @property
    def n(self) -> int:
        return int(self.parity_check.shape[1])

    @property
    def k(self) -> int:
        return int(self.generator.shape[0])

    @property
    def rate(self) -> float:
        return self.k / self.n


def gf2_rank(matrix: np.ndarray) -> int:
    """Rank of a binary matrix over GF(2)."""
    reduced, pivots = _row_reduce(matrix)
    return len(pivots)


def _row_reduce(matrix: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Reduced row echelon form over GF(2) and the pivot columns (in order)."""
    work = np.array(matrix, dtype=np.uint8) % 2
    rows, cols = work.shape
    pivots: list[int] = []
    row = 0
    for col in range(cols):
        if row == rows:
            break
        candidates = np.flatnonzero(work[row:, col])
        if candidates.size == 0:
            continue
        pivot = row + int(candidates[0])
        if pivot != row:
            work[[row, pivot]] = work[[pivot, row]]
        others = np.flatnonzero(work[:, col])
        others = others[others != row]
        work[others] ^= work[row]
        pivots.append(col)
        row += 1
    return work[:row], pivots


def systematic_generator(parity_check: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A systematic generator matrix of the code ``{c : H c = 0 (mod 2)}`` by Gaussian elimination.

    Returns ``(G, information_positions, permutation)``: ``G`` is ``k x n`` with
    ``k = n - rank(H)``, ``G H^T = 0 (mod 2)`` and ``G[:, information_positions] = I_k``;
    ``permutation`` puts the information columns first and the pivot columns last, so that
    ``H[:, permutation]`` row-reduces to ``[P | I_r]`` and ``G[:, permutation] = [I_k | P^T]``.
    """
    parity_check = np.asarray(parity_check, np.uint8)
    n = parity_check.shape[1]
    reduced, pivots = _row_reduce(parity_check)
    information = np.array([c for c in range(n) if c not in set(pivots)], np.int64)
    permutation = np.concatenate([information, np.asarray(pivots, np.int64)])
    k = information.size
    generator = np.zeros((k, n), np.uint8)
    generator[np.arange(k), information] = 1
    # Row i of the reduced H reads c[pivot_i] + sum_j reduced[i, information_j] c[information_j] = 0.
    generator[:, pivots] = reduced[:, information].T
    return generator, information, permutation


# -- constructions ---------------------------------------------------------------------------------


def _poly_mul(a: list[int], b: list[int]) -> list[int]:
    """Product of two binary polynomials (coefficient lists, lowest degree first)."""
    out = [0] * (len(a) + len(b) - 1)
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                out[i + j] ^= y
    return out


def _poly_divmod(a: list[int], b: list[int]) -> tuple[list[int], list[int]]:
    a = a[:]
    quotient = [0] * max(len(a) - len(b) + 1, 1)
    for shift in range(len(a) - len(b), -1, -1):
        if a[shift + len(b) - 1]:
            quotient[shift] = 1
            for j, y in enumerate(b):
                a[shift + j] ^= y
    return quotient, a[: len(b) - 1]


def bch_generator_polynomial(m: int = 6, primitive: int = 0b1000011, designed_distance: int = 7) -> list[int]:
    """``g(x)`` of the narrow-sense primitive binary BCH code of length ``2^m - 1``: the product of
    the distinct minimal polynomials of ``alpha^1 .. alpha^(d-1)`` (``alpha`` a root of ``primitive``)."""
    size = 2**m - 1
    exp = [0] * size
    value = 1
    for i in range(size):
        exp[i] = value
        value <<= 1
        if value >> m:
            value ^= primitive
    log = {v: i for i, v in enumerate(exp)}

    def gf_mul(x: int, y: int) -> int:
        return 0 if x == 0 or y == 0 else exp[(log[x] + log[y]) % size]

    generator, covered = [1], set()
    for power in range(1, designed_distance):
        if power in covered:
            continue
        coset, member = [], power
        while member not in coset:
            coset.append(member)
            member = member * 2 % size
        covered.update(coset)
        minimal = [1]  # product of (x + alpha^c) over the coset, coefficients in GF(2^m)
        for c in coset:
            root = exp[c]
            shifted = [0] + minimal
            scaled = [gf_mul(root, coefficient) for coefficient in minimal] + [0]
            minimal = [s ^ t for s, t in zip(shifted, scaled)]
        if any(coefficient not in (0, 1) for coefficient in minimal):
            raise AssertionError("a minimal polynomial must have binary coefficients")
        generator = _poly_mul(generator, minimal)
    return generator


def bch_63_45() -> tuple[np.ndarray, np.ndarray]:
    """``(H, G)`` of the (63, 45) BCH code: ``H`` the cyclic 18 x 63 matrix from ``h(x) = (x^63 + 1)/g(x)``,
    ``G`` the 45 x 63 cyclic generator (shifts of ``g(x)``); ``G H^T = 0 (mod 2)``."""
    n = 63
    g = bch_generator_polynomial()
    k = n - (len(g) - 1)
    h, remainder = _poly_divmod([1] + [0] * (n - 1) + [1], g)
    if any(remainder) or len(h) - 1 != k:
        raise AssertionError("g(x) must divide x^63 + 1")
    generator = np.zeros((k, n), np.uint8)
    for i in range(k):
        generator[i, i:i + len(g)] = g
    reciprocal = h[::-1]  # the parity checks of a cyclic code: shifts of x^k h(1/x)
    parity_check = np.zeros((n - k, n), np.uint8)
    for i in range(n - k):
        parity_check[i, i:i + len(reciprocal)] = reciprocal
    return parity_check, generator


def gallager_regular(n: int = 96, column_weight: int = 3, row_weight: int = 6, seed: int = 0) -> np.ndarray:
    """Gallager's ``(column_weight, row_weight)``-regular ``H`` of length ``n``.

    Band 1 has ``n / row_weight`` rows of ``row_weight`` consecutive ones; bands 2.. are
    column permutations of band 1 drawn from ``numpy.random.default_rng(seed)``. Short cycles
    are not removed.
    """
    if n % row_weight:
        raise ValueError("n must be a multiple of the row weight")
    rows = n // row_weight
    band = np.zeros((rows, n), np.uint8)
    for r in range(rows):
        band[r, r * row_weight:(r + 1) * row_weight] = 1
    rng = np.random.default_rng(seed)
    return np.concatenate([band] + [band[:, rng.permutation(n)] for _ in range(column_weight - 1)])


# IEEE Std 802.16e-2005, section 8.4.9.2.5: the rate-1/2 base model matrix (shifts for z_0 = 96; -1: zero block).
WIMAX_RATE_HALF_BASE = np.array([
    [-1, 94, 73, -1, -1, -1, -1, -1, 55, 83, -1, -1, 7, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1],
    [-1, 27, -1, -1, -1, 22, 79, 9, -1, -1, -1, 12, -1, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1],
    [-1, -1, -1, 24, 22, 81, -1, 33, -1, -1, -1, 0, -1, -1, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1],
    [61, -1, 47, -1, -1, -1, -1, -1, 65, 25, -1, -1, -1, -1, -1, 0, 0, -1, -1, -1, -1, -1, -1, -1],
    [-1, -1, 39, -1, -1, -1, 84, -1, -1, 41, 72, -1, -1, -1, -1, -1, 0, 0, -1, -1, -1, -1, -1, -1],
    [-1, -1, -1, -1, 46, 40, -1, 82, -1, -1, -1, 79, 0, -1, -1, -1, -1, 0, 0, -1, -1, -1, -1, -1],
    [-1, -1, 95, 53, -1, -1, -1, -1, -1, 14, 18, -1, -1, -1, -1, -1, -1, -1, 0, 0, -1, -1, -1, -1],
    [-1, 11, 73, -1, -1, -1, 2, -1, -1, 47, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, -1, -1, -1],
    [12, -1, -1, -1, 83, 24, -1, 43, -1, -1, -1, 51, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, -1, -1],
    [-1, -1, -1, -1, -1, 94, -1, 59, -1, -1, 70, 72, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, -1],
    [-1, -1, 7, 65, -1, -1, -1, -1, 39, 49, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0],
    [43, -1, -1, -1, -1, 66, -1, 41, -1, -1, -1, 26, 7, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0],
])


def wimax_rate_half(z: int = 24) -> np.ndarray:
    """The 802.16e rate-1/2 ``H`` (``12 z x 24 z``) lifted from :data:`WIMAX_RATE_HALF_BASE`:
    shift ``floor(p z / 96)``, the identity's columns rotated right (row ``r`` has its one in
    column ``(r + shift) mod z``)."""
    rows, cols = WIMAX_RATE_HALF_BASE.shape
    matrix = np.zeros((rows * z, cols * z), np.uint8)
    identity_rows = np.arange(z)
    for i in range(rows):
        for j in range(cols):
            p = int(WIMAX_RATE_HALF_BASE[i, j])
            if p < 0:
                continue
            shift = (p * z) // 96
            matrix[i * z + identity_rows, j * z + (identity_rows + shift) % z] = 1
    return matrix


# -- shipped codes -----------------------------------------------------------------------------------

CODES = {
    "bch-63-45": "the (63, 45) BCH code, cyclic H (18 x 63) from g(x) = m1 m3 m5 over GF(64)",
    "gallager-96-3-6": "a (3, 6)-regular LDPC code, n = 96, k = 50, Gallager's construction, seed 0",
    "wimax-576-r12": "the IEEE 802.16e rate-1/2 LDPC code, n = 576, k = 288 (z = 24)",
}
"""The shipped codes: name -> one line."""


def _build(name: str) -> np.ndarray:
    if name == "bch-63-45":
        return bch_63_45()[0]
    if name == "gallager-96-3-6":
        return gallager_regular()
    if name == "wimax-576-r12":
        return wimax_rate_half(24)
    raise KeyError(name)


def load_code(name: str = "", path: str = "") -> Code:
    """A shipped code by ``name`` (package data), or the alist file at ``path``.

    Raises:
        ConfigError: an unknown ``name``, with the nearest shipped one.
        AlistError: a malformed alist file (naming it and the line).
    """
    if path:
        from .alist import read_alist

        matrix, label = read_alist(path), str(path)
    else:
        if name not in CODES:
            hint = difflib.get_close_matches(name, list(CODES), n=1, cutoff=0.0)
            raise ConfigError(f"unknown code {name!r}; shipped codes: {', '.join(CODES)}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        resource = files(__package__).joinpath("codes", f"{name}.alist")
        matrix, label = parse_alist(resource.read_text(encoding="ascii"), source=f"du_decoding/codes/{name}.alist"), name
    generator, information, permutation = systematic_generator(matrix)
    if generator.shape[0] == 0:
        raise ConfigError(f"code {label!r}: H has full column rank, so the code holds only the zero word")
    return Code(label, matrix, generator, information, permutation)


if __name__ == "__main__":  # python -m du_decoding.codes: rewrite the shipped alist files
    from pathlib import Path

    folder = Path(__file__).with_name("codes")
    for code_name in CODES:
        parity = _build(code_name)
        (folder / f"{code_name}.alist").write_text(write_alist(parity), encoding="ascii")
        print(f"{code_name}: H {parity.shape[0]} x {parity.shape[1]}, rank {gf2_rank(parity)}, "
              f"{int(parity.sum())} edges")
