"""Benchmark 6, ``families``: MIMO detection and LDPC decoding at size, and the ``ldpc`` package as a peer.

    python benchmarks/run.py --only families [--quick]

1. MIMO detection, 64 x 64 QPSK (i.i.d. Rayleigh per instance, SNR drawn in [10, 20] dB, depth 10):
   ``tpg`` and ``oamp-net`` trained with the ``mimo`` example's recipe, against ``lmmse`` and
   ``oamp``; per solver the training time (compilation apart), the symbol error rate at t = 10 on
   fresh instances, and the detection throughput (instances per second of one compiled batch of
   1000, depth 10, after warm-up).
2. LDPC decoding, the (576, 288) IEEE 802.16e code: ``neural-min-sum`` trained as in the ``ldpc``
   example; decoding throughput (codewords per second, 10 iterations, batch 2000) of ``bp``,
   ``min-sum`` and ``normalized-min-sum`` against the ``ldpc`` package's ``BpDecoder`` (C++, one
   frame per call, parallel schedule, ``max_iter = 10``) on the same channel LLRs. ldpc stops a
   frame once its syndrome is met and cannot be told not to, so it is measured at 1 dB, where most
   frames run all 10 iterations, and at 2.5 dB; the table gives the iterations it ran on average
   and the throughput per iteration, which is the fair comparison.

Nothing is asserted: it measures. Ratios are of numbers measured in the same run.
"""

from __future__ import annotations

import time

import numpy as np

MIMO_SIZE = {"quick": (8, 8), "full": (64, 64)}
LDPC_CODE = {"quick": "gallager-96-3-6", "full": "wimax-576-r12"}


def _best_of(call, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``call`` (its result is waited for)."""
    import jax

    jax.block_until_ready(call())  # warm-up: compilation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        best = min(best, time.perf_counter() - start)
    return best


def _forward(solver, problem, instance):
    """A compiled call of ``solver`` on ``instance`` (all its iterations): the final estimate."""
    import jax
    from flax import nnx

    from du_framework.engine import unroll

    graph, state = nnx.split(solver)
    step = jax.jit(lambda s, i: unroll(nnx.merge(graph, s), problem, i)[0])
    return lambda: step(state, instance)


def _compare(experiment: str, overrides: list[str]):
    from du_framework.workbench.compare import run_comparison
    from du_framework.workbench.config import load_config

    config = load_config(overrides=overrides, experiment=experiment)
    return config, run_comparison(config, progress=False)


def _trained_rows(comparison, metric: str) -> dict:
    rows = {}
    for label, result in comparison.results.items():
        rows[label] = {"train_seconds": round(result.train_seconds, 3),
                       "compile_seconds": round(result.compile_seconds, 3),
                       metric: float(np.asarray(result.metrics[metric])[-1])}
    return rows


def _built(experiment: str, overrides: list[str]):
    """The problem and the (untrained) solvers by label of ``experiment`` with ``overrides``: for timing
    a forward pass, whose cost does not depend on the learned values."""
    from du_framework.workbench.build import build_problem, build_solvers
    from du_framework.workbench.config import load_config

    config = load_config(overrides=overrides, experiment=experiment)
    problem = build_problem(config)
    solvers = build_solvers(config, problem)
    return problem, {entry.label: solver for entry, solver in zip(config.solvers, solvers)}


def bench_mimo(quick: bool) -> dict:
    import jax

    n_tx, n_rx = MIMO_SIZE["quick" if quick else "full"]
    overrides = [f"problem.n_tx={n_tx}", f"problem.n_rx={n_rx}", "evaluation.sweep={}",
                 f"evaluation.max_batches={2 if quick else 10}", f"evaluation.batches={2 if quick else 10}"]
    if quick:
        overrides += ["train.depth=3", "train.steps_per_stage=3"]
    config, comparison = _compare("mimo", overrides)
    rows = _trained_rows(comparison, "ser")
    problem, solvers = _built("mimo", overrides)
    batch = 200 if quick else 1000
    instance = problem.sample(jax.random.key(7), batch)
    for label in rows:
        seconds = _best_of(_forward(solvers[label], problem, instance), 3 if quick else 10)
        rows[label]["instances_per_second"] = round(batch / seconds, 1)
    print(f"\n== 6a. MIMO detection {n_tx} x {n_rx} QPSK, depth {config.train.depth}")
    for label, row in rows.items():
        print(f"  {label:9s} train {row['train_seconds']:6.2f} s (compile {row['compile_seconds']:.2f} s)  "
              f"SER at t={config.train.depth} {row['ser']:.3e}  {row['instances_per_second']:>10.0f} instances/s")
    return {"sizes": f"{n_tx} x {n_rx} qpsk, depth {config.train.depth}", "solvers": rows}


def _ldpc_peer(parity_check, llr: np.ndarray, iterations: int, method: str):
    """The ``ldpc`` package's BpDecoder on every row of ``llr``: seconds and the mean iterations it ran."""
    import ldpc

    decoder = ldpc.BpDecoder(parity_check, error_rate=0.1, max_iter=iterations, bp_method=method,
                             ms_scaling_factor=1.0, schedule="parallel", input_vector_type="received_vector")
    hard = (llr < 0).astype(np.uint8)
    probabilities = 1.0 / (1.0 + np.exp(np.abs(llr)))
    used = 0
    start = time.perf_counter()
    for row in range(len(llr)):
        decoder.update_channel_probs(probabilities[row])
        decoder.decode(hard[row])
        used += decoder.iter
    return time.perf_counter() - start, used / len(llr)


def bench_ldpc(quick: bool) -> dict:
    import jax

    from du_decoding import load_code

    code = LDPC_CODE["quick" if quick else "full"]
    overrides = [f"problem.code={code}", "evaluation.sweep={}", f"evaluation.max_batches={2 if quick else 10}",
                 f"evaluation.batches={2 if quick else 10}"]
    if quick:
        overrides += ["train.depth=3", "train.steps_per_stage=3"]
    config, comparison = _compare("ldpc", overrides)
    rows = _trained_rows(comparison, "ber")
    depth, batch = config.train.depth, 200 if quick else 2000
    print(f"\n== 6b. LDPC decoding, {code}, {depth} iterations")
    for label, row in rows.items():
        print(f"  {label:18s} train {row['train_seconds']:6.2f} s  BER at t={depth} {row['ber']:.3e}")
    parity_check = load_code(code).parity_check
    peers = {}
    for eb_n0 in (1.0, 2.5):
        problem, solvers = _built("ldpc", overrides + [f"problem.eb_n0_db={eb_n0}"])
        instance = problem.sample(jax.random.key(11), batch)
        llr = np.asarray(instance["llr"], np.float64)
        point = {}
        for label, method in (("bp", "product_sum"), ("min-sum", "minimum_sum")):
            ours = _best_of(_forward(solvers[label], problem, instance), 3 if quick else 5)
            theirs, used = _ldpc_peer(parity_check, llr, depth, method)
            point[label] = row = {
                "ours_codewords_per_second": round(batch / ours, 1),
                "ldpc_codewords_per_second": round(batch / theirs, 1),
                "ldpc_mean_iterations": round(used, 2),
                "ratio_codewords": round(theirs / ours, 2),
                "ratio_per_iteration": round((depth / ours) / (used / theirs), 2),
            }
            print(f"  {eb_n0:.1f} dB {label:8s} ours {row['ours_codewords_per_second']:>10.0f} cw/s (all {depth} "
                  f"iterations), ldpc {row['ldpc_codewords_per_second']:>9.0f} cw/s ({used:.1f} iterations on "
                  f"average): x{row['ratio_codewords']:.2f} per codeword, x{row['ratio_per_iteration']:.2f} "
                  f"per iteration")
        peers[f"{eb_n0:g} dB"] = point
    return {"code": code, "depth": depth, "batch": batch, "trained": rows, "throughput": peers}


def bench_families(quick: bool) -> dict:
    return {"mimo": bench_mimo(quick), "ldpc": bench_ldpc(quick)}
