"""The restored images side by side: the target, the degraded observation and each solver's estimate.

``unfold compare`` saves it as ``reconstructions.png`` in the run folder (through
:meth:`~du_framework.Problem.figures`); :func:`reconstructions_figure` draws it for any dict of solvers.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["degraded_image", "restore", "reconstructions_figure"]


def degraded_image(problem, instance) -> np.ndarray:
    """What a viewer of the observation sees, ``(batch, s, s)``: the blurred or masked image itself, or for MRI the
    zero-filled reconstruction ``A^T y``."""
    y = instance["y"]
    if problem.kind == "mri":
        return np.asarray(problem.image(problem.adjoint(instance, y)))
    return np.asarray(problem.observation_image(y))


def restore(solver, problem, instance) -> np.ndarray:
    """The solver's final estimate on ``instance``, ``(batch, s, s)``."""
    from flax import nnx

    from du_framework.engine import unroll

    graphdef, state = nnx.split(solver)
    # parameters loaded from a checkpoint are numpy arrays, which a traced iteration index cannot index
    solver = nnx.merge(graphdef, jax.tree.map(jax.numpy.asarray, state))
    estimate, _ = unroll(solver, problem, instance)
    return np.asarray(problem.image(estimate))


def _psnr(image, target):
    return 10 * np.log10(1.0 / max(float(np.mean((image - target) ** 2)), 1e-30))


def reconstructions_figure(problem, solvers: dict, *, count: int = 2, seed: int = 0):
    """A matplotlib figure: one row per held-out patch (``count`` of them, drawn from ``seed``), columns the
    target, the degraded image and each solver's estimate, each titled with its PSNR."""
    from du_framework.workbench.figures import pyplot

    plt = pyplot()
    held = problem.held_out()
    instance = held.sample(jax.random.key(seed), count)
    target = np.asarray(held.image(instance["target"]))
    columns = [("target", target, None), ("degraded", degraded_image(held, instance), True)]
    columns += [(label, restore(solver, held, instance), True) for label, solver in solvers.items()]
    fig, axes = plt.subplots(count, len(columns), figsize=(1.6 * len(columns), 1.75 * count), squeeze=False)
    for row in range(count):
        for col, (label, images, scored) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(np.clip(images[row], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            lines = [label] if row == 0 else []
            if scored:
                lines.append(f"{_psnr(images[row], target[row]):.2f} dB")
            ax.set_title("\n".join(lines), fontsize=7)
    fig.tight_layout()
    return fig
