"""A small residual CNN denoiser (DnCNN-style), stacked over slots so that it follows the slot convention.

:class:`Denoiser` is ``D(z) = z - N(z)`` where ``N`` is ``layers`` 3 x 3 convolutions (``flax.nnx.Conv``, zero
padding) with ``channels`` feature maps and ReLU between them (Zhang et al.'s DnCNN, IEEE TIP 26(7), 2017, without
batch normalisation and much shallower). ``N``'s last convolution starts at zero, so an untrained ``D`` is the
identity and an unrolled method with it starts as its classical relative without a regulariser.

:func:`denoiser_network` holds ``P`` independent copies as a :class:`du_framework.Network` (iteration ``k`` uses
copy ``k mod P``; ``P = 1`` ties the weights across iterations, ``P = depth`` gives each iteration its own), under
the kernel's policy for networks: learning-rate group ``lr``, weights drawn from each training run's key, slot
freezing, checkpoints and ensembles; reports leave the weights out and summarise the network.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from du_framework import Network

__all__ = ["Denoiser", "shifted_matmul_conv", "denoiser_network", "network_parameter_count"]


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


def denoiser_network(slots: int, options) -> Network:
    """The solver's CNN as a :class:`du_framework.Network` of ``slots`` :class:`Denoiser` copies (1: tied across
    iterations), in the learning-rate group ``lr``; a training run draws its weights from the run's key."""
    return Network(Denoiser, options.channels, options.layers, slots=slots, lr="lr", seed=options.seed,
                   doc=f"CNN {options.layers}x{options.channels}")


def network_parameter_count(network: Network) -> int:
    """The number of learned weights of all the copies."""
    return sum(int(jnp.size(leaf)) for leaf in jax.tree.leaves(nnx.state(network, nnx.Param)))
