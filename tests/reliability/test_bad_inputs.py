"""Bad inputs: each is a clear error, before the first compiled step, that
names what is wrong. Config errors come from ``settings.parse``
(called first thing in ``loop.train``); record errors from the pipeline's
checks on the first batch; shape errors at trace time; the rest on resume."""

import json
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mtl_jax import cli, data, settings
from mtl_jax.data.base import DatasetSpec
from mtl_jax.losses import losses
from mtl_jax.train import checkpoint, loop, rundir, validate
from mtl_jax.train.step import make_train_step
from tests.reliability import common
from tests.train import helpers as h


@pytest.fixture
def config(data_dir, tmp_path):
  return common.tiny_config(data_dir, str(tmp_path / "run"))


def _fails(config, error, match):
  with pytest.raises(error, match=match):
    loop.train(config, progress=False, eval_splits=())


# -- configs --------------------------------------------------------------------

def test_cli_typo_suggests_the_field_and_cli_wrong_type(data_dir, tmp_path, capsys):
  args = common.cli_args(data_dir, str(tmp_path / "cli"))
  assert cli.main(args + ["--config.train.num_stepz=3"]) == 2
  err = capsys.readouterr().err
  assert "num_stepz" in err and 'Did you mean "num_steps"' in err
  assert cli.main(args + ["--config.train.batch_size=abc"]) == 2
  err = capsys.readouterr().err
  assert "--config.train.batch_size=abc" in err and "invalid literal for int()" in err
  # A value of the right type that the config check refuses: one line, no
  # traceback; each call parses its own flags, so the same override twice
  # in one process is no "flag defined twice".
  for value in (0, -1):
    assert cli.main(args + [f"--config.train.max_to_keep={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert ("invalid config: train.max_to_keep must be a positive integer, got "
            f"{value}.") in err


def test_wrong_types_name_the_field(config):
  with pytest.raises(TypeError):  # ml_collections refuses it at assignment
    config.train.batch_size = "64"
  with pytest.raises(TypeError, match=r"train\.batch_size must be an integer >= 1, "
                                      r"got '64' \(str\)"):
    settings.parse_train({"num_steps": 3, "batch_size": "64"})
  with pytest.raises(TypeError, match=r"train\.num_steps .* got True \(bool\)"):
    settings.parse_train({"num_steps": True, "batch_size": 8})
  with pytest.raises(ValueError, match=r"optimizer\.learning_rate must be a positive "
                                       r"number, got '1e-3'"):
    validate.check_config(ml_collections.ConfigDict(
        dict(config.to_dict(), optimizer=dict(config.optimizer.to_dict(),
                                              learning_rate="1e-3"))))


@pytest.mark.parametrize("section, key, value, match", [
    ("train", "num_steps", 0, r"train\.num_steps must be a positive integer, got 0"),
    ("train", "batch_size", -8, r"train\.batch_size must be a positive integer, got -8"),
    ("train", "checkpoint_every", -1, r"train\.checkpoint_every must be an integer >= 0"),
    ("train", "nonfinite", "halts", r"train\.nonfinite must be one of \['skip', 'halt'\]"),
    ("optimizer", "learning_rate", 0.0, r"optimizer\.learning_rate must be a positive"),
    ("optimizer", "learning_rate", -1e-3, r"optimizer\.learning_rate must be a positive"),
])
def test_non_positive_numbers(config, section, key, value, match):
  config[section][key] = value
  _fails(config, ValueError, match)


def test_unknown_methods_list_the_valid_names(config):
  config.method.weighting = "dwaa"
  _fails(config, ValueError, r"Unknown weighting method 'dwaa'\. Did you mean 'dwa'\? "
                             r"Valid names: .*equal.*uncertainty")
  config.method.weighting = "dwa"
  config.method.aggregation = "pcgard"
  _fails(config, ValueError, r"Unknown aggregation method 'pcgard'\. Did you mean "
                             r"'pcgrad'\? Valid names: .*mgda.*upgrad")


def test_out_of_domain_hyperparameters_are_named(config):
  config.method.weighting_kwargs = dict(temperature=-1.0)
  _fails(config, ValueError, r"Hyperparameter 'temperature' must be > 0, got -1\.0")
  config.method.weighting_kwargs = {}
  config.method.aggregation_kwargs = dict(beta=2.0)
  _fails(config, ValueError, r"'beta' .*got 2\.0")


def test_fixed_weights_of_the_wrong_length(config):
  config.method.update(dict(weighting="fixed", weighting_kwargs=dict(weights=[1.0]),
                            aggregation=None))
  _fails(config, ValueError, r"weighting_kwargs: Expected 2 task weights .*length 1.*"
                             r"\['shape', 'x'\]")


def test_task_sets_that_differ_between_model_and_data(config):
  config.tasks["color"] = dict(kind="multiclass", num_classes=3)
  _fails(config, ValueError, r"Dataset 'sprites' has no task\(s\) \['color'\]\. "
                             r"Config tasks: \['color', 'shape', 'x'\]; dataset tasks: "
                             r"\['orientation', 'scale', 'shape', 'x', 'y'\]")


def test_unknown_dataset_lists_the_valid_ones(config):
  config.data.name = "spritez"
  _fails(config, ValueError, r"Unknown dataset 'spritez'; valid datasets: \[.*'sprites'")


# -- records (a small registered dataset) ---------------------------------------

def _register(monkeypatch, labels, *, dtype=np.int32, ignore=None, name="bad_rows"):
  rng = np.random.default_rng(0)
  x = rng.random((len(labels), 4)).astype(np.float32)
  records = [{"x": x[i], "c": np.asarray(labels[i], dtype), "r": np.float32(x[i, 0])}
             for i in range(len(labels))]
  decl = dict(kind="multiclass", num_classes=3)
  if ignore is not None:
    decl["ignore_label"] = ignore
  tasks = {"c": decl, "r": dict(kind="regression", dim=1)}
  monkeypatch.setitem(data.REGISTRY.registered, name, DatasetSpec(
      name=name, defaults={}, tasks=lambda o: tasks, input_shape=lambda o: (4,),
      load=lambda o, split, root: records, input_feature="x"))
  return name


def _build(name, batch_size=8):
  return data.build({"name": name}, "train", batch_size=batch_size, seed=0,
                    shuffle=False, drop_remainder=True)


def _small_config(config, name, ignore=None):
  config.data = dict(name=name)
  config.tasks = {"c": dict(kind="multiclass", num_classes=3, ignore_label=ignore),
                  "r": dict(kind="regression", dim=1)}
  config.method.aggregation = None
  config.train.update(dict(num_steps=6, batch_size=8, checkpoint_every=2))
  return config


def test_label_out_of_range_names_task_and_value(monkeypatch, config):
  name = _register(monkeypatch, [0, 1, 2, 3] * 4)
  with pytest.raises(ValueError, match=r"Task 'c': label 3 is out of range \[0, 2\]\.$"):
    _build(name)
  _fails(_small_config(config, name), ValueError, r"Task 'c': label 3 is out of range")


def test_negative_label_must_be_declared_ignored(monkeypatch):
  name = _register(monkeypatch, [0, -1, 2, 1] * 4)
  with pytest.raises(ValueError, match=r"Task 'c': label -1 is out of range \[0, 2\]; "
                                       r"a negative label .* declared as ignore_label"):
    _build(name)
  name = _register(monkeypatch, [0, -1, 2, 1] * 4, ignore=-1, name="ignored_rows")
  batch = next(_build(name))
  assert batch["targets"]["c"].tolist()[:4] == [0, -1, 2, 1]


def test_dataset_ignore_label_must_be_declared_by_the_config(monkeypatch, config):
  name = _register(monkeypatch, [0, -1, 2, 1] * 4, ignore=-1, name="ignored_rows")
  _fails(_small_config(config, name), ValueError,
         r"Task 'c': the config declares ignore_label=None; dataset 'ignored_rows' "
         r"has ignore_label=-1")


def test_float_labels_for_a_classification_task_name_the_feature(monkeypatch):
  name = _register(monkeypatch, [0.0, 1.0, 2.0, 1.5] * 4, dtype=np.float32)
  with pytest.raises(TypeError, match=r"Feature 'c': dtype float32 is not one of "
                                      r"\['int', 'uint'\]"):
    _build(name)


def test_all_tasks_empty_for_too_many_batches(monkeypatch, config):
  """Every label of ``c`` is its ignore label and ``r`` is masked out."""
  name = _register(monkeypatch, [-1] * 32, ignore=-1, name="no_labels")
  config = _small_config(config, name, ignore=-1)
  config.tasks = {"c": config.tasks.c.to_dict()}  # only the unlabelled task
  config.train.max_empty_batches = 3
  _fails(config, validate.EmptyBatches,
         r"No task had a labelled example in 3 consecutive training batches "
         r"\(steps 1-3; train\.max_empty_batches=3\).*\['c'\]")


def test_empty_batch_guard_resets_on_a_labelled_batch():
  guard = validate.EmptyBatchGuard(2, ["a", "b"])
  for step, counts in enumerate([[0, 0], [0, 1], [0, 0], [0, 0]], start=1):
    guard.observe(step, jnp.asarray(counts))
  assert guard.streak == 1  # the last step is checked on the next observe
  with pytest.raises(validate.EmptyBatches, match=r"steps 3-4"):
    guard.observe(5, jnp.asarray([0, 0]))
  validate.EmptyBatchGuard(0, ["a"]).observe(1, None)  # 0: off, never looks


# -- shapes (trace time) --------------------------------------------------------

def test_prediction_target_shape_mismatch_names_the_task():
  task = h.TASKS[0]  # cls: 3 classes
  with pytest.raises(ValueError, match=r"Task 'cls': predictions \(8, 4\) and targets "
                                       r"\(8,\) do not fit a multiclass task with 3 "
                                       r"output\(s\)"):
    losses.task_loss(task, jnp.zeros((8, 4)), jnp.zeros(8, jnp.int32), jnp.ones(8, bool))
  p, method, tx, state = h.setup()
  step = make_train_step(p.graphdef, h.TASKS, method, tx)
  batch = h.batch(0)
  batch["targets"]["reg"] = np.zeros((8, 3), np.float32)  # the task has dim=2
  with pytest.raises(ValueError, match=r"Task 'reg': predictions \(8, 2\) and targets "
                                       r"\(8, 3\) .*expected predictions \[B, 2\] and "
                                       r"targets \[B, 2\]"):
    step(state, batch)


# -- resume ---------------------------------------------------------------------

def test_resume_refuses_other_tasks_and_other_process_counts(monkeypatch, config):
  name = _register(monkeypatch, [0, 1, 2, 1] * 8, name="good_rows")
  config = _small_config(config, name)
  loop.train(config, progress=False, eval_splits=())
  ckpt_dir = os.path.join(config.workdir, "checkpoints")
  other = ml_collections.ConfigDict(config.to_dict())
  other.tasks = {"c": config.tasks.c.to_dict()}
  # The saved config differs in its tasks: refused before any restore.
  with pytest.raises(rundir.RunDirError, match=r"different config \(tasks\.r: "
                                               r"'\(present\)' -> '\(absent\)'\)"):
    loop.train(other, resume=True, progress=False, eval_splits=())
  # The checkpoint's own meta is checked too (a run directory without config.json).
  os.remove(os.path.join(config.workdir, "config.json"))
  with pytest.raises(ValueError, match=r"written for tasks \['c', 'r'\], but this run "
                                       r"has tasks \['c'\]"):
    loop.train(other, resume=True, progress=False, eval_splits=())
  # Hand-edit the newest checkpoint's meta as if 2 processes had written it.
  step_dir = os.path.join(ckpt_dir, "6")
  path = os.path.join(step_dir, "meta", "metadata")
  meta = json.load(open(path))
  json.dump(dict(meta, process_count=2), open(path, "w"))
  checkpoint.write_manifest(step_dir)  # re-seal: else it is refused as corrupt
  with pytest.raises(ValueError, match=r"written by 2 process\(es\) but this run has 1.*"
                                       r"Resume with the same process count"):
    loop.train(config, resume=True, progress=False, eval_splits=())
