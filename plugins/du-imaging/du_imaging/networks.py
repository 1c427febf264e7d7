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

__all__ = ["Denoiser", "stacked_denoiser", "apply_slot", "network_parameter_count"]


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
                                  kernel_init=nnx.initializers.zeros if last else nnx.initializers.he_normal()))
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
    one = jax.tree.map(lambda leaf: leaf[k % slots], state)
    return nnx.merge(graphdef, one)(z)


def network_parameter_count(denoiser: Denoiser) -> int:
    """The number of learned weights of all the stacked copies."""
    return sum(int(jnp.size(leaf)) for leaf in jax.tree.leaves(nnx.state(denoiser, nnx.Param)))
