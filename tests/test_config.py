"""Configuration: validation, nearest-key errors, overrides, the reference experiment."""

import pytest

from du_framework import ConfigError, UnknownNameError
from du_framework.config import REFERENCE_TOML, apply_overrides, build_config, load_config, load_raw


def test_reference_experiment_is_the_default():
    config = load_config()
    assert config.problem.name == "ridge"
    assert (config.problem.options.n, config.problem.options.m, config.problem.options.lam) == (50, 100, 3.0)
    assert (config.train.schedule, config.train.depth, config.train.steps_per_stage, config.train.batch_size) == (
        "incremental", 50, 20, 100)
    assert [(s.label, s.name) for s in config.solvers] == [
        ("dugd", "dugd"), ("dugd-lambda", "dugd"), ("gd", "gd"),
        ("gd-chebyshev", "gd-chebyshev"), ("heavy-ball", "heavy-ball"), ("cg", "cg")]
    assert config.solvers[0].options.period == 4 and not config.solvers[0].options.learn_lambda
    assert config.solvers[1].options.learn_lambda


def test_unknown_key_is_refused_with_the_nearest_valid_one():
    with pytest.raises(ConfigError, match=r"unknown key 'problem.lamda'; did you mean 'problem.lam'\?"):
        load_config(overrides=["problem.lamda=2"])
    with pytest.raises(ConfigError, match=r"unknown key 'train.steps_per_stag'; did you mean 'train.steps_per_stage'"):
        load_config(overrides=["train.steps_per_stag=2"])
    with pytest.raises(ConfigError, match=r"unknown key 'solvers.dugd.perod'; did you mean 'solvers.dugd.period'"):
        load_config(overrides=["solvers.dugd.perod=2"])
    with pytest.raises(ConfigError, match=r"unknown table 'evaluaton'; did you mean 'evaluation'"):
        build_config({**load_raw(None), "evaluaton": {}})


def test_values_of_the_wrong_type_are_refused():
    with pytest.raises(ConfigError, match=r"train.depth must be an integer, got 'ten'"):
        load_config(overrides=["train.depth=ten"])
    with pytest.raises(ConfigError, match=r"solvers.dugd.learn_lambda must be true or false, got 1"):
        load_config(overrides=["solvers.dugd.learn_lambda=1"])
    with pytest.raises(ConfigError, match=r"train.depth must be >= 1, got 0"):
        load_config(overrides=["train.depth=0"])
    with pytest.raises(ConfigError, match=r"problem.lam must be >= 0"):
        load_config(overrides=["problem.lam=-1"])


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownNameError, match=r"unknown schedule 'incremntal'.*incremental-frozen.*did you mean 'incremental'"):
        load_config(overrides=["train.schedule=incremntal"])
    with pytest.raises(UnknownNameError, match=r"unknown problem 'rdge'; known problems: (.*, )?ridge(, .*)? \(did you mean 'ridge'\?\)"):
        load_config(overrides=["problem.name=rdge"])


def test_overrides_reach_solvers_by_label_and_index():
    config = load_config(overrides=["solvers.dugd-lambda.lambda_lr=0.05", "solvers.0.period=8", "train.depth=12",
                                    "evaluation.seed=5", "problem.matrix=A.npy"])
    assert config.solver("dugd-lambda").options.lambda_lr == 0.05
    assert config.solver("dugd").options.period == 8
    assert config.train.depth == 12 and config.evaluation.seed == 5
    assert config.problem.options.matrix == "A.npy"
    with pytest.raises(ConfigError, match=r"no solver labelled 'dugdd'.*did you mean 'dugd'"):
        load_config(overrides=["solvers.dugdd.period=2"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(overrides=["train.depth"])


def test_labels_must_be_unique():
    raw = load_raw(None)
    raw["solvers"] = [{"name": "dugd"}, {"name": "dugd", "period": 2}]
    with pytest.raises(ConfigError, match=r"two solvers are labelled 'dugd'.*distinct label"):
        build_config(raw)


def test_a_configuration_without_solvers_is_refused():
    raw = load_raw(None)
    raw.pop("solvers")
    with pytest.raises(ConfigError, match=r"lists no solvers.*one of: .*dugd, .*gd"):
        build_config(raw)


def test_schedule_options_are_validated_under_train():
    config = load_config(overrides=["train.schedule=layer-wise", "train.finetune_lr_scale=0.5"])
    assert config.schedule_options.finetune_lr_scale == 0.5
    assert config.to_dict()["train"]["finetune_lr_scale"] == 0.5
    with pytest.raises(ConfigError, match="unknown key 'train.finetune_lr_scale'"):
        load_config(overrides=["train.finetune_lr_scale=0.5"])  # not an option of 'incremental'


def test_config_file_round_trips_through_to_dict(tmp_path):
    import tomllib

    path = tmp_path / "exp.toml"
    path.write_text(REFERENCE_TOML.replace("depth = 50", "depth = 7"))
    config = load_config(path)
    assert config.train.depth == 7
    resolved = config.to_dict()
    assert resolved["solvers"][1] == {"name": "dugd", "label": "dugd-lambda", "period": 4, "learn_lambda": True,
                                      "lambda_period": 0, "parametrization": "reciprocal", "init_step": 0.0,
                                      "lr": 1e-3, "lambda_lr": 1e-4}
    assert build_config(tomllib.loads(REFERENCE_TOML.replace("depth = 50", "depth = 7"))).to_dict() == resolved


def test_unreadable_or_invalid_files_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[problem\nname = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad)


def test_overrides_do_not_mutate_their_input():
    raw = load_raw(None)
    apply_overrides(raw, ["train.depth=3"])
    assert raw["train"]["depth"] == 50


def test_a_solvers_training_does_not_depend_on_its_position():
    import numpy as np

    from du_framework.compare import build_problem, build_schedule, build_solvers, train_solver

    def trained_eta(solvers, seed=1):
        raw = apply_overrides(load_raw(None), ["problem.n=6", "problem.m=12", "train.depth=3",
                                               "train.steps_per_stage=5", "train.batch_size=4", f"train.seed={seed}"])
        raw["solvers"] = solvers
        config = build_config(raw)
        problem = build_problem(config)
        index = [s.label for s in config.solvers].index("dugd")
        solver = build_solvers(config, problem)[index]
        trained = train_solver(config, index, solver, problem, build_schedule(config), progress=False).solver
        return trained.learned_parameters()["eta"]

    alone = trained_eta([{"name": "dugd"}])
    second = trained_eta([{"name": "gd"}, {"name": "dugd", "label": "dugd"}])
    np.testing.assert_array_equal(alone, second)
    assert not np.array_equal(alone, trained_eta([{"name": "dugd"}], seed=2))
