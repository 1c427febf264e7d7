"""A small residual CNN denoiser (DnCNN-style), stacked over slots so that it follows the slot convention.

:class:`Denoiser` is ``D(z) = z - N(z)`` where ``N`` is ``layers`` 3 x 3 convolutions (``flax.nnx.Conv``, zero
padding) with ``channels`` feature maps and ReLU between them (Zhang et al.'s DnCNN, IEEE TIP 26(7), 2017, without
batch normalisation and much shallower). ``N``'s last convolution starts at zero, so an untrained ``D`` is the
identity and an unrolled method with it starts as its classical relative without a regulariser.

:func:`stacked_denoiser` builds ``P`` independent copies with ``nnx.vmap``: every parameter gains a leading axis of
``P`` slots, which is the kernel's convention for learned parameters (iteration ``k`` uses slot ``k mod P``;
``P = 1`` ties the weights across iterations, ``P = depth`` gives each iteration its own network), so slot
freezing, checkpoints and ensembles treat the network's weights like any learned array. :func:`apply_slot`
runs slot ``k``'s copy. The weights are plain ``nnx.Param`` in the learning-rate group ``lr`` and are left out of
reports (``report=False``); checkpoints keep them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["Denoiser", "shifted_matmul_conv", "stacked_denoiser", "apply_slot", "network_parameter_count"]


def _same_padding(size: int) -> tuple[int, int]:
    return (size - 1) // 2, size - 1 - (size - 1) // 2


def shifted_matmul_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                        dimension_numbers=None, feature_group_count=1, precision=None, preferred_element_type=None,
                        **unused):
    """``lax.conv_general_dilated`` for what ``nnx.Conv`` asks here (NHWC images, HWIO kernel, stride 1, no
    dilation, one group), as one matrix product over the ``kh * kw`` shifted copies of the padded input.

    Why: XLA's CPU backend runs the gradient of a convolution inside a loop (the unrolled ``lax.scan``) through a
    slow generic path, about 50 times slower than the same matrix product (measured on 64 x 64 images with 32
    channels); the shifted copies and the product differentiate into products and slices that stay fast.
    """
    del dimension_numbers, unused  # NHWC / HWIO, as nnx.Conv passes them; no sharding here
    if (any(s != 1 for s in window_strides) or any(d != 1 for d in (lhs_dilation or ()))
            or any(d != 1 for d in (rhs_dilation or ())) or feature_group_count != 1):
        raise ValueError("shifted_matmul_conv supports stride 1, no dilation and one feature group only")
    kh, kw = rhs.shape[0], rhs.shape[1]
    pads = [_same_padding(kh), _same_padding(kw)] if isinstance(padding, str) else list(padding)
    if isinstance(padding, str) and padding.upper() == "VALID":
        pads = [(0, 0), (0, 0)]
    padded = jnp.pad(lhs, [(0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)])
    height, width = padded.shape[1] - kh + 1, padded.shape[2] - kw + 1
    shifted = jnp.concatenate([padded[:, i:i + height, j:j + width, :] for i in range(kh) for j in range(kw)],
                              axis=-1)
    return jnp.einsum("nhwc,co->nhwo", shifted, rhs.reshape(kh * kw * rhs.shape[2], rhs.shape[3]),
                      precision=precision, preferred_element_type=preferred_element_type)


class Denoiser(nnx.Module):
    """``D(z) = z - N(z)`` on images ``(batch, s, s)``.

    Attributes:
        convs: the ``layers`` convolutions of ``N``: 1 -> channels -> ... -> channels -> 1.
    """

    def __init__(self, channels: int, layers: int, *, rngs: nnx.Rngs):
        widths = [1] + [channels] * (layers - 1) + [1]
        convs = []
        for i in range(layers):
            last = i == layers - 1
            convs.append(nnx.Conv(widths[i], widths[i + 1], (3, 3), padding="SAME", rngs=rngs,
                                  kernel_init=nnx.initializers.zeros if last else nnx.initializers.he_normal(),
                                  conv_general_dilated=shifted_matmul_conv))
        self.convs = nnx.List(convs)

    def __call__(self, z: jax.Array) -> jax.Array:
        h = z[..., None]
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = jax.nn.relu(h)
        return z - h[..., 0]


def stacked_denoiser(slots: int, channels: int, layers: int, seed: int) -> Denoiser:
    """``slots`` independent :class:`Denoiser` copies, each parameter stacked on a leading axis of ``slots``."""

    @nnx.split_rngs(splits=slots)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make(rngs):
        return Denoiser(channels, layers, rngs=rngs)

    denoiser = make(nnx.Rngs(seed))
    for _, variable in nnx.to_flat_state(nnx.state(denoiser, nnx.Param)):
        variable.set_metadata(report=False, doc="weights of the CNN denoiser")
    return denoiser


def apply_slot(denoiser: Denoiser, k: jax.Array, z: jax.Array) -> jax.Array:
    """The copy of slot ``k mod P`` applied to images ``z`` ``(batch, s, s)``."""
    graphdef, state = nnx.split(denoiser)
    slots = jax.tree.leaves(state)[0].shape[0]
    one = jax.tree.map(lambda leaf: jnp.asarray(leaf)[k % slots], state)  # a loaded checkpoint holds numpy arrays
    return nnx.merge(graphdef, one)(z)


def network_parameter_count(denoiser: Denoiser) -> int:
    """The number of learned weights of all the stacked copies."""
    return sum(int(jnp.size(leaf)) for leaf in jax.tree.leaves(nnx.state(denoiser, nnx.Param)))
