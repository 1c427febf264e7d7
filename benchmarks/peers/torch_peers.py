"""The peers of ``make bench-peers``: DU-ISTA trained in PyTorch, hand-written and through DeepInverse.

    .venv-peers/bin/python benchmarks/peers/torch_peers.py TASK.npz OUT_FOLDER [--only eager,compile,deepinv]

Runs in its own environment (``.venv-peers``: torch, torchvision and deepinv, never dependencies of
du-framework). ``TASK.npz``, written by ``benchmarks/peers.py``, holds the shared operator ``A``
(m x n), the noise variance, the sparsity ``p``, the initial steps and thresholds, the learning
rates and the schedule (incremental: for t = 1..D, ``steps`` Adam steps on the first t iterations,
one optimiser state throughout). Each peer trains the same recipe from the same initialisation on
fresh instances of the same distribution (Bernoulli-Gaussian x, y = A x + w) and writes its learned
``beta`` and ``theta`` to ``OUT/<peer>.npz`` and its timings to ``OUT/<peer>.json``; the quality of
every peer is scored afterwards by one evaluator on the same instances (``benchmarks/peers.py``).

* ``eager``: a plain PyTorch loop, the recursion written out.
* ``compile``: the same loss under ``torch.compile`` (one graph per active depth, 16 compilations).
* ``deepinv``: DeepInverse's unfolded proximal gradient (``deepinv.optim.PGD`` with ``unfold=True``, an
  ``L2`` data fidelity, an ``L1Prior`` and per-iteration trainable ``stepsize`` and ``lambda``, started
  from zero), trained by a plain torch loop, its active depth set per stage; its threshold is
  ``stepsize * lambda``, so ``lambda`` starts at ``theta_0 / beta_0``. Before training, its output is
  checked against the hand-written recursion on one batch (refused beyond a relative 1e-3).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def load_task(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


class Sampler:
    """Fresh instances of the task's distribution, drawn in torch (float32)."""

    def __init__(self, task: dict, seed: int):
        self.A = torch.tensor(task["A"], dtype=torch.float32)
        self.p, self.sigma = float(task["p"]), float(np.sqrt(task["sigma2"]))
        self.batch = int(task["batch_size"])
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self):
        m, n = self.A.shape
        g = self.generator
        support = torch.rand(self.batch, n, generator=g) < self.p
        x = torch.where(support, torch.randn(self.batch, n, generator=g), torch.zeros(()))
        y = x @ self.A.T + self.sigma * torch.randn(self.batch, m, generator=g)
        return x, y


def soft(r, threshold):
    return torch.sign(r) * torch.clamp(torch.abs(r) - threshold, min=0.0)


def du_ista(A, y, beta, theta, depth: int):
    x = torch.zeros(y.shape[0], A.shape[1])
    for k in range(depth):
        x = soft(x + beta[k] * ((y - x @ A.T) @ A), theta[k])
    return x


def _optimiser(task, beta, theta):
    return torch.optim.Adam([{"params": [beta], "lr": float(task["lr"])},
                             {"params": [theta], "lr": float(task["threshold_lr"])}])


def train_hand_written(task: dict, compiled: bool) -> tuple[dict, dict]:
    depth, steps = int(task["depth"]), int(task["steps_per_stage"])
    sample = Sampler(task, seed=int(task["seed"]))
    beta = torch.tensor(task["beta0"], dtype=torch.float32, requires_grad=True)
    theta = torch.tensor(task["theta0"], dtype=torch.float32, requires_grad=True)
    optimiser = _optimiser(task, beta, theta)
    A = sample.A

    def loss_of(x, y, t):
        return torch.sum((du_ista(A, y, beta, theta, t) - x) ** 2, dim=1).mean()

    loss_fn = torch.compile(loss_of, dynamic=False) if compiled else loss_of
    started = time.perf_counter()
    for t in range(1, depth + 1):
        for _ in range(steps):
            x, y = sample()
            optimiser.zero_grad(set_to_none=True)
            loss = loss_fn(x, y, t)
            loss.backward()
            optimiser.step()
    seconds = time.perf_counter() - started
    return ({"beta": beta.detach().numpy(), "theta": theta.detach().numpy()},
            {"train_seconds": seconds, "final_loss": float(loss)})


def _deepinv_model(task: dict, depth: int):
    """DeepInverse's unfolded PGD with per-iteration trainable step and lambda (threshold = step * lambda)."""
    from deepinv.optim import PGD
    from deepinv.optim.data_fidelity import L2
    from deepinv.optim.prior import L1Prior

    beta0, theta0 = task["beta0"].astype(np.float64), task["theta0"].astype(np.float64)
    return PGD(data_fidelity=L2(), prior=L1Prior(), stepsize=[float(b) for b in beta0],
               lambda_reg=[float(t / b) for t, b in zip(theta0, beta0)], max_iter=depth, unfold=True,
               trainable_params=["stepsize", "lambda"], early_stop=False)


def _set_depth(model, depth: int) -> None:
    model.max_iter = depth
    if hasattr(model, "fixed_point"):
        model.fixed_point.max_iter = depth


def train_deepinv(task: dict) -> tuple[dict, dict]:
    import deepinv as dinv

    depth, steps = int(task["depth"]), int(task["steps_per_stage"])
    sample = Sampler(task, seed=int(task["seed"]))
    A = sample.A
    physics = dinv.physics.LinearPhysics(A=lambda x: x @ A.T, A_adjoint=lambda y: y @ A)
    model = _deepinv_model(task, depth)
    stepsize, lam = model.params_algo["stepsize"], model.params_algo["lambda"]
    # The same recursion as the hand-written loop before training (same start, same parameters).
    x, y = sample()
    zero = torch.zeros_like(x)
    with torch.no_grad():
        ours = du_ista(A, y, torch.tensor(task["beta0"], dtype=torch.float32),
                       torch.tensor(task["theta0"], dtype=torch.float32), depth)
        theirs = model(y, physics, init=zero)
    agreement = float(torch.max(torch.abs(ours - theirs)) / torch.max(torch.abs(ours)))
    if agreement > 1e-3:
        raise RuntimeError(f"DeepInverse's PGD does not compute DU-ISTA's recursion here (relative difference "
                           f"{agreement:.2e})")
    optimiser = torch.optim.Adam([{"params": list(stepsize), "lr": float(task["lr"])},
                                  {"params": list(lam), "lr": float(task["threshold_lr"])}])
    started = time.perf_counter()
    for t in range(1, depth + 1):
        _set_depth(model, t)
        for _ in range(steps):
            x, y = sample()
            optimiser.zero_grad(set_to_none=True)
            loss = torch.sum((model(y, physics, init=torch.zeros_like(x)) - x) ** 2, dim=1).mean()
            loss.backward()
            optimiser.step()
    seconds = time.perf_counter() - started
    beta = np.array([float(s) for s in stepsize])
    return ({"beta": beta, "theta": beta * np.array([float(v) for v in lam])},
            {"train_seconds": seconds, "final_loss": float(loss), "deepinv": dinv.__version__,
             "recursion_agreement": agreement})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--only", default="eager,compile,deepinv")
    args = parser.parse_args(argv)
    task = load_task(args.task)
    torch.manual_seed(int(task["seed"]))
    args.out.mkdir(parents=True, exist_ok=True)
    runners = {"eager": lambda: train_hand_written(task, compiled=False),
               "compile": lambda: train_hand_written(task, compiled=True),
               "deepinv": lambda: train_deepinv(task)}
    for name in args.only.split(","):
        try:
            params, facts = runners[name]()
        except Exception as error:  # noqa: BLE001 - a peer that does not run here is reported, not fatal
            facts, params = {"error": f"{type(error).__name__}: {error}"[:2000]}, None
        facts.update(torch=torch.__version__, threads=torch.get_num_threads())
        if params is not None:
            np.savez(args.out / f"{name}.npz", **params)
        (args.out / f"{name}.json").write_text(json.dumps(facts, indent=1) + "\n")
        print(name, json.dumps(facts), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
