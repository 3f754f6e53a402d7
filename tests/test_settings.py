"""The config is read once into typed settings; each error is one line naming
the key and the value; every subcommand answers --help."""

import pytest

from mtl_jax import cli, settings
from tests import configs_loader


@pytest.fixture
def config():
  return configs_loader.load("sprites", "mlp")


def test_parse_gives_typed_sections(config):
  s = settings.parse(config)
  assert isinstance(s.train, settings.TrainSettings)
  assert (s.train.num_steps, s.train.batch_size) == (1000, 64)
  assert s.train.accumulation_steps == 1 and s.train.nonfinite == "skip"
  assert s.method.aggregation is None and s.method.label == "equal"
  assert s.model.arch == "hard_sharing" and "arch" not in s.model.options
  assert set(s.model.options) == {"trunk", "head"}
  assert s.optimizer.learning_rate == 2e-3
  assert [t.name for t in s.tasks] == sorted(config.tasks)
  assert s.input_shape == (32, 32, 1)
  assert settings.parse(s) is s  # parsed settings pass through


@pytest.mark.parametrize("section, key, value, match", [
    ("train", "num_stepz", 3, r"train\.num_stepz is not a setting\. Did you mean "
                              r"train\.num_steps\?"),
    ("train", "max_to_keep", 0, r"train\.max_to_keep must be a positive integer, got 0"),
    ("method", "aggregation", "none", r"method\.aggregation='none' is not an "
                                      r"aggregation method; no aggregator is None"),
    ("method", "engine", "jacobean", r"Unknown engine 'jacobean'"),
    ("optimizer", "learning_rat", 1e-3, r"optimizer\.learning_rat is not a setting"),
    ("mesh", "num_devices", -1, r"mesh\.num_devices must be an integer >= 0"),
])
def test_one_config_error_names_the_key_and_value(config, section, key, value, match):
  config.unlock()
  config[section] = dict(config.get(section, None) or {}, **{key: value})
  with pytest.raises(settings.ConfigError, match=match):
    settings.parse(config)


def test_an_unknown_section_is_refused(config):
  config.unlock()
  config.trian = dict(num_steps=3)
  with pytest.raises(settings.ConfigError, match=r"config\.trian is not a setting\. "
                                                 r"Did you mean config\.train\?"):
    settings.parse(config)


def test_model_options_are_the_architectures_keywords(config):
  config.unlock()
  config.model.experts = dict(num=2)
  with pytest.raises(settings.ConfigError, match=r"^model: .*'hard_sharing'.* no "
                                                 r"option\(s\) \['experts'\]"):
    settings.parse(config)
  del config.model["experts"]
  config.model.trunk.hidden = (0,)
  s = settings.parse(config)  # values are checked when the model is built
  with pytest.raises(settings.ConfigError, match=r"^model: .*hidden.*0"):
    s.model.build(s.tasks, s.input_shape, seed=0)


def test_a_config_error_is_a_value_and_a_type_error():
  assert issubclass(settings.ConfigError, ValueError)
  assert issubclass(settings.ConfigError, TypeError)


@pytest.mark.parametrize("command, flag", [
    ("train", "--resume"), ("compare", "--methods"), ("eval", "--split"),
    ("report", "--out")])
def test_every_command_answers_help_with_its_own_flags(command, flag, capsys):
  assert cli.main(["mtl-jax", command, "--help"]) == 0
  out = capsys.readouterr().out
  assert out.startswith(f"usage: mtl-jax {command}") and flag in out
  others = {"--resume", "--methods", "--out"} - {flag}
  assert not any(f"{o}:" in out for o in others)


def test_no_command_prints_the_usage(capsys):
  assert cli.main(["mtl-jax", "--help"]) == 0
  assert "commands:" in capsys.readouterr().out
  assert cli.main(["mtl-jax"]) == 2
  assert "commands:" in capsys.readouterr().err


def test_benchmark_names_a_published_protocol(config):
  assert settings.parse(config).benchmark is None
  config.benchmark = dict(name="nyuv2", protocol="A")
  assert settings.parse(config).benchmark == settings.BenchmarkSettings("nyuv2", "A")
  config.benchmark = dict(name="nyuv2", protocol="Z")
  with pytest.raises(settings.ConfigError, match="protocol 'Z'"):
    settings.parse(config)
  config.benchmark = dict(name="nyuv2", protocl="A")
  with pytest.raises(settings.ConfigError, match=r"benchmark\.protocl is not a setting"):
    settings.parse(config)
