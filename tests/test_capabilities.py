"""The default methods of the shipped capabilities, against float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from du_framework.capabilities import LinearObservation


class Observed(LinearObservation):
    """A bare linear observation model around a given operator (shared, or one per instance)."""

    def __init__(self, matrix):
        self.matrix = jnp.asarray(matrix, jnp.float32)
        self.per_instance_operator = self.matrix.ndim == 3

    def operator(self, instance=None):
        return self.matrix

    def lipschitz_bound(self):
        return float(np.linalg.norm(np.asarray(self.matrix, np.float64), 2) ** 2)


def _regularised(matrix, ridge):
    """``A^T (A A^T + ridge I)^{-1}`` in float64 (per instance along a leading axis)."""
    a = np.asarray(matrix, np.float64)
    rows = a @ np.swapaxes(a, -1, -2) + ridge * np.eye(a.shape[-2])
    return np.swapaxes(np.linalg.solve(rows, a), -1, -2)


def _rank_deficient(rng):
    # 6 rows from a 3-dimensional row space: A A^T (6 x 6) has rank 3.
    return rng.standard_normal((6, 3)) @ rng.standard_normal((3, 4))


def test_ridge_gives_the_finite_regularised_inverse_when_the_rows_are_dependent():
    rng = np.random.default_rng(0)
    matrix = _rank_deficient(rng).astype(np.float32)
    assert np.linalg.matrix_rank(matrix.astype(np.float64) @ matrix.T.astype(np.float64)) == 3
    w = np.asarray(Observed(matrix).pseudo_inverse(None, ridge=0.1), np.float64)
    assert np.all(np.isfinite(w)) and w.shape == (4, 6)
    expected = _regularised(matrix, 0.1)
    np.testing.assert_allclose(w, expected, rtol=2e-4, atol=2e-5)
    # The push-through identity: the same matrix as (A^T A + ridge I)^{-1} A^T.
    a = matrix.astype(np.float64)
    np.testing.assert_allclose(expected, np.linalg.solve(a.T @ a + 0.1 * np.eye(4), a.T), rtol=1e-9, atol=1e-12)
    # apply_pseudo_inverse passes the ridge on.
    r = rng.standard_normal((5, 6)).astype(np.float32)
    applied = np.asarray(Observed(matrix).apply_pseudo_inverse(None, jnp.asarray(r), ridge=0.1), np.float64)
    np.testing.assert_allclose(applied, r.astype(np.float64) @ expected.T, rtol=2e-4, atol=2e-5)


def test_ridge_per_instance_operators():
    rng = np.random.default_rng(1)
    matrices = np.stack([_rank_deficient(rng) for _ in range(3)]).astype(np.float32)
    w = np.asarray(Observed(matrices).pseudo_inverse({"A": matrices}, ridge=0.05), np.float64)
    assert w.shape == (3, 4, 6) and np.all(np.isfinite(w))
    np.testing.assert_allclose(w, _regularised(matrices, 0.05), rtol=5e-4, atol=5e-5)


def test_no_ridge_is_the_unregularised_pseudo_inverse_bit_for_bit():
    matrix = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    model = Observed(matrix)
    a = jnp.asarray(matrix)
    before = jnp.swapaxes(jnp.linalg.solve(a @ a.T, a), -1, -2)  # the formula before the ridge existed
    np.testing.assert_array_equal(np.asarray(model.pseudo_inverse(None)), np.asarray(before))
    np.testing.assert_array_equal(np.asarray(model.pseudo_inverse(None, ridge=0.0)), np.asarray(before))
    np.testing.assert_allclose(np.asarray(before, np.float64), np.linalg.pinv(matrix.astype(np.float64)),
                               rtol=1e-4, atol=1e-5)
    jitted = jax.jit(lambda m: Observed(m).pseudo_inverse(None, ridge=0.0))(a)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(before), rtol=1e-6)


@pytest.mark.parametrize("ridge", [-1e-3, float("nan"), float("inf"), "0.1"])
def test_a_bad_ridge_is_refused_by_name(ridge):
    with pytest.raises(ValueError, match=r"ridge must be a finite number >= 0"):
        Observed(np.eye(2)).pseudo_inverse(None, ridge=ridge)
