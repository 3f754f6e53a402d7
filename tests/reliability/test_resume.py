"""Bit-exact resume after real kills, SIGTERM, and determinism (CPU).

Two subprocesses (``_child.py``) die or stop at three positions while the
uninterrupted reference run trains in this process; each interrupted run is
then resumed here and must end with the reference's exact bits: parameters,
optimizer, DWA and GradVac states, RNG key, counters and the loss stream.
"""

import glob
import os
import subprocess
import sys
import warnings

import jax
import pytest

from mtl_jax import data
from mtl_jax.train import checkpoint, loop, rundir, signals
from mtl_jax.train.checkpoint import Checkpointer
from tests.reliability import common

# One expensive module fixture: keep these tests on one xdist worker
# (effective with ``pytest -n N --dist loadgroup``).
pytestmark = pytest.mark.xdist_group("reliability_resume")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _launch(name, *args, out_dir):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  log = open(os.path.join(out_dir, f"{name}.log"), "w")
  proc = subprocess.Popen([sys.executable, "-m", "tests.reliability._child", name, *args],
                          cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
  return proc, log.name


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
  """Starts the children, trains the reference meanwhile, waits for them."""
  root = tmp_path_factory.mktemp("reliability")
  paths = {k: str(root / k) for k in ("reference", "again", "killed_in_save",
                                       "sigterm", "killed_between")}
  config = common.tiny_config(data_dir, paths["reference"])
  data.num_examples(config.data, "train")  # generate the data before the children
  children = {
      "kill_during_save": _launch("kill_during_save", data_dir,
                                  paths["killed_in_save"], out_dir=root),
      "sigterm_then_kill": _launch("sigterm_then_kill", data_dir, paths["sigterm"],
                                   paths["killed_between"], out_dir=root),
  }
  reference = loop.train(config, progress=False, eval_splits=())
  codes, logs = {}, {}
  for name, (proc, log) in children.items():
    codes[name] = proc.wait(timeout=600)
    logs[name] = open(log).read()
  return dict(paths=paths, reference=reference, codes=codes, logs=logs,
              config=lambda key: common.tiny_config(data_dir, paths[key]))


def _resume_and_compare(runs, key, expected_start, killed=False):
  workdir = runs["paths"][key]
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), every=0)
  assert ckpt.latest_step() == expected_start
  ckpt.close()
  assert not glob.glob(os.path.join(workdir, "checkpoints", "*orbax-checkpoint-tmp*"))
  # A SIGKILLed run leaves its lock; its pid is dead: the resume takes it over.
  assert os.path.exists(os.path.join(workdir, rundir.LOCK)) == killed
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    resumed = loop.train(runs["config"](key), resume=True, progress=False, eval_splits=())
  assert any("stale lock" in str(w.message) for w in caught) == killed
  assert not os.path.exists(os.path.join(workdir, rundir.LOCK))
  reference = runs["reference"]
  assert int(resumed.state.step) == common.NUM_STEPS
  common.assert_bit_identical(resumed.state, reference.state)
  ref_records = common.train_records(runs["paths"]["reference"])
  assert [r["step"] for r in ref_records] == list(range(1, common.NUM_STEPS + 1))
  assert common.train_records(workdir) == ref_records


def test_sigkill_during_async_save(runs):
  """Killed while step 20 was being written (``max_to_keep=1``): step 10
  survives, the temporary directory is removed, the run resumes from step 10."""
  assert runs["codes"]["kill_during_save"] == -9, runs["logs"]["kill_during_save"]
  assert "KILLING during the save of step 20" in runs["logs"]["kill_during_save"]
  ckpt_dir = os.path.join(runs["paths"]["killed_in_save"], "checkpoints")
  assert glob.glob(os.path.join(ckpt_dir, "20.orbax-checkpoint-tmp*"))
  # max_to_keep=1: the unfinished step 20 did not cost the sealed step 10.
  assert [d for d in os.listdir(ckpt_dir) if d.isdigit()] == ["10"]
  _resume_and_compare(runs, "killed_in_save", expected_start=10, killed=True)


def test_sigterm_saves_and_exits_143_through_the_cli(runs):
  log = runs["logs"]["sigterm_then_kill"]
  assert f"CLI_EXIT={signals.EXIT_CODE}" in log, log
  assert "Stopped by SIGTERM after step 13; saved checkpoint step 13" in log
  assert "--resume" in log
  _resume_and_compare(runs, "sigterm", expected_start=13)


def test_sigkill_between_saves(runs):
  assert runs["codes"]["sigterm_then_kill"] == -9, runs["logs"]["sigterm_then_kill"]
  assert "KILLING between saves at step 17" in runs["logs"]["sigterm_then_kill"]
  _resume_and_compare(runs, "killed_between", expected_start=10, killed=True)


def test_checkpoint_holds_every_piece_of_state(runs):
  """Step 10 of the reference and of a killed run: the same bits, and every
  piece a resume needs is there and not at its initial value."""
  restored = {}
  for key in ("reference", "killed_between"):
    s = loop.setup(runs["config"](key))
    compiled = loop.compile_run(s)
    ckpt = Checkpointer(os.path.join(runs["paths"][key], "checkpoints"), every=0)
    restored[key] = ckpt.restore(compiled.abstract_state,
                                 checkpoint.meta_for(s.tasks, s.settings.config), step=10)
    ckpt.close()
  (state, data_state, step), (other, other_data, _) = restored.values()
  assert step == 10 and int(state.step) == 10
  common.assert_bit_identical(state, other)
  assert data_state == other_data and data_state["iterator"]
  initial = compiled.init()
  assert int(state.weighting_state.count) == 10       # DWA: losses seen so far
  assert (jax.device_get(state.aggregation_state.targets)
          != jax.device_get(initial.aggregation_state.targets)).any()  # GradVac EMA
  assert (jax.device_get(state.key) == jax.device_get(initial.key)).all()  # run key
  changed = lambda a, b: any((x != y).any() for x, y in zip(
      jax.tree.leaves(jax.device_get(a)), jax.tree.leaves(jax.device_get(b))))
  assert changed(state.params, initial.params)
  assert changed(state.opt_state, initial.opt_state)


def test_same_seed_gives_bit_identical_runs(runs):
  again = loop.train(runs["config"]("again"), progress=False, eval_splits=())
  common.assert_bit_identical(again.state, runs["reference"].state)
  assert (common.train_records(runs["paths"]["again"])
          == common.train_records(runs["paths"]["reference"]))
