"""Benchmark 7, ``size``: the engine at size against the machine's GEMM limit (``make bench-size``).

    python benchmarks/run.py --only size [--quick]

For each case, the shipped example's recipe at a realistic size, trained by ``run_comparison`` in this
process, prints and stores per solver: the training time (compilation included, and apart), the
compilations, the arithmetic the schedule performs, the GFLOP/s it achieved, the time the same
arithmetic takes at the best GEMM rate of the case's shapes measured in the same run (the roofline),
their ratio, and the training program's memory (XLA's estimate for one compiled step).

Cases: sparse recovery n = 500 (the ``sparse-recovery`` example: DU-ISTA, TISTA, LISTA, ALISTA) and
n = 2000 (m = n / 2, 10 steps per stage; tied LISTA), ridge n = 1000 (m = 2000, DU-GD, depth 50, 2 steps
per stage), MIMO 64 x 64 QPSK (TPG; per-instance channels, so the roofline kernel is a batched matrix-vector product) and
LDPC decoding on the 576-bit 802.16e code (neural min-sum: gathers and segment sums, no GEMM, so no
roofline is given; its time is reported). Then the memory of one training step against the depth up
to D = 1000 for each backward mode (full, remat, truncated K = 16), compiled and not run.

How FLOPs are counted (from the shapes, per instance and per active iteration; multiply-add = 2):
forward and backward of the iteration's matrix products only; the instance sampling, the solver's
``prepare`` (TPG's per-instance LMMSE matrix, say), the loss, the optimiser and every elementwise
operation are left out, so the achieved rate is a lower bound and the ratio to the roofline an upper one.

* ``du-ista``, ``ista``, ``tista``, ``alista`` (``A``: m x n): ``A x`` and ``A^T r`` (or ``W r``), 2 mn each;
  the backward pass to ``x`` costs the same again: 8 mn.
* ``lista`` (``B``: n x m, ``S``: n x n): ``B y`` (2 nm) and ``S x`` (2 n^2) forward; backward
  ``dS`` (2 n^2), ``dx`` (2 n^2) and ``dB`` (2 nm): 4 nm + 6 n^2.
* ``dugd`` (ridge, Gram ``G = A^T A``: n x n): ``x G`` forward and ``dx G`` backward: 4 n^2.
* ``tpg`` (real-valued channel ``H``: M x N, M = 2 n_rx, N = 2 n_tx, per instance): ``H x`` and
  ``W r`` forward, the same backward: 8 MN.

The roofline rate of a case is the faster of XLA's (16 products in one jitted loop) and NumPy's on the
case's dominant shape, best of several repeats, measured here just before the case and again just
after it (the better of the two: on a shared machine one moment can be slow); when XLA's is the
lower the table says so. ``train`` includes compilation; the ratio is taken without it (``train - compile``)
and with it. Nothing is asserted: it measures.
"""

from __future__ import annotations

import time

import numpy as np

QUICK = ["train.depth=3", "train.steps_per_stage=2", "evaluation.batches=1", "evaluation.max_batches=1"]


def _case(name, experiment, overrides, solvers, flops, kernel, quick_overrides=()):
    return {"name": name, "experiment": experiment, "overrides": overrides, "solvers": solvers, "flops": flops,
            "kernel": kernel, "quick": list(quick_overrides)}


def _sparse_flops(label: str, o) -> float:
    n, m = o.n, o.m
    return 4 * n * m + 6 * n * n if label.startswith("lista") else 8 * m * n


def cases(quick: bool) -> list[dict]:
    sparse = lambda n: ("sparse-recovery", [f"problem.n={n}", f"problem.m={n // 2}"])  # noqa: E731
    return [
        _case("sparse recovery n=500", *sparse(20 if quick else 500), ["du-ista", "tista", "lista", "alista"],
              _sparse_flops,
              lambda o, b: [("gemm", (b, o.n), (o.n, o.m))]),
        _case("sparse recovery n=2000", "sparse-recovery",
              [f"problem.n={40 if quick else 2000}", f"problem.m={20 if quick else 1000}",
               "train.steps_per_stage=10"], ["du-ista", "tista", "lista-tied", "alista"], _sparse_flops,
              lambda o, b: [("gemm", (b, o.n), (o.n, o.m))]),
        _case("ridge n=1000", "ridge-theory",
              [f"problem.n={20 if quick else 1000}", f"problem.m={40 if quick else 2000}",
               "train.steps_per_stage=2"], ["dugd"], lambda label, o: 4 * o.n * o.n,
              lambda o, b: [("gemm", (b, o.n), (o.n, o.n))]),
        _case("MIMO 64x64 QPSK", "mimo",
              [f"problem.n_tx={8 if quick else 64}", f"problem.n_rx={8 if quick else 64}", "evaluation.sweep={}",
               "evaluation.batches=4", "evaluation.max_batches=4"], ["tpg"],
              lambda label, o: 8 * (2 * o.n_rx) * (2 * o.n_tx),
              lambda o, b: [("batched", (b, 2 * o.n_rx, 2 * o.n_tx), (b, 2 * o.n_tx))]),
        _case("LDPC 802.16e (576, 288)", "ldpc",
              [f"problem.code={'gallager-96-3-6' if quick else 'wimax-576-r12'}", "evaluation.sweep={}",
               "evaluation.batches=2", "evaluation.max_batches=2"], ["neural-min-sum"], None, None),
    ]


def _best_of(call, repeats: int) -> float:
    call()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_rates(kind: str, left: tuple, right: tuple, repeats: int = 20, products: int = 16) -> dict:
    """GFLOP/s of XLA and NumPy on products of the given shapes (float32), best of ``repeats``.

    Each timed call makes ``products`` products with different iterates: XLA's in one jitted
    loop (``lax.scan``; one call to dispatch, as in a training program), NumPy's in a Python loop.
    A single jitted product would count the call's dispatch as arithmetic time (about a fifth of
    it at n = 500 on 2 cores).
    """
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    a = rng.standard_normal(left, dtype=np.float32)
    b = rng.standard_normal(right, dtype=np.float32)
    # As in training, the operator stays and the iterate changes: GEMM (batch, q) @ (q, p) with the same
    # (q, p) and a new left operand each time; batched matrix-vector (batch, p, q) x (batch, q) with
    # the same matrices (per-instance channels, reused by every iteration) and a new vector each time.
    if kind == "gemm":
        flops = 2 * left[0] * left[1] * right[1]
        fixed, varying = b, rng.standard_normal((products,) + tuple(left), dtype=np.float32)
        product = lambda v, m: jnp.matmul(v, m)  # noqa: E731
        numpy_product = np.matmul
    else:
        flops = 2 * left[0] * left[1] * left[2]
        fixed, varying = a, rng.standard_normal((products,) + tuple(right), dtype=np.float32)
        product = lambda v, m: jnp.einsum("bpq,bq->bp", m, v)  # noqa: E731
        numpy_product = lambda v, m: np.matmul(m, v[..., None])  # noqa: E731

    @jax.jit
    def xla(stacked, fixed):
        def one(total, v):
            return total + product(v, fixed), None
        return jax.lax.scan(one, jnp.zeros(jax.eval_shape(product, stacked[0], fixed).shape, jnp.float32), stacked)[0]

    def numpy_call():
        for v in varying:
            numpy_product(v, fixed)

    stacked, kept = jnp.asarray(varying), jnp.asarray(fixed)
    seconds = {"xla": _best_of(lambda: xla(stacked, kept).block_until_ready(), repeats),
               "numpy": _best_of(numpy_call, repeats)}
    return {name: products * flops / s / 1e9 for name, s in seconds.items()}


def _iteration_steps(config) -> int:
    from du_framework.engine.loop import expand_schedule
    from du_framework.workbench.build import build_schedule

    stages = expand_schedule(build_schedule(config), config.train, config.train.depth)
    return sum(stage.active_depth * stage.steps for stage in stages)


def _program_bytes(config, label: str) -> int | None:
    from du_framework.engine import program_memory
    from du_framework.workbench.build import build_problem, build_schedule, build_solver

    problem = build_problem(config)
    entry = next(entry for entry in config.solvers if entry.label == label)
    solver = build_solver(entry, problem, config.train.depth)
    return program_memory(solver, problem, build_schedule(config), config.train)


def run_case(case: dict, quick: bool) -> dict:
    from du_framework.workbench.compare import run_comparison
    from du_framework.workbench.config import load_config, select_solvers

    overrides = case["overrides"] + (QUICK + case["quick"] if quick else [])
    config = select_solvers(load_config(overrides=overrides, experiment=case["experiment"]), case["solvers"])
    options, batch = config.problem.options, config.train.batch_size
    rates = None
    if case["kernel"]:
        (kind, left, right), = case["kernel"](options, batch)
        rates = gemm_rates(kind, left, right, 5 if quick else 20)
    comparison = run_comparison(config, progress=False)
    if case["kernel"]:  # again after training: the best of both, so one noisy moment does not set the roofline
        after = gemm_rates(kind, left, right, 5 if quick else 20)
        rates = {name: max(rate, after[name]) for name, rate in rates.items()}
    steps = _iteration_steps(config)
    rows = {}
    for label, result in comparison.results.items():
        compute = result.train_seconds - result.compile_seconds
        row = {"train_seconds": round(result.train_seconds, 3), "compile_seconds": round(result.compile_seconds, 3),
               "compilations": result.compilations, "program_bytes": _program_bytes(config, label),
               "final": {metric: float(np.asarray(values)[-1]) for metric, values in result.metrics.items()}}
        if case["flops"] is not None:
            flops = case["flops"](label, options) * batch * steps
            roofline = flops / (max(rates.values()) * 1e9)
            row.update(gflop=float(f"{flops / 1e9:.4g}"), achieved_gflops=float(f"{flops / compute / 1e9:.4g}"),
                       roofline_seconds=float(f"{roofline:.4g}"), over_roofline=round(compute / roofline, 2),
                       over_roofline_with_compile=round(result.train_seconds / roofline, 2))
        rows[label] = row
    return {"sizes": case["name"], "overrides": overrides, "batch_size": batch, "iteration_steps": steps,
            "gemm_gflops": None if rates is None else {k: round(v, 1) for k, v in rates.items()}, "solvers": rows}


def memory_against_depth(quick: bool) -> list[dict]:
    """Training-step memory of DU-ISTA (sparse recovery n=500) against the depth, per backward mode."""
    from du_framework import Stage
    from du_framework.engine import program_memory
    from du_framework.workbench.build import build_problem, build_solver
    from du_framework.workbench.config import load_config, select_solvers

    overrides = ["problem.n=20", "problem.m=10"] if quick else []
    config = select_solvers(load_config(overrides=overrides, experiment="sparse-recovery"), ["du-ista"])
    problem = build_problem(config)
    out = []
    for depth in ([4, 16] if quick else [16, 100, 1000]):
        modes = {"full": {}, "remat": {"remat": True},
                 "truncated K=16": {"backward": "truncated", "truncate": min(16, depth)}}
        solver = build_solver(config.solvers[0], problem, depth)
        out.append({"depth": depth, "program_bytes": {
            name: program_memory(solver, problem, [Stage(depth, 1)], batch_size=config.train.batch_size, **settings)
            for name, settings in modes.items()}})
    return out


def _mib(nbytes) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2 ** 20:.1f} MiB"


def bench_size(quick: bool) -> dict:
    """Every case (with ``quick``, the first at a tiny size: a smoke test), then memory against depth."""
    results = {}
    for case in [dict(cases(quick)[0], solvers=["du-ista", "alista"])] if quick else cases(quick):
        data = results[case["name"]] = run_case(case, quick)
        rates = data["gemm_gflops"]
        print(f"\n== 7. {case['name']} ({case['experiment']}, batch {data['batch_size']}, "
              f"{data['iteration_steps']} iteration-steps)")
        if rates:
            note = " (XLA below NumPy on this shape)" if rates["xla"] < rates["numpy"] else ""
            print(f"  GEMM roofline of the shape: XLA {rates['xla']:.1f}, NumPy {rates['numpy']:.1f} GFLOP/s{note}")
        for label, row in data["solvers"].items():
            line = (f"  {label:14s} train {row['train_seconds']:7.2f} s (compile {row['compile_seconds']:.2f} s, "
                    f"{row['compilations']} compilation(s)), memory {_mib(row['program_bytes'])}")
            if "gflop" in row:
                line += (f", {row['gflop']:.0f} GFLOP at {row['achieved_gflops']:.1f} GFLOP/s; roofline "
                         f"{row['roofline_seconds']:.2f} s, x{row['over_roofline']:.2f} "
                         f"(x{row['over_roofline_with_compile']:.2f} with compilation)")
            print(line)
    memory = memory_against_depth(quick)
    print("\n== 7b. training-step memory against depth (DU-ISTA, sparse recovery, compiled, not run)")
    for row in memory:
        print(f"  D={row['depth']:5d}  " + "  ".join(f"{name} {_mib(b)}" for name, b in row["program_bytes"].items()))
    return {"cases": results, "memory_against_depth": memory}
