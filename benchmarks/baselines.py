"""Hand-written DU-GD training programs that the framework is measured against.

Neither uses du-framework: they are what a researcher writes by hand for the
reference experiment (ridge n=50, m=100, lambda=3, A from numpy seed 0; DU-GD
with period T=4; incremental training over D=50 stages x 20 Adam steps; K=100
fresh instances per step).

* ``straightforward``: the book's loop transcribed to JAX. A Python loop over the
  iterations inside a jitted loss with the depth static (one compilation per
  depth), the gradient taken outside jit, one optimiser step per Python call;
  eta starts at 0 and Adam (lr 1e-3) descends the MSE itself.
* ``fused``: one XLA program for the whole schedule: a fixed-length scan over
  the iterations with the inactive ones masked, scanned over steps and stages,
  A^T A and A^T y formed once. It follows the framework's reference recipe
  (reciprocal steps rho = c/eta, Adam lr 1e-2 on log(MSE)), so that its time can
  be set beside the framework's for the same work.

Run as a script, each prints one JSON line: the learned eta, the training time
(and compile time where it is separate) and the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

N, M, LAM, DEPTH, PERIOD, STEPS, BATCH = 50, 100, 3.0, 50, 4, 20, 100


def reference_matrix(n: int = N, m: int = M, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((m, n))


def _ridge(n, m, lam, seed):
    A = reference_matrix(n, m, seed)
    H = A.T @ A + lam * np.eye(n)
    mu = np.linalg.eigvalsh(H)
    return A, np.linalg.solve(H, A.T), mu[0], mu[-1]


def straightforward(depth: int = DEPTH, steps: int = STEPS, seed: int = 1, n: int = N, m: int = M) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    A_np, pinv_np, _, _ = _ridge(n, m, LAM, 0)
    A = jnp.asarray(A_np, jnp.float32)
    pinv = jnp.asarray(pinv_np, jnp.float32)

    def loss(eta, y, t):
        x_opt = y @ pinv.T
        x = jnp.zeros((y.shape[0], n), jnp.float32)
        for i in range(t):  # unrolled in Python: t is static
            x = x - eta[i % PERIOD] * ((x @ A.T - y) @ A + LAM * x)
        return jnp.mean(jnp.sum((x - x_opt) ** 2, axis=1))

    loss_jit = jax.jit(loss, static_argnums=2)
    grad = jax.grad(loss_jit)  # outside jit, as the straightforward transcription does

    eta = jnp.zeros(PERIOD, jnp.float32)
    optimizer = optax.adam(1e-3)
    state = optimizer.init(eta)
    key = jax.random.key(seed)
    start = time.perf_counter()
    for t in range(1, depth + 1):
        for _ in range(steps):
            key, sample = jax.random.split(key)
            y = jax.random.normal(sample, (BATCH, m), jnp.float32)
            g = grad(eta, y, t)
            updates, state = optimizer.update(g, state)
            eta = optax.apply_updates(eta, updates)
    eta.block_until_ready()
    return {"eta": np.asarray(eta, np.float64).tolist(), "train_seconds": time.perf_counter() - start}


def build_fused(depth: int = DEPTH, steps: int = STEPS, n: int = N, m: int = M):
    """``(program, arguments)``: the whole schedule as one jitted function."""
    import jax
    import jax.numpy as jnp
    import optax

    A_np, pinv_np, mu_min, mu_max = _ridge(n, m, LAM, 0)
    A = jnp.asarray(A_np, jnp.float32)
    gram = jnp.asarray(A_np.T @ A_np, jnp.float32)
    pinv = jnp.asarray(pinv_np, jnp.float32)
    unit = 2.0 / (mu_min + mu_max)
    optimizer = optax.adam(1e-2)

    def log_mse(rho, y, active):
        aty, x_opt = y @ A, y @ pinv.T
        eta = unit / rho

        def iteration(x, i):
            moved = x - eta[i % PERIOD] * (x @ gram - aty + LAM * x)
            return jnp.where(i < active, moved, x), None

        x, _ = jax.lax.scan(iteration, jnp.zeros_like(aty), jnp.arange(depth))
        return jnp.log(jnp.mean(jnp.sum((x - x_opt) ** 2, axis=1)))

    def program(rho, key):
        def stage(carry, active):
            def step(carry, _):
                rho, state, key = carry
                key, sample = jax.random.split(key)
                y = jax.random.normal(sample, (BATCH, m), jnp.float32)
                g = jax.grad(log_mse)(rho, y, active)
                g = jnp.where(jnp.arange(PERIOD) < active, g, 0.0)  # slots not used yet stay put
                updates, state = optimizer.update(g, state)
                updates = jnp.where(jnp.arange(PERIOD) < active, updates, 0.0)
                return (optax.apply_updates(rho, updates), state, key), None

            carry, _ = jax.lax.scan(step, carry, None, length=steps)
            return carry, None

        (rho, _, _), _ = jax.lax.scan(stage, (rho, optimizer.init(rho), key), jnp.arange(1, depth + 1))
        return unit / rho

    return jax.jit(program), (jnp.ones(PERIOD, jnp.float32), jax.random.key(1))


def fused(depth: int = DEPTH, steps: int = STEPS, n: int = N, m: int = M, repeats: int = 1) -> dict:
    program, args = build_fused(depth, steps, n, m)
    start = time.perf_counter()
    compiled = program.lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        eta = compiled(*args).block_until_ready()
        runs.append(time.perf_counter() - start)
    stats = compiled.memory_analysis()
    program_bytes = stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
    return {"eta": np.asarray(eta, np.float64).tolist(), "compile_seconds": compile_seconds,
            "run_seconds": min(runs), "program_bytes": int(program_bytes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["straightforward", "fused"])
    parser.add_argument("--depth", type=int, default=DEPTH)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.which == "straightforward":
        out = straightforward(args.depth, args.steps)
    else:
        out = fused(args.depth, args.steps, repeats=args.repeats)
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
