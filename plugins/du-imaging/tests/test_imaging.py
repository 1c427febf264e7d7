"""The imaging problem and its solvers: the conformance kit, held-out images kept apart, folders of PNG files and
their refusals, the closed forms against float64 NumPy, the network's slots, and bad inputs refused by the CLI
with exit code 2 and nothing written."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from du_framework import ConfigError, ProblemDataError, parse_options
from du_framework.cli import main
from du_framework.engine import evaluate
from du_framework.testing import ProblemCase, SolverCase, parametrize_with_checks
from du_framework.testing.checks import (check_capability_honoured, check_learning_rates_declared,
                                        check_options_declared, check_state_contract)
from du_imaging import (ADMMNet, DUPGD, HQSNet, ImageRestoration, PGDNet, TVADMM, TVPGD, Wiener,
                        network_parameter_count, tv_prox)

SOLVERS = (Wiener, TVPGD, TVADMM, DUPGD, PGDNet, HQSNet, ADMMNet)


def imaging(**options):
    return ImageRestoration.from_options(parse_options(ImageRestoration.Options, {"size": 16, "kernel_size": 5,
                                                                                  **options}))


def build(solver, problem, depth=2, **options):
    return solver(parse_options(solver.Options, options), problem=problem, depth=depth)


def small_net(solver, **extra):
    return parse_options(solver.Options, {"channels": 4, "layers": 2, "lr": 3e-3, **extra})


def tiny():
    return imaging(size=8, kernel_size=3)


# The whole kit on the problem, a classical solver, a learned-scalar one and a network-holding one; the
# contract checks that need no training on the others (the suite's time budget).
@parametrize_with_checks([ProblemCase(ImageRestoration, parse_options(ImageRestoration.Options,
                                                                      {"size": 8, "kernel_size": 3})),
                          SolverCase(Wiener, problem=tiny, depth=2, steps_per_stage=4, batch_size=4),
                          SolverCase(DUPGD, problem=tiny, depth=2, steps_per_stage=6, batch_size=4),
                          SolverCase(PGDNet, small_net(PGDNet), problem=tiny, depth=2, steps_per_stage=20,
                                     batch_size=8)])
def test_conformance(case, check):
    check(case)


@parametrize_with_checks([SolverCase(solver, small_net(solver) if solver is HQSNet else None, problem=tiny, depth=2)
                          for solver in (TVPGD, TVADMM, HQSNet, ADMMNet)],
                         checks=[check_options_declared, check_capability_honoured, check_state_contract,
                                 check_learning_rates_declared])
def test_contract(case, check):
    check(case)


def write_png(path, array):
    Image.fromarray(np.asarray(np.clip(array, 0, 255), np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    """Three training images of level 40 and one held-out (the last by name) of level 200, 24 x 20 pixels."""
    images = tmp_path / "images"
    images.mkdir()
    for i, level in enumerate((40, 40, 40, 200)):
        write_png(images / f"img{i}.png", np.full((20, 24), level))
    return images


def test_evaluation_draws_held_out_images_only(folder):
    problem = imaging(images=str(folder), noise=0.0)
    training = problem.sample(jax.random.key(0), 16)["target"]
    held = problem.held_out().sample(jax.random.key(0), 16)["target"]
    np.testing.assert_allclose(np.asarray(training), 40 / 255, atol=1e-6)
    np.testing.assert_allclose(np.asarray(held), 200 / 255, atol=1e-6)
    mse = evaluate(build(Wiener, problem, balance=1e-6), problem, key=0, batch_size=4, batches=1)["mse"]
    assert mse[-1] < 1e-4  # evaluated on the held-out level; a blur keeps a constant image


def test_bundled_sets_are_disjoint_and_crops_lie_inside_their_image():
    problem = imaging(size=64, kernel_size=9, augment=False)
    train_names, held_names = problem.image_names
    assert not set(train_names) & set(held_names) and "camera" in held_names
    pixels, shapes = np.asarray(problem.held_pixels), np.asarray(problem.held_shapes)
    patches = np.asarray(problem.patches(jax.random.key(3), 6, held_out=True))
    for patch in patches:  # each patch is an exact crop of one held-out image, within its true size
        found = False
        for image, (h, w) in zip(pixels, shapes):
            windows = np.lib.stride_tricks.sliding_window_view(image[:h, :w], patch.shape)
            found |= bool(np.any(np.all(windows == patch, axis=(-2, -1))))
        assert found


@pytest.mark.parametrize("content, message", [
    (b"not an image at all", "is not a readable PNG image"),
    (None, "is 6 x 5 pixels; patches of 16 x 16"),
])
def test_bad_image_files_are_refused_naming_the_file(folder, content, message):
    bad = folder / "img1.png"
    if content is None:
        write_png(bad, np.zeros((5, 6)))
    else:
        bad.write_bytes(content)
    with pytest.raises(ProblemDataError, match=message) as error:
        imaging(images=str(folder))
    assert str(bad) in str(error.value)


def test_a_jpeg_named_png_and_an_empty_folder_are_refused(folder, tmp_path):
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(folder / "img2.png", format="JPEG")
    with pytest.raises(ProblemDataError, match="img2.png' is not a PNG image .*JPEG"):
        imaging(images=str(folder))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ProblemDataError, match="holds no PNG file; it needs at least two"):
        imaging(images=str(empty))


def test_relations_between_options_are_checked():
    with pytest.raises(ConfigError, match="kernel_size 17 is larger than the image"):
        imaging(kernel_size=17)
    with pytest.raises(ConfigError, match="motion_length 9.0 does not fit"):
        imaging(kernel="motion", motion_length=9.0)


def test_a_mask_file_sets_the_inpainting_mask(tmp_path):
    mask = np.zeros((16, 16))
    mask[:, ::2] = 255
    write_png(tmp_path / "mask.png", mask)
    problem = imaging(operator="inpaint", mask=str(tmp_path / "mask.png"), noise=0.0)
    instance = problem.sample(jax.random.key(0), 2)
    y, x = (np.asarray(instance[k]).reshape(2, 16, 16) for k in ("y", "target"))
    np.testing.assert_allclose(y[:, :, ::2], x[:, :, ::2])
    assert np.all(y[:, :, 1::2] == 0)
    write_png(tmp_path / "small.png", mask[:8])
    with pytest.raises(ProblemDataError, match="small.png' is 16 x 8 pixels; the images are 16 x 16"):
        imaging(operator="inpaint", mask=str(tmp_path / "small.png"))


def test_noise_level_is_the_standard_deviation_on_observed_entries():
    for operator, share in (("blur", 1.0), ("inpaint", 0.5), ("mri", None)):
        problem = imaging(operator=operator, noise=0.05)
        instance = problem.sample(jax.random.key(1), 64)
        residual = np.asarray(instance["y"] - problem.forward(instance, instance["target"]), np.float64)
        observed = residual[residual != 0]
        assert np.std(observed) == pytest.approx(0.05, rel=0.03)
        if share is not None:
            assert observed.size / residual.size == pytest.approx(share, abs=0.01)


def test_wiener_is_the_float64_fft_closed_form():
    problem = imaging(noise=0.02)
    instance = problem.sample(jax.random.key(2), 3)
    estimate = np.asarray(evaluate_estimate(build(Wiener, problem, balance=0.03), problem, instance), np.float64)
    spectrum = np.asarray(problem.operator_data, np.float64)
    k = spectrum[0] + 1j * spectrum[1]
    y = np.asarray(instance["y"], np.float64).reshape(3, 16, 16)
    expected = np.real(np.fft.ifft2(np.conj(k) * np.fft.fft2(y) / (np.abs(k) ** 2 + 0.03)))
    np.testing.assert_allclose(estimate.reshape(3, 16, 16), expected, atol=2e-5)


def evaluate_estimate(solver, problem, instance):
    from du_framework.engine import unroll

    x, _ = unroll(solver, problem, instance)
    return x


def test_tv_pgd_and_tv_admm_descend_the_same_objective():
    problem = imaging(noise=0.02)
    instance = problem.sample(jax.random.key(4), 2)
    y = np.asarray(instance["y"], np.float64)
    lam = 0.02

    def objective(x):
        x = jnp.asarray(x, jnp.float32)
        residual = np.asarray(problem.forward(instance, x), np.float64) - y
        from du_imaging import total_variation
        return 0.5 * np.sum(residual ** 2) + lam * float(np.sum(total_variation(problem.image(x))))

    start = objective(instance["y"])
    pgd = [objective(evaluate_estimate(build(TVPGD, problem, depth, lam=lam, inner=100), problem, instance))
           for depth in (2, 100)]
    admm = objective(evaluate_estimate(build(TVADMM, problem, 100, lam=lam, rho=0.5, inner=100), problem, instance))
    assert pgd[1] < pgd[0] < start
    assert admm == pytest.approx(pgd[1], rel=0.02)  # both with an inexact prox (a fixed count of dual steps)


def test_network_weights_are_tied_by_default_and_one_slot_per_iteration_on_request():
    problem = imaging()
    tied = PGDNet(small_net(PGDNet), problem=problem, depth=3)
    untied = PGDNet(small_net(PGDNet, per_iteration=True), problem=problem, depth=3)
    per_copy = (9 * 1 * 4 + 4) + (9 * 4 * 1 + 1)
    assert network_parameter_count(tied.denoiser) == per_copy
    assert network_parameter_count(untied.denoiser) == 3 * per_copy
    assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(untied.denoiser))
    assert set(tied.learned_parameters()) == {"eta"}  # the CNN's weights are left out of reports
    instance = problem.sample(jax.random.key(0), 2)
    # an untrained CNN is the identity: pgd-net starts as the plain gradient step
    x0 = np.asarray(problem.adjoint(instance, instance["y"]))
    step = np.asarray(tied.step(problem, tied.prepare(problem, instance), jnp.asarray(x0), jnp.int32(0)))
    grad = np.asarray(problem.adjoint(instance, problem.forward(instance, jnp.asarray(x0)))) - x0
    np.testing.assert_allclose(step, x0 - grad / problem.lipschitz_bound(), atol=1e-6)


def test_tv_prox_of_a_weight_per_image():
    z = jax.random.uniform(jax.random.key(0), (2, 8, 8))
    both = tv_prox(z, jnp.array([0.0, 10.0]), 200)
    np.testing.assert_allclose(np.asarray(both[0]), np.asarray(z[0]), atol=1e-6)  # weight 0: the identity
    np.testing.assert_allclose(np.asarray(both[1]), float(jnp.mean(z[1])), atol=1e-3)  # large: the mean


# -- bad inputs through the CLI: exit 2, one message, nothing written -------------------------------------------


def write_config(tmp_path, **problem):
    problem = {"size": 16, "kernel_size": 5, **problem}
    lines = ["[problem]", 'name = "imaging"']
    lines += [f"{key} = {value!r}".replace("'", '"') for key, value in problem.items()]
    lines += ["[train]", "depth = 2", "steps_per_stage = 2", "batch_size = 2", "[evaluation]", "batch_size = 2",
              "batches = 1", "[[solvers]]", 'name = "tv-pgd"']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("case", ["kernel", "non-image", "mask", "empty"])
def test_bad_inputs_are_refused_by_the_cli_with_exit_2(tmp_path, folder, capsys, case):
    if case == "kernel":
        config, expected = write_config(tmp_path, kernel_size=33), "kernel_size 33 is larger than the image"
    elif case == "non-image":
        (folder / "img1.png").write_text("hello")
        config, expected = write_config(tmp_path, images=str(folder)), "img1.png' is not a readable PNG image"
    elif case == "mask":
        write_png(tmp_path / "mask.png", np.full((10, 16), 255))
        config = write_config(tmp_path, operator="mri", mask=str(tmp_path / "mask.png"))
        expected = "mask.png' is 16 x 10 pixels; the images are 16 x 16"
    else:
        (tmp_path / "none").mkdir()
        config, expected = write_config(tmp_path, images=str(tmp_path / "none")), "holds no PNG file"
    out = tmp_path / "run"
    assert main(["compare", "--config", str(config), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("unfold: error:")]
    assert len(lines) == 1 and expected in lines[0], err
    assert not out.exists()


def test_compare_writes_the_reconstructions_figure(tmp_path, capsys):
    config = write_config(tmp_path)
    out = tmp_path / "run"
    assert main(["compare", "--config", str(config), "--out", str(out), "--no-progress", "--figures", "png"]) == 0
    assert "tv-pgd" in capsys.readouterr().out
    figure = out / "reconstructions.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(figure).size[0] > 200


def test_the_cores_defaults_evaluate_on_the_problem_itself_and_draw_nothing():
    from du_framework.testing import small_problem

    problem = small_problem()
    assert problem.held_out() is problem and problem.figures({}) == {}


@pytest.mark.parametrize("name, solvers", [
    ("deblur", ["wiener", "tv-pgd", "tv-admm", "du-pgd", "pgd-net", "hqs-net"]),
    ("mri", ["least-squares", "tv-pgd", "tv-admm", "admm-net", "pgd-net"]),
])
def test_shipped_experiments_are_valid_configurations(name, solvers):
    import tomllib

    from du_framework.registry import get_registry
    from du_framework.workbench.config import build_config

    registry = get_registry()
    assert registry.plugin_of("experiment", name) == "du-imaging"
    config = build_config(tomllib.loads(registry.experiment(name).config), registry)
    assert config.problem.name == "imaging" and config.problem.options.size == 64
    assert [solver.label for solver in config.solvers] == solvers
    assert config.train.unroll is True, "no loop over the depth: measured faster (docs/performance.md)"


def test_png_modes_read_to_the_same_grey_levels(tmp_path):
    from du_imaging.images import read_png

    grey = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    Image.fromarray(grey).save(tmp_path / "l.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "i16.png")
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb.png")
    for name in ("l.png", "i16.png", "rgb.png"):
        np.testing.assert_allclose(read_png(tmp_path / name), grey / 255.0, atol=2e-3, err_msg=name)


def test_restore_accepts_parameters_held_as_numpy_arrays_as_a_loaded_checkpoint_has_them():
    from flax import nnx

    from du_imaging.figure import restore

    problem = imaging()
    solver = PGDNet(small_net(PGDNet), problem=problem, depth=2)
    graphdef, state = nnx.split(solver)
    loaded = nnx.merge(graphdef, jax.tree.map(np.asarray, state))
    instance = problem.held_out().sample(jax.random.key(0), 2)
    np.testing.assert_allclose(restore(loaded, problem, instance), restore(solver, problem, instance), atol=1e-6)
