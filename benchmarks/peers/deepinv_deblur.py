"""DeepInverse's unrolled PGD with a DnCNN prior on du-imaging's deblurring task (``make bench-peers``).

    .venv-peers/bin/python benchmarks/peers/deepinv_deblur.py TASK.npz OUT.npz

Runs in the peers' own environment. ``TASK.npz``, written by ``benchmarks/peers_deblur.py``, holds the blur's
transfer function (the circular convolution du-imaging applies by FFT), the training batches (degraded and
clean patches, drawn from du-imaging's training distribution), the held-out degraded patches to restore, the
depth, the initial step and the learning rates of ``pgd-net``'s recipe. The model is ``deepinv.optim.PGD``
with ``unfold=True``, an ``L2`` data fidelity and a ``PnP`` prior whose denoiser is ``deepinv.models.DnCNN``
of pgd-net's size (4 layers of 32 feature maps, 19,105 weights, residual, no pretrained weights, its last
convolution set to zero as pgd-net's is, so that both start as gradient descent), tied across iterations,
started at ``A^T y``; trainable: the per-iteration steps and the denoiser. Trained by a plain torch
loop with Adam over the same number of batches as pgd-net; writes the restored held-out patches and the
training time, parameter count and peak memory (RSS) to ``OUT.npz``.
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import torch


def main(task_path: str, out_path: str) -> int:
    import deepinv as dinv
    from deepinv.models import DnCNN
    from deepinv.optim import PGD
    from deepinv.optim.data_fidelity import L2
    from deepinv.optim.prior import PnP

    with np.load(task_path, allow_pickle=False) as data:
        task = {key: data[key] for key in data.files}
    torch.manual_seed(int(task["seed"]))
    spectrum = torch.complex(torch.tensor(task["spectrum_re"], dtype=torch.float32),
                             torch.tensor(task["spectrum_im"], dtype=torch.float32))

    def forward(x):
        return torch.real(torch.fft.ifft2(spectrum * torch.fft.fft2(x)))

    def adjoint(y):
        return torch.real(torch.fft.ifft2(torch.conj(spectrum) * torch.fft.fft2(y)))

    physics = dinv.physics.LinearPhysics(A=forward, A_adjoint=adjoint)
    depth = int(task["depth"])
    denoiser = DnCNN(in_channels=1, out_channels=1, depth=int(task["layers"]), nf=int(task["channels"]),
                     pretrained=None)
    with torch.no_grad():  # as pgd-net's last convolution: an untrained network is the identity (residual DnCNN)
        denoiser.out_conv.weight.zero_()
        if denoiser.out_conv.bias is not None:
            denoiser.out_conv.bias.zero_()
    model = PGD(data_fidelity=L2(), prior=PnP(denoiser=denoiser), stepsize=[float(task["eta0"])] * depth,
                g_param=[float(task["noise"])] * depth, max_iter=depth, unfold=True, trainable_params=["stepsize"],
                early_stop=False)
    steps = list(model.params_algo["stepsize"])
    optimiser = torch.optim.Adam([{"params": list(denoiser.parameters()), "lr": float(task["lr"])},
                                  {"params": steps, "lr": float(task["step_lr"])}])
    side = int(task["size"])
    train_y = torch.tensor(task["train_y"], dtype=torch.float32)
    train_x = torch.tensor(task["train_x"], dtype=torch.float32)
    started = time.perf_counter()
    for y, x in zip(train_y, train_x):
        optimiser.zero_grad(set_to_none=True)
        estimate = model(y.reshape(-1, 1, side, side), physics)
        loss = torch.mean((estimate.reshape(x.shape) - x) ** 2)
        loss.backward()
        optimiser.step()
    seconds = time.perf_counter() - started
    with torch.no_grad():
        test_y = torch.tensor(task["test_y"], dtype=torch.float32)
        restored = model(test_y.reshape(-1, 1, side, side), physics).reshape(test_y.shape[0], -1).numpy()
    np.savez(out_path, restored=restored, train_seconds=seconds,
             parameters=sum(p.numel() for p in denoiser.parameters()) + depth,
             peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
             final_loss=float(loss), steps=np.array([float(s) for s in steps]),
             versions=np.array([torch.__version__, dinv.__version__]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
