"""Networks as learned parts of a step: the parameter policy of du_framework.Network, point by point."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from network_solvers import MLP, GDNet, kernel

from du_framework import ConfigError, Network, QuadraticSolver, Stage, option
from du_framework.engine import split_solver, train, train_ensemble
from du_framework.engine.keys import host_key
from du_framework.engine.resume import load_train_state, save_train_state
from du_framework.io.checkpoint import load_checkpoint, save_checkpoint
from du_framework.networks import initialise_networks, network_summaries, parameter_count
from du_framework.params import learning_rates
from du_framework.testing import SolverCase, checks, parametrize_with_checks, small_problem

# AdamW without decay (Adam exactly): test_adamw_decays_... reuses the fixture's program for its baseline.
SETTINGS = dict(batch_size=8, chunk_size=1, steps_per_stage=2, optimizer="adamw", progress=False)
DEPTH = 3


@pytest.fixture(scope="module")
def problem():
    return small_problem(n=6, m=12, lam=1.0, seed=3)


def build(problem, networks="shared", depth=DEPTH, **options):
    return GDNet(GDNet.Options(networks=networks, width=8, **options), problem=problem, depth=depth)


@pytest.fixture(scope="module", params=["shared", "per-iteration"])
def runs(request, problem, tmp_path_factory):
    """One program per kind of network: an incremental run (its state after every stage, resumed from
    a file after stage 1), an incremental-frozen run and one optimiser step at full depth, from the same key."""
    networks = request.param
    states = []
    whole = train(build(problem, networks), problem, "incremental", key=5, on_stage_end=states.append, **SETTINGS)
    path = save_train_state(tmp_path_factory.mktemp("state") / "after-1.npz", states[0])
    resumed = train(build(problem, networks), problem, "incremental", key=5, resume=load_train_state(path), **SETTINGS)
    frozen_states = []
    train(build(problem, networks), problem, "incremental-frozen", key=5, on_stage_end=frozen_states.append,
          **SETTINGS)
    one_step = train(build(problem, networks), problem, [Stage(DEPTH, 1)], key=5, **SETTINGS)
    return networks, whole, states, resumed, frozen_states, one_step


def stage_kernels(states):
    """The first layer's stacked kernel after every stage, ``(stages, copies, in, out)``."""
    return np.stack([np.asarray(state.params["net"]["module"]["layers"][0]["kernel"]) for state in states])


def initial_kernel(problem, networks, seed=5):
    solver = build(problem, networks)
    _, params, _ = split_solver(solver)
    return np.asarray(initialise_networks(params, solver, host_key(seed))["net"]["module"]["layers"][0]["kernel"])


def changed_copies(before, after):
    return [bool(np.any(before[copy] != after[copy])) for copy in range(len(before))]


def test_incremental_training_trains_a_shared_network_throughout_and_a_copy_only_once_its_iteration_is_active(
        problem, runs):
    networks, _, states, _, _, _ = runs
    kernels = [initial_kernel(problem, networks), *stage_kernels(states)]
    for stage in range(DEPTH):
        changed = changed_copies(kernels[stage], kernels[stage + 1])
        # Stage t (1-based) trains iterations 1..t: the shared network, or copies 0..t-1 of the per-iteration ones.
        assert changed == ([True] if networks == "shared" else [copy <= stage for copy in range(DEPTH)]), (stage, changed)
    if networks == "per-iteration":  # a copy not yet active kept the weights drawn for it
        np.testing.assert_array_equal(kernels[1][1:], kernels[0][1:])


def test_incremental_frozen_trains_only_the_newest_copy_but_a_shared_network_at_every_stage(problem, runs):
    networks, _, _, _, frozen_states, _ = runs
    kernels = [initial_kernel(problem, networks), *stage_kernels(frozen_states)]
    for stage in range(DEPTH):
        changed = changed_copies(kernels[stage], kernels[stage + 1])
        assert changed == ([True] if networks == "shared" else [copy == stage for copy in range(DEPTH)]), (stage, changed)


def test_a_network_run_resumed_from_its_file_ends_bitwise_as_the_uninterrupted_run(runs):
    _, whole, _, resumed, _, _ = runs
    for layer in (0, 1):
        np.testing.assert_array_equal(kernel(resumed.solver, layer), kernel(whole.solver, layer))
    np.testing.assert_array_equal(resumed.losses, whole.losses)


def test_a_checkpoint_of_nested_network_weights_reloads_bitwise(problem, runs, tmp_path):
    networks, whole, _, _, _, _ = runs
    path = save_checkpoint(tmp_path / "gd-net.npz", whole.solver, problem=problem)
    loaded = load_checkpoint(path, build(problem, networks), problem=problem)
    trained, back = nnx.state(whole.solver, nnx.Param), nnx.state(loaded, nnx.Param)
    names = [".".join(map(str, p)) for p, _ in nnx.to_flat_state(trained)]
    assert "net.module.layers.1.kernel" in names  # an nnx.List index inside the path
    for (path_a, a), (path_b, b) in zip(nnx.to_flat_state(trained), nnx.to_flat_state(back)):
        assert path_a == path_b
        assert np.asarray(a[...]).dtype == np.asarray(b[...]).dtype
        np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]))


def test_each_run_draws_its_networks_from_its_own_key(problem):
    solver = build(problem, "per-iteration")
    _, params, _ = split_solver(solver)
    first, again, other = (initialise_networks(params, solver, host_key(seed)) for seed in (1, 1, 2))
    kernels = [np.asarray(p["net"]["module"]["layers"][0]["kernel"]) for p in (first, again, other)]
    np.testing.assert_array_equal(kernels[0], kernels[1])
    assert not np.array_equal(kernels[0], kernels[2])
    assert not np.array_equal(kernels[0][0], kernels[0][1])  # the copies of one run differ too
    # the drawn weights are Flax's own initialisers': a copy is MLP(..., rngs=Rngs(key)) for a key folded from the seed
    assert np.asarray(first["eta"]).tobytes() == np.asarray(params["eta"]).tobytes()  # scalars are left alone


def test_ensemble_members_start_from_their_own_seeds_and_end_as_single_runs(problem, runs):
    networks, whole, _, _, _, _ = runs
    if networks != "shared":
        pytest.skip("one ensemble is enough")
    members = train_ensemble(build(problem), problem, "incremental", keys=[5, 6], **SETTINGS)
    np.testing.assert_allclose(kernel(members[0].solver), kernel(whole.solver), rtol=1e-5, atol=1e-6)
    assert not np.allclose(kernel(members[0].solver), kernel(members[1].solver))


def test_adamw_decays_network_weights_as_optax_does(problem, runs):
    # One optimiser step from the same weights and batch, with and without weight decay: AdamW's update
    # is adam(g) + decay * p, so the two results differ by exactly -rate * decay * p_0 (p_0: the drawn weights).
    networks, *_, without = runs
    rate, decay = 0.003, 0.5
    if networks != "shared":
        pytest.skip("one decay check is enough")
    decayed = train(build(problem, networks), problem, [Stage(DEPTH, 1)], key=5,
                    **{**SETTINGS, "optimizer_options": {"weight_decay": decay}})
    start = initial_kernel(problem, networks)
    # float32 weights near 1: each result carries a rounding of about 6e-8; the decay term is about 1e-3
    np.testing.assert_allclose(kernel(decayed.solver) - kernel(without.solver), -rate * decay * start,
                               rtol=0, atol=1e-6)
    # the same step computed by optax alone
    update, _ = optax.adamw(rate, weight_decay=decay).update({"p": np.zeros_like(start)},
                                                             optax.adamw(rate, weight_decay=decay).init({"p": start}),
                                                             {"p": start})
    np.testing.assert_allclose(np.asarray(update["p"]), -rate * decay * start, rtol=1e-6)


def test_network_weights_have_their_own_learning_rate_group(problem):
    rates = learning_rates(build(problem, net_lr=0.25, lr=0.01))
    assert rates["eta"] == 0.01
    assert {name for name, rate in rates.items() if rate == 0.25} == {
        f"net.module.layers.{layer}.{kind}" for layer in (0, 1) for kind in ("kernel", "bias")}


def test_a_missing_rate_option_of_a_network_is_refused(problem):
    class NoRate(GDNet):
        name = "no-rate"

        def __init__(self, options, *, problem, depth):
            super().__init__(options, problem=problem, depth=depth)
            self.net = Network(MLP, problem.dim, 4, lr="prox_lr")

    with pytest.raises(ConfigError, match=r"has no option 'prox_lr'.*'net\.module\.layers\.0\.bias'"):
        learning_rates(NoRate(NoRate.Options(), problem=problem, depth=2))


def test_a_flax_layer_outside_a_network_is_refused_naming_it(problem):
    class Bare(QuadraticSolver):
        Options = GDNet.Options
        name = "bare-layer"

        def __init__(self, options, *, problem, depth):
            super().__init__(options, problem=problem, depth=depth)
            self.correction = nnx.Linear(problem.dim, problem.dim, rngs=nnx.Rngs(0))

        def step(self, problem, context, x, k):
            return x + self.correction(x)

    with pytest.raises(ConfigError, match=r"Flax layer 'correction' \(Linear\) outside a du_framework.Network"):
        train(Bare(Bare.Options(), problem=problem, depth=2), problem, "incremental", **SETTINGS)


def test_a_network_with_state_other_than_params_is_refused():
    class Noisy(nnx.Module):
        def __init__(self, *, rngs):
            self.linear = nnx.Linear(2, 2, rngs=rngs)
            self.norm = nnx.BatchNorm(2, rngs=rngs)

    with pytest.raises(TypeError, match=r"holds variables that are not nnx.Param: norm.mean \(BatchStat\)"):
        Network(Noisy)
    with pytest.raises(ValueError, match="slots must be a positive integer"):
        Network(MLP, 2, 2, slots=0)
    with pytest.raises(TypeError, match=r"arguments of MLP must be hashable .* pass a tuple instead of a list"):
        Network(MLP, [2], 2)


def test_summaries_and_counts_state_the_architecture_sharing_and_size(problem):
    n, width = problem.dim, 8
    per_copy = (n * width + width) + (width * n + n)  # two Linear layers, closed form
    shared, per_iteration = build(problem, "shared"), build(problem, "per-iteration")
    assert network_summaries(shared) == {"net": f"MLP 1x8, shared by every iteration, {per_copy:,} parameters"}
    assert network_summaries(per_iteration) == {
        "net": f"MLP 1x8, {DEPTH} copies (iteration k uses copy k mod {DEPTH}), {per_copy:,} parameters each, "
               f"{DEPTH * per_copy:,} in all"}
    assert parameter_count(shared) == DEPTH + per_copy  # eta_t and the network
    assert parameter_count(per_iteration) == DEPTH + DEPTH * per_copy
    assert "net.module.layers.0.kernel" not in shared.learned_parameters()  # weights are not "reported values"


@parametrize_with_checks([SolverCase(GDNet, GDNet.Options(width=8, networks="per-iteration"), depth=DEPTH,
                                     steps_per_stage=20, id="gd-net-per-iteration")])
def test_a_network_holding_solver_passes_the_conformance_kit(case, check):
    check(case)


def test_the_kit_catches_an_iteration_that_reads_another_iterations_network():
    class Shifted(GDNet):
        name = "shifted"

        def step(self, problem, context, x, k):  # iteration k uses copy k + 1: copy 1 shapes iteration 0
            return super().step(problem, context, x, k + 1)

    case = SolverCase(Shifted, Shifted.Options(width=8, networks="per-iteration"), depth=DEPTH)
    with pytest.raises(AssertionError, match=r"copy 0 gets no gradient"):
        checks.check_network_copies_independent(case)


def test_the_kit_catches_a_network_whose_weights_ignore_the_seed():
    class Fixed(nnx.Module):
        def __init__(self, n, *, rngs):
            self.linear = nnx.Linear(n, n, kernel_init=nnx.initializers.zeros, rngs=rngs)

        def __call__(self, x):
            return self.linear(x)

    class Unseeded(GDNet):
        name = "unseeded"

        def __init__(self, options, *, problem, depth):
            super().__init__(options, problem=problem, depth=depth)
            self.net = Network(Fixed, problem.dim, lr="net_lr")

    with pytest.raises(AssertionError, match=r"two keys drew the same weights"):
        checks.check_network_weights_drawn_from_seed(SolverCase(Unseeded, depth=2))


def test_a_second_solver_with_the_same_networks_reuses_the_compiled_evaluation(problem):
    from compile_log import compilations

    from du_framework.engine import evaluate

    evaluate(build(problem, "per-iteration"), problem, key=1, batch_size=8, batches=1)
    with compilations() as compiled:  # the network's class and sizes are static and compare equal
        evaluate(build(problem, "per-iteration"), problem, key=1, batch_size=8, batches=1)
    assert compiled == []
