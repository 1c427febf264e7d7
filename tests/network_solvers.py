"""A network-holding solver for the tests: gradient descent plus a learned MLP correction per iteration."""

import dataclasses
from typing import Literal

import jax
import numpy as np
from flax import nnx

from du_framework import Network, Positive, QuadraticSolver, learned, option, per_iteration


class MLP(nnx.Module):
    """``n -> width -> n`` with a ReLU: two Linear layers kept in an ``nnx.List`` (integer path parts)."""

    def __init__(self, n: int, width: int, *, rngs: nnx.Rngs):
        self.layers = nnx.List([nnx.Linear(n, width, rngs=rngs), nnx.Linear(width, n, rngs=rngs)])

    def __call__(self, x):
        return self.layers[1](jax.nn.relu(self.layers[0](x)))


class GDNet(QuadraticSolver):
    """``x <- x - eta_t (H x - b) + 0.1 net_t(x)``: learned steps and an MLP correction."""

    @dataclasses.dataclass(frozen=True)
    class Options:
        width: int = option(16, ge=1, help="hidden width of the MLP")
        networks: Literal["shared", "per-iteration"] = option("shared", help="one MLP for all iterations, or one each")
        lr: float = option(0.01, gt=0, help="learning rate of eta_t")
        net_lr: float = option(0.003, gt=0, help="learning rate of the MLP's weights")

    name = "gd-net"
    description = "gradient descent with learned steps and a learned MLP correction"

    def __init__(self, options, *, problem, depth):
        super().__init__(options, problem=problem, depth=depth)
        self.eta = learned(np.full(depth, 1 / problem.spectrum_bounds()[1]), constraint=Positive(), doc="step eta_t")
        self.net = Network(MLP, problem.dim, options.width, slots=1 if options.networks == "shared" else depth,
                           lr="net_lr", doc=f"MLP 1x{options.width}")

    def step(self, problem, context, x, k):
        x = x - per_iteration(self.eta, k) * self.gradient(problem, context, x)
        return x + 0.1 * self.net.at(k)(x)


def kernel(solver, layer=0):
    """The stacked kernel of the MLP's layer ``layer``: shape ``(copies, in, out)``, host numpy."""
    return np.asarray(solver.net.module.layers[layer].kernel[...])
