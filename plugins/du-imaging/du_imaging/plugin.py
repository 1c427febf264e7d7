"""Hook implementations of the ``du-imaging`` plugin."""

from importlib.resources import files

from du_framework import Experiment, hookimpl

from .problem import ImageRestoration
from .solvers import ADMMNet, DUPGD, HQSNet, PGDNet, TVADMM, TVPGD, Wiener


@hookimpl
def register_problems(register):
    register(ImageRestoration)


@hookimpl
def register_solvers(register):
    for solver in (Wiener, TVPGD, TVADMM, DUPGD, PGDNet, HQSNet, ADMMNet):
        register(solver)


def _example(name: str) -> str:
    return files(__package__).joinpath("examples", name).read_text(encoding="utf-8")


@hookimpl
def register_experiments(register):
    register(Experiment("deblur", _example("deblur.toml"),
                        "64 x 64 Gaussian deblurring at noise 0.01, held-out images: Wiener, TV-PGD, TV-ADMM, "
                        "DU-PGD, PGD-Net, HQS-Net"))
    register(Experiment("mri", _example("mri.toml"),
                        "64 x 64 subsampled-Fourier MRI (4x Cartesian), held-out images: least-squares, TV-PGD, "
                        "TV-ADMM, ADMM-Net, PGD-Net"))
