"""Isotropic total variation and its proximal operator, by a fixed number of dual iterations.

``TV(x) = sum_ij sqrt((D_h x)_ij^2 + (D_v x)_ij^2)`` with forward differences and a Neumann boundary (the last
difference of each row and column is zero). The proximal operator

    prox_{w TV}(z) = argmin_x 1/2 ||x - z||^2 + w TV(x)

is computed through its dual (Chambolle, J. Math. Imaging Vision 20, 2004): ``x = z - D^T q`` where ``q`` (two
fields) minimises ``1/2 ||z - D^T q||^2`` subject to ``|q_ij| <= w``; the dual is solved by ``iterations`` steps
of Beck and Teboulle's fast gradient projection (FGP, IEEE Trans. Image Processing 18(11), 2009) with step
``1/8`` (``||D||^2 <= 8``) from ``q = 0``. A fixed count keeps the operator differentiable and its cost known;
the result is the exact prox only in the limit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["gradient", "gradient_adjoint", "total_variation", "tv_prox"]


def gradient(x: jax.Array) -> jax.Array:
    """Forward differences of images ``(..., s, s)``: shape ``(..., 2, s, s)`` (horizontal, vertical)."""
    horizontal = jnp.concatenate([x[..., :, 1:] - x[..., :, :-1], jnp.zeros_like(x[..., :, :1])], axis=-1)
    vertical = jnp.concatenate([x[..., 1:, :] - x[..., :-1, :], jnp.zeros_like(x[..., :1, :])], axis=-2)
    return jnp.stack([horizontal, vertical], axis=-3)


def gradient_adjoint(q: jax.Array) -> jax.Array:
    """``D^T q`` (minus the discrete divergence): ``(..., 2, s, s) -> (..., s, s)``."""
    q = jnp.asarray(q)
    h, v = q[..., 0, :, :], q[..., 1, :, :]
    zero_col, zero_row = jnp.zeros_like(h[..., :, :1]), jnp.zeros_like(v[..., :1, :])
    h = h.at[..., :, -1].set(0)
    v = v.at[..., -1, :].set(0)
    dh = jnp.concatenate([zero_col, h[..., :, :-1]], axis=-1) - h
    dv = jnp.concatenate([zero_row, v[..., :-1, :]], axis=-2) - v
    return dh + dv


def total_variation(x: jax.Array) -> jax.Array:
    """Isotropic TV of each image ``(..., s, s) -> (...)``."""
    return jnp.sum(jnp.sqrt(jnp.sum(gradient(x) ** 2, axis=-3)), axis=(-2, -1))


def _project(q, weight):
    # sqrt of a floor, not of 0: a zero dual field (the start) would otherwise give a NaN gradient
    magnitude = jnp.sqrt(jnp.maximum(jnp.sum(q ** 2, axis=-3, keepdims=True), jnp.finfo(q.dtype).tiny))
    return q * (weight / jnp.maximum(weight, magnitude))


def tv_prox(z: jax.Array, weight: jax.Array, iterations: int) -> jax.Array:
    """``prox_{weight TV}(z)`` of images ``(batch, s, s)`` by ``iterations`` FGP steps on the dual.

    ``weight`` (``>= 0``) is a scalar or one value per image, shape ``(batch,)``.
    """
    weight = jnp.asarray(weight, z.dtype)
    weight = weight.reshape(weight.shape + (1, 1, 1)) if weight.ndim else weight
    q = jnp.zeros(z.shape[:-2] + (2,) + z.shape[-2:], z.dtype)

    def body(_, carry):
        q, r, t = carry
        q_next = _project(r + gradient(z - gradient_adjoint(r)) / 8, weight)
        t_next = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        r = q_next + ((t - 1) / t_next) * (q_next - q)
        return q_next, r, t_next

    q, _, _ = jax.lax.fori_loop(0, iterations, body, (q, q, jnp.ones((), z.dtype)))
    return z - gradient_adjoint(q)
