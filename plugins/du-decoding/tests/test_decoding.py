"""Channel decoding: the alist parser, the shipped codes, the channel against theory, the decoders
against the independent ``ldpc`` package, the conformance kit, and a short training."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from du_framework import ConfigError, parse_options
from du_framework.engine import evaluate, train, unroll
from du_framework.testing import ProblemCase, SolverCase, parametrize_with_checks
from du_framework.workbench.config import load_config
from du_decoding import (BER, BP, CODES, FER, AlistError, LDPCDecoding, MinSum, NeuralBP, NeuralMinSum,
                         NormalizedMinSum, OffsetMinSum, bit_cross_entropy, gf2_rank, load_code, parse_alist,
                         read_alist, write_alist)
from du_decoding.codes import bch_63_45, gallager_regular, wimax_rate_half

SMALL = "gallager-96-3-6"


def problem(code=SMALL, **options):
    return LDPCDecoding.from_options(parse_options(LDPCDecoding.Options, {"code": code, **options}))


def small_problem():
    return problem(eb_n0_db=3.0)


# -- alist ------------------------------------------------------------------------------------------

HAMMING = np.array([[1, 1, 0, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0, 1]], np.uint8)


@pytest.mark.parametrize("name", list(CODES))
def test_alist_round_trip_of_every_shipped_code(name):
    matrix = load_code(name).parity_check
    assert np.array_equal(parse_alist(write_alist(matrix)), matrix)


def test_alist_reads_a_file_with_zero_padding_and_blank_lines(tmp_path):
    text = "7 3\n\n3 4\n2 2 2 3 1 1 1\n4 4 4\n1 2 0\n1 3 0\n2 3 0\n1 2 3\n1 0 0\n2 0 0\n3 0 0\n" \
           "1 2 4 5\n1 3 4 6\n2 3 4 7\n"
    path = tmp_path / "hamming.alist"
    path.write_text(text)
    assert np.array_equal(read_alist(path), HAMMING)
    assert write_alist(HAMMING) == text.replace("\n\n", "\n")


GOOD = write_alist(HAMMING).splitlines()  # 2 + 2 + 7 + 3 = 14 lines


def mutate(line, new):
    lines = list(GOOD)
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, line, words", [
    (mutate(1, "7"), 1, "expected 2 integer"),
    (mutate(1, "7 x"), 1, "'x' is not an integer"),
    (mutate(1, "7 3.0"), 1, "is not an integer"),
    (mutate(2, "3 9"), 2, "maximal weights"),
    (mutate(3, "2 2 2 3 1 1"), 3, "expected 7 integer"),
    (mutate(3, "2 2 2 3 1 1 2"), 4, "sum to"),
    (mutate(4, "4 4 5"), 4, "outside 0..4"),
    (mutate(4, "4 4 3"), 4, "sum to"),
    (mutate(5, "1 2 3"), 5, "more nonzero entries"),
    (mutate(5, "1 9 0"), 5, "row index 9 lies outside 1..3"),
    (mutate(5, "0 2 0"), 5, "row index 0 lies outside"),
    (mutate(5, "1 1 0"), 5, "twice"),
    (mutate(5, "1 3 0"), 5, "the row lists put it in rows [1, 2]"),
    (mutate(12, "1 2 4 8"), 12, "column index 8 lies outside 1..7"),
    (mutate(12, "1 2 4 5 6"), 12, "lists 5 entries"),
    ("\n".join(GOOD[:10]) + "\n", 11, "missing the list of column 7"),
    ("\n".join(GOOD) + "\n1 2\n", 15, "unexpected content"),
])
def test_a_malformed_alist_is_refused_naming_the_file_and_line(text, line, words):
    with pytest.raises(AlistError) as error:
        parse_alist(text, source="bad.alist")
    message = str(error.value)
    assert "'bad.alist'" in message and f"line {line}:" in message and words in message, message


def test_an_alist_file_is_size_checked_before_it_is_read(tmp_path, monkeypatch):
    import du_decoding.alist as alist

    monkeypatch.setattr(alist, "ALIST_LIMIT", 10)
    path = tmp_path / "big.alist"
    path.write_text(write_alist(HAMMING))
    with pytest.raises(AlistError, match="big.alist.*bytes"):
        read_alist(path)
    with pytest.raises(AlistError, match="does not exist"):
        read_alist(tmp_path / "missing.alist")


# -- codes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, n, k", [("bch-63-45", 63, 45), ("gallager-96-3-6", 96, 50), ("wimax-576-r12", 576, 288)])
def test_shipped_codes_have_their_documented_size_and_an_encoder(name, n, k):
    code = load_code(name)
    assert (code.n, code.k) == (n, k) and gf2_rank(code.parity_check) == n - k
    assert not ((code.generator.astype(np.int64) @ code.parity_check.T) % 2).any()  # G H^T = 0
    assert np.array_equal(code.generator[:, code.information_positions], np.eye(k, dtype=np.uint8))
    assert sorted(code.permutation.tolist()) == list(range(n))


def test_shipped_files_are_the_documented_constructions():
    bch_h, bch_g = bch_63_45()
    assert not ((bch_g.astype(np.int64) @ bch_h.T) % 2).any() and gf2_rank(bch_g) == 45
    systematic = load_code("bch-63-45").generator
    assert gf2_rank(np.concatenate([bch_g, systematic])) == 45  # the same code as g(x) generates
    assert np.array_equal(load_code("bch-63-45").parity_check, bch_h)
    gallager = load_code("gallager-96-3-6").parity_check
    assert np.array_equal(gallager, gallager_regular(96, 3, 6, seed=0))
    assert (gallager.sum(0) == 3).all() and (gallager.sum(1) == 6).all()
    wimax = load_code("wimax-576-r12").parity_check
    assert np.array_equal(wimax, wimax_rate_half(24)) and set(wimax.sum(1)) == {6, 7}


def test_an_unknown_code_is_refused_with_the_nearest_name():
    with pytest.raises(ConfigError, match="did you mean 'bch-63-45'"):
        parse_options(LDPCDecoding.Options, {"code": "bch-63-46"})


def test_a_user_alist_file_is_a_code(tmp_path):
    path = tmp_path / "hamming.alist"
    path.write_text(write_alist(HAMMING))
    hamming = problem(code_file=str(path))
    assert (hamming.n, hamming.k, hamming.checks, hamming.edges) == (7, 4, 3, 12)
    bits = np.asarray(hamming.sample(jax.random.key(0), 64)["target"], np.int64)
    assert not ((bits @ HAMMING.T) % 2).any() and bits.any()


# -- the channel ------------------------------------------------------------------------------------


def q_function(x):
    return 0.5 * math.erfc(x / math.sqrt(2))


@pytest.mark.parametrize("eb_n0_db", [0.0, 3.0, 6.0])
def test_channel_llrs_decided_alone_have_the_uncoded_bpsk_bit_error_rate(eb_n0_db):
    # An "identity decoder": the metric applied to the channel LLRs. At code rate R the channel is
    # uncoded BPSK at Es/N0 = R Eb/N0, so the bit error rate is Q(sqrt(2 R Eb/N0)).
    bch = problem("bch-63-45", eb_n0_db=eb_n0_db)
    instance = jax.jit(lambda p, key: p.sample(key, 20000))(bch, jax.random.key(1))
    errors = float(jnp.sum(BER.per_instance(instance["llr"], instance)))
    bits = 20000 * 63
    expected = q_function(math.sqrt(2 * bch.rate * 10 ** (eb_n0_db / 10)))
    tolerance = 5 * math.sqrt(expected * (1 - expected) / bits)  # 5 binomial standard deviations
    assert abs(errors / bits - expected) < tolerance, (errors / bits, expected)


def test_eb_n0_is_drawn_per_instance_uniformly_in_db():
    ranged = problem(eb_n0_db=[1.0, 5.0])
    drawn = np.asarray(ranged.sample(jax.random.key(2), 4000)["eb_n0_db"])
    assert drawn.min() >= 1.0 and drawn.max() <= 5.0 and abs(drawn.mean() - 3.0) < 0.1
    with pytest.raises(ConfigError, match="low <= high"):
        parse_options(LDPCDecoding.Options, {"eb_n0_db": [5.0, 1.0]})


def test_error_rates_are_error_counts_over_trials():
    instance = {"target": jnp.array([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])}
    llr = jnp.array([[4.2, -1.3, 0.7, 2.0], [3.1, 0.4, 5.5, 0.9]])
    assert BER.per_instance(llr, instance).tolist() == [1.0, 0.0]
    assert BER.normalizer(llr, instance).tolist() == [4.0, 4.0]
    assert FER.per_instance(llr, instance).tolist() == [1.0, 0.0]
    assert float(bit_cross_entropy(30 * (1 - 2 * instance["target"]), instance)) < 1e-6
    assert np.isfinite(float(bit_cross_entropy(jnp.full((2, 4), 1e6), instance)))


# -- against the ldpc package -----------------------------------------------------------------------


def reference_decisions(parity_check, llr, iterations, method):
    """Roffe's ``ldpc`` BpDecoder (parallel schedule) on the same channel LLRs: decisions and iterations run.

    It decodes a hard-decided word ``r`` from the syndrome ``H r`` with the bit error
    probabilities ``1 / (1 + e^|L|)`` (its initial LLR is then ``|L|``) and returns ``r xor e``:
    by the symmetry of BP this is BP on the LLRs ``L``. It stops once the syndrome is met.
    """
    ldpc = pytest.importorskip("ldpc", reason="the independent check needs the 'ldpc' package (pip install ldpc, "
                                              "the plugin's test extra)")
    decoder = ldpc.BpDecoder(parity_check, error_rate=0.1, max_iter=iterations, bp_method=method,
                             ms_scaling_factor=1.0, schedule="parallel", input_vector_type="received_vector")
    decisions, used = [], []
    for frame in np.asarray(llr, np.float64):
        decoder.update_channel_probs(1.0 / (1.0 + np.exp(np.abs(frame))))
        decisions.append(decoder.decode((frame < 0).astype(np.uint8)))
        used.append(decoder.iter)
    return np.array(decisions), np.array(used)


def our_decisions(solver_class, code_problem, instance, iterations):
    solver = solver_class(parse_options(solver_class.Options, {}), problem=code_problem, depth=iterations)
    _, every = jax.jit(lambda s, p, i: unroll(s, p, i, record=lambda x: x))(solver, code_problem, instance)
    return np.asarray(every) < 0  # (iterations, batch, n)


@pytest.mark.parametrize("solver_class, method", [(MinSum, "minimum_sum"), (BP, "product_sum")])
def test_decisions_agree_with_the_ldpc_package(solver_class, method):
    pytest.importorskip("ldpc", reason="the independent check needs the 'ldpc' package (pip install ldpc)")
    code_problem, iterations = problem(eb_n0_db=2.5), 8
    instance = code_problem.sample(jax.random.key(3), 300)
    theirs, used = reference_decisions(load_code(SMALL).parity_check, instance["llr"], iterations, method)
    ours = our_decisions(solver_class, code_problem, instance, iterations)
    # ldpc stops at the first iteration whose decisions meet every check: compare at that iteration.
    at_their_stop = ours[used - 1, np.arange(len(used))]
    agree = (at_their_stop == theirs).all(axis=1)
    errors = (theirs != np.asarray(instance["target"], bool)).any(axis=1)
    assert 0.05 < errors.mean() < 0.9  # frames that decoding does not always get right
    if solver_class is MinSum:  # the same arithmetic: identical on every frame
        assert agree.all(), np.flatnonzero(~agree)
    else:  # float32 with clipped messages against float64 without: the vast majority
        assert agree.mean() >= 0.97, agree.mean()


# -- conformance and training -----------------------------------------------------------------------


SHORT = {"depth": 3, "steps_per_stage": 15}


@parametrize_with_checks([
    ProblemCase(LDPCDecoding),
    SolverCase(BP, problem=small_problem, **SHORT),
    SolverCase(MinSum, problem=small_problem, **SHORT),
    SolverCase(NormalizedMinSum, problem=small_problem, **SHORT),
    SolverCase(OffsetMinSum, problem=small_problem, **SHORT),
    SolverCase(NeuralBP, NeuralBP.Options(tied=True), problem=small_problem, id="neural-bp-tied", **SHORT),
    SolverCase(NeuralMinSum, NeuralMinSum.Options(correction="offset", init=0.3), problem=small_problem,
               id="neural-min-sum-offset", **SHORT),
])
def test_conformance(case, check):
    check(case)


@pytest.mark.parametrize("solver_class", [NeuralBP, NeuralMinSum])
def test_untied_learned_decoders_hold_one_slot_per_iteration(solver_class):
    code_problem = small_problem()
    solver = solver_class(parse_options(solver_class.Options, {}), problem=code_problem, depth=4)
    (name, values), = [(k, v) for k, v in solver.learned_parameters().items() if k in ("alpha", "weights")] or \
        [("weights", np.asarray(solver.weights.value))]
    assert values.shape[0] == 4


def test_per_edge_neural_min_sum_holds_one_value_per_edge_and_iteration_and_starts_as_per_iteration():
    code_problem = small_problem()
    instance = code_problem.sample(jax.random.key(5), 64)
    options = {"init": 0.7}
    shared = NeuralMinSum(parse_options(NeuralMinSum.Options, options), problem=code_problem, depth=4)
    per_edge = NeuralMinSum(parse_options(NeuralMinSum.Options, {**options, "per_edge": True}),
                            problem=code_problem, depth=4)
    assert np.asarray(per_edge.alpha[...]).shape == (4, code_problem.edges)
    run = jax.jit(lambda s, p, i: unroll(s, p, i)[0])
    np.testing.assert_allclose(run(per_edge, code_problem, instance), run(shared, code_problem, instance), rtol=1e-6)
    # one edge's value changes only the messages through that edge: the outputs now differ
    per_edge.alpha[...] = per_edge.alpha[...].at[:, 0].set(2.0)
    assert not np.allclose(run(per_edge, code_problem, instance), run(shared, code_problem, instance))


def test_training_neural_min_sum_over_a_range_of_eb_n0_lowers_its_cross_entropy():
    bch = problem("bch-63-45", eb_n0_db=[2.0, 5.0])
    decoder = NeuralMinSum(parse_options(NeuralMinSum.Options, {"init": 1.0}), problem=bch, depth=4)
    before = evaluate(decoder, bch, key=9, batch_size=1000, batches=2)
    result = train(decoder, bch, "end-to-end", key=4, steps_per_stage=40, batch_size=128, loss_weights="all",
                   progress=False)
    after = evaluate(result.solver, bch, key=9, batch_size=1000, batches=2)
    sample = bch.sample(jax.random.key(9), 2000)

    def loss(solver):
        return float(bit_cross_entropy(jax.jit(lambda s, p, i: unroll(s, p, i)[0])(solver, bch, sample), sample))

    assert loss(result.solver) < 0.9 * loss(decoder)
    assert after["ber"][-1] < before["ber"][-1]
    assert (result.solver.learned_parameters()["alpha"] < 1.0).all()  # min-sum overestimates: alpha_t < 1


def test_the_ldpc_experiment_is_a_valid_configuration():
    config = load_config(experiment="ldpc")
    assert config.problem.name == "ldpc"
    assert [solver.name for solver in config.solvers] == ["neural-min-sum", "normalized-min-sum", "min-sum", "bp"]
    assert config.train.unroll is True, "no loop over the depth: measured faster (docs/performance.md)"
