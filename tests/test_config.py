"""Configuration: where it comes from, validation with nearest-key errors, overrides, switches."""

import tomllib

import numpy as np
import pytest

from du_framework import ConfigError, Experiment, UnknownNameError, hookimpl
from du_framework.workbench.config import apply_overrides, build_config, load_config, load_raw
from du_framework.engine import EvaluationSettings, TrainSettings
from du_framework.registry import plugin_registered

from core_plugin import SMALL_TOML, core_plugin  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("core_plugin")


def small(overrides=()):
    return load_config(experiment="small", overrides=list(overrides))


def raw_small():
    return tomllib.loads(SMALL_TOML)


class DefaultExperiment:
    @staticmethod
    @hookimpl
    def register_experiments(register):
        register(Experiment("small-default", SMALL_TOML.replace("depth = 6", "depth = 3"), "a default", default=True))


def test_without_a_file_the_default_experiment_of_the_plugins_runs():
    with plugin_registered(DefaultExperiment, "default-experiment"):
        config = load_config()
    assert config.problem.name == "conformance-least-squares" and config.train.depth == 3
    assert [(s.label, s.name) for s in config.solvers] == [("learned", "learned-gd"), ("gd", "constant-gd")]


def test_without_a_file_or_a_default_experiment_the_message_says_what_to_do():
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert "no installed plugin provides a default experiment" in message
    assert "--config FILE.toml" in message and "--experiment NAME" in message
    assert "installed experiments: small" in message
    assert "`make install` installs the bundled plugins" in message


def test_a_named_experiment_is_loaded_and_an_unknown_one_gets_the_nearest():
    assert small().train.depth == 6
    with pytest.raises(UnknownNameError, match=r"unknown experiment 'smal'.*did you mean 'small'"):
        load_config(experiment="smal")
    with pytest.raises(ConfigError, match="not both"):
        load_raw("x.toml", experiment="small")


def test_the_train_and_evaluation_tables_become_the_settings_objects():
    config = small(["train.optimizer=sgd", "train.optimizer_options={ momentum = 0.5 }", "evaluation.seed=5"])
    assert isinstance(config.train, TrainSettings) and isinstance(config.evaluation, EvaluationSettings)
    assert (config.train.depth, config.train.steps_per_stage, config.train.batch_size) == (6, 20, 16)
    assert config.train.optimizer == "sgd" and config.train.optimizer_options == {"momentum": 0.5}
    assert config.train.schedule == "incremental" and config.train.log_loss is True  # defaults
    assert config.evaluation == EvaluationSettings(batch_size=50, batches=2, seed=5)


def test_unknown_key_is_refused_with_the_nearest_valid_one():
    with pytest.raises(ConfigError, match=r"unknown key 'problem.lamda'; did you mean 'problem.lam'\?"):
        small(["problem.lamda=2"])
    with pytest.raises(ConfigError, match=r"unknown key 'train.steps_per_stag'; did you mean 'train.steps_per_stage'"):
        small(["train.steps_per_stag=2"])
    with pytest.raises(ConfigError, match=r"unknown key 'solvers.learned.perod'; did you mean 'solvers.learned.period'"):
        small(["solvers.learned.perod=2"])
    with pytest.raises(ConfigError, match=r"unknown key 'evaluation.batch'; did you mean 'evaluation.batches'"):
        small(["evaluation.batch=2"])
    with pytest.raises(ConfigError, match=r"unknown table 'evaluaton'; did you mean 'evaluation'"):
        build_config({**raw_small(), "evaluaton": {}})


def test_a_misspelt_name_key_in_problem_suggests_name():
    raw = raw_small()
    raw["problem"]["nmae"] = raw["problem"].pop("name")
    with pytest.raises(ConfigError, match="needs a name"):
        build_config(raw)
    raw["problem"]["name"] = "conformance-least-squares"
    with pytest.raises(ConfigError) as caught:
        build_config(raw)
    assert "unknown key 'problem.nmae'; did you mean 'problem.name'?" in str(caught.value)
    assert "Valid keys: problem.name, problem.n" in str(caught.value)


def test_the_problem_needs_a_name_and_the_message_lists_the_installed_ones():
    raw = raw_small()
    del raw["problem"]["name"]
    with pytest.raises(ConfigError, match=r"\[problem\] needs a name.*conformance-least-squares, diag-quadratic"):
        build_config(raw)


def test_values_of_the_wrong_type_or_range_are_refused():
    for override, message in [
        ("train.depth=ten", "train.depth must be an integer, got 'ten'"),
        ("train.depth=0", "train.depth must be >= 1, <= 100000, got 0"),
        ("train.remat=-1", "train.remat must be >= 0"),
        ("train.log_loss=1", "train.log_loss must be true or false, got 1"),
        ("evaluation.batches=0", "evaluation.batches must be >= 1, <= 1000000, got 0"),
        ("problem.lam=-1", "problem.lam must be >= 0"),
        ("problem.lam=nan", "problem.lam must be a finite number"),
        ("solvers.learned.reciprocal=1", "solvers.learned.reciprocal must be true or false, got 1"),
    ]:
        with pytest.raises(ConfigError, match=message):
            small([override])


def test_an_unknown_optimizer_or_its_options_are_refused_at_once():
    with pytest.raises(ConfigError, match=r"train.optimizer: unknown optax optimiser 'adm' \(did you mean 'adam'\?\)"):
        small(["train.optimizer=adm"])
    with pytest.raises(ConfigError, match=r"train.optimizer_options: optax.adam takes no option 'b3'"):
        small(["train.optimizer_options={ b3 = 0.9 }"])


def test_the_training_loss_must_be_a_metric_of_the_problem():
    assert small(["train.loss=nmse_db"]).train.loss == "nmse_db"
    with pytest.raises(ConfigError, match=r"train.loss must be .* mse, nmse_db; got 'nmsedb' \(did you mean 'nmse_db'"):
        small(["train.loss=nmsedb"])


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"unknown schedule 'incremntal'.*incremental-frozen.*did you mean 'incremental'"):
        small(["train.schedule=incremntal"])
    with pytest.raises(UnknownNameError, match=r"unknown problem 'diag-quadratc'.*did you mean 'diag-quadratic'"):
        small(["problem.name=diag-quadratc"])
    with pytest.raises(UnknownNameError, match=r"unknown solver 'constant-dg'.*did you mean 'constant-gd'"):
        small(["solvers.gd.name=constant-dg"])


def test_switching_the_problem_drops_the_old_problems_keys():
    config = small(["problem.name=diag-quadratic"])
    assert config.problem.name == "diag-quadratic"
    assert config.problem.options == config.problem.options.__class__()  # n, m, lam of the file do not leak
    # Only the overrides reach the new problem, in any order.
    for overrides in (["problem.name=diag-quadratic", "problem.kappa=4"], ["problem.kappa=4", "problem.name=diag-quadratic"]):
        assert small(overrides).problem.options.kappa == 4.0
    with pytest.raises(ConfigError, match=r"unknown key 'problem.lam'"):
        small(["problem.name=diag-quadratic", "problem.lam=2"])
    # Naming the same problem again keeps the file's keys.
    assert small(["problem.name=conformance-least-squares"]).problem.options.n == 8


def test_switching_a_schedule_or_a_solver_drops_the_old_ones_options():
    raw = raw_small()
    raw["train"].update(schedule="layer-wise", finetune_lr_scale=0.5)
    switched = build_config(apply_overrides(raw, ["train.schedule=incremental"]))
    assert switched.train.schedule == "incremental" and switched.train.depth == 6  # train's own keys stay
    raw["solvers"][1]["step"] = 0.01
    switched = build_config(apply_overrides(raw, ["solvers.gd.name=learned-gd", "solvers.gd.period=2"]))
    assert switched.solvers[1].label == "gd" and switched.solvers[1].options.period == 2


def test_switching_the_optimizer_or_lr_schedule_drops_the_old_ones_options():
    raw = raw_small()
    raw["train"].update(optimizer="adamw", optimizer_options={"weight_decay": 0.1},
                        lr_schedule="cosine_decay", lr_schedule_options={"decay_steps": 100})
    switched = build_config(apply_overrides(raw, ["train.optimizer=sgd", "train.lr_schedule=constant"]))
    assert (switched.train.optimizer, switched.train.optimizer_options) == ("sgd", {})
    assert (switched.train.lr_schedule, switched.train.lr_schedule_options) == ("constant", {})
    same = build_config(apply_overrides(raw, ["train.optimizer=adamw", "train.optimizer_options={weight_decay=0.2}"]))
    assert same.train.optimizer_options == {"weight_decay": 0.2}
    kept = build_config(apply_overrides(raw, ["train.optimizer=adamw"]))
    assert kept.train.optimizer_options == {"weight_decay": 0.1}, "naming the same optimiser keeps its options"


def test_overrides_reach_solvers_by_label_and_index():
    config = small(["solvers.learned.lr=0.05", "solvers.1.step=0.01", "train.depth=12", "evaluation.seed=5"])
    assert config.solver("learned").options.lr == 0.05
    assert config.solver("gd").options.step == 0.01
    assert config.train.depth == 12 and config.evaluation.seed == 5
    with pytest.raises(ConfigError, match=r"no solver labelled 'learnd'.*did you mean 'learned'"):
        small(["solvers.learnd.period=2"])
    with pytest.raises(ConfigError, match=r"there are 2 solvers"):
        small(["solvers.2.period=2"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        small(["train.depth"])
    with pytest.raises(ConfigError, match=r"unknown key 'trian.depth': it must start with one of .*did you mean 'train'"):
        small(["trian.depth=2"])


def test_labels_must_be_unique():
    raw = raw_small()
    raw["solvers"] = [{"name": "constant-gd"}, {"name": "constant-gd", "step": 0.1}]
    with pytest.raises(ConfigError, match=r"two solvers are labelled 'constant-gd'.*distinct label"):
        build_config(raw)


def test_a_configuration_without_solvers_is_refused():
    raw = raw_small()
    raw.pop("solvers")
    with pytest.raises(ConfigError, match=r"lists no solvers.*one of: constant-gd, learned-gd"):
        build_config(raw)


def test_schedule_options_are_validated_under_train():
    config = small(["train.schedule=layer-wise", "train.finetune_lr_scale=0.5"])
    assert config.schedule_options.finetune_lr_scale == 0.5
    assert config.to_dict()["train"]["finetune_lr_scale"] == 0.5
    with pytest.raises(ConfigError, match="unknown key 'train.finetune_lr_scale'"):
        small(["train.finetune_lr_scale=0.5"])  # not an option of 'incremental'


def test_config_file_round_trips_through_to_dict(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text(SMALL_TOML.replace("depth = 6", "depth = 7"))
    config = load_config(path)
    assert config.train.depth == 7
    resolved = config.to_dict()
    assert resolved["solvers"][0] == {"name": "learned-gd", "label": "learned", "period": 4, "init_step": 0.0,
                                      "reciprocal": False, "lr": 1e-2}
    assert resolved["train"]["optimizer_options"] == {} and resolved["train"]["optimizer"] == "adam"
    assert build_config(resolved).to_dict() == resolved


def test_unreadable_or_invalid_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[problem\nname = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad)


def test_a_solver_is_added_from_the_command_line_by_naming_a_new_label():
    config = small(["solvers.slow.name=constant-gd", "solvers.slow.step=0.001", "solvers.fast.name=learned-gd"])
    assert [(s.label, s.name) for s in config.solvers] == [("learned", "learned-gd"), ("gd", "constant-gd"),
                                                           ("slow", "constant-gd"), ("fast", "learned-gd")]
    assert config.solver("slow").options.step == 0.001
    raw = raw_small()
    del raw["solvers"]
    assert [s.label for s in build_config(apply_overrides(raw, ["solvers.only.name=constant-gd"])).solvers] == ["only"]
    with pytest.raises(ConfigError, match=r"no solver labelled 'new'.*to add one, name it: --set solvers.new.name=NAME"):
        small(["solvers.new.step=0.1"])


def test_overrides_do_not_mutate_their_input():
    raw = raw_small()
    apply_overrides(raw, ["train.depth=3", "problem.name=diag-quadratic", "solvers.0.period=1"])
    assert raw == tomllib.loads(SMALL_TOML)


def test_a_solvers_training_does_not_depend_on_its_position():
    from du_framework.workbench.compare import build_problem, build_schedule, build_solvers, train_solver

    def trained_eta(solvers, seed=1):
        raw = apply_overrides(raw_small(), ["train.depth=3", "train.steps_per_stage=5", "train.batch_size=4",
                                            f"train.seed={seed}"])
        raw["solvers"] = solvers
        config = build_config(raw)
        problem = build_problem(config)
        index = [s.label for s in config.solvers].index("learned")
        solver = build_solvers(config, problem)[index]
        trained = train_solver(config, index, solver, problem, build_schedule(config), progress=False).solver
        return trained.learned_parameters()["eta"]

    alone = trained_eta([{"name": "learned-gd", "label": "learned"}])
    second = trained_eta([{"name": "constant-gd"}, {"name": "learned-gd", "label": "learned"}])
    np.testing.assert_array_equal(alone, second)
    assert not np.array_equal(alone, trained_eta([{"name": "learned-gd", "label": "learned"}], seed=2))


def test_a_configuration_is_read_from_a_pipe_with_the_same_cap(tmp_path):
    """``--config <(...)`` hands unfold a pipe: it is read like a file, and refused past the same 1 MiB."""
    import os
    import threading

    from du_framework.workbench.config import MAX_CONFIG_BYTES

    def served(text: bytes):
        fifo = tmp_path / f"fifo-{len(text)}"
        os.mkfifo(fifo)

        def write():
            try:
                with open(fifo, "wb") as handle:
                    handle.write(text)
            except BrokenPipeError:  # the reader stopped at its cap
                pass
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        return fifo, writer

    fifo, writer = served(SMALL_TOML.encode())
    assert load_raw(fifo) == tomllib.loads(SMALL_TOML)
    writer.join(5)
    fifo, writer = served(b"# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=r"holds more than 1048576 bytes; a configuration is at most 1048576"):
        load_raw(fifo)
    writer.join(5)
