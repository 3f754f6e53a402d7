"""End to end on the embedded sprites data: training, resume, compare, CLI."""

import json
import os

import jax
import numpy as np
import pytest

from mtl_jax import cli
from mtl_jax.train import compare, logger, loop


def _train_records(workdir):
  return [r for r in logger.read(os.path.join(workdir, "metrics.jsonl"))
          if r["split"] == "train"]


def test_loss_falls_and_step_compiles_once(tiny_sprites_config):
  c = tiny_sprites_config
  c.train.num_steps = 80
  result = loop.train(c, progress=False, eval_splits=("train", "test"))
  assert result.compilations == 1
  records = _train_records(c.workdir)
  # The evaluation of the training split is logged apart from the steps'
  # batch losses (it used to be one more "train" record at the last step).
  assert [r["step"] for r in records] == list(range(1, 81))
  assert result.skipped == sum(r["skipped"] for r in records)  # stated in the summary
  # Equal weighting computes no per-task gradients in the step; the loop's
  # probe still logs the gradient cosines (in [-1, 1]) on logged steps.
  cosines = [v for k, v in records[-1].items() if k.startswith("cos/")]
  assert len(cosines) == 10 and all(-1.0 <= c <= 1.0 for c in cosines)
  first = np.mean([r["total_loss"] for r in records[:10]])
  last = np.mean([r["total_loss"] for r in records[-10:]])
  assert last < 0.8 * first
  test = result.evaluation["test"]
  assert set(test) == {"shape", "scale", "orientation", "x", "y"}
  assert test["shape"]["accuracy"] > 1 / 3  # better than chance on 3 shapes
  evals = [r for r in logger.read(os.path.join(c.workdir, "metrics.jsonl"))
           if r["split"] == "test"]
  assert evals and evals[0]["shape/accuracy"] == pytest.approx(test["shape"]["accuracy"])
  train_eval = [r for r in logger.read(os.path.join(c.workdir, "metrics.jsonl"))
                if r["split"] == logger.TRAIN_EVAL]
  assert [r["step"] for r in train_eval] == [80]
  assert train_eval[0]["loss/shape"] == pytest.approx(result.eval_losses["train"]["shape"])


class _Interrupt(Exception):
  pass


def test_interrupted_run_resumes_to_identical_parameters(tiny_sprites_config, monkeypatch,
                                                         tmp_path):
  c = tiny_sprites_config
  c.train.num_steps = 30
  reference = loop.train(c, workdir=str(tmp_path / "reference"), progress=False)

  build = loop._batch_iterator

  def interrupting(config, split, **kw):
    it = build(config, split, **kw)
    if split != "train":
      return it
    original_next, served = type(it).__next__, [0]

    class Interrupting(type(it)):
      def __next__(self):
        served[0] += 1
        if served[0] > 17:  # dies after step 17; last checkpoint is step 10
          raise _Interrupt()
        return original_next(self)
    it.__class__ = Interrupting
    return it

  monkeypatch.setattr(loop, "_batch_iterator", interrupting)
  with pytest.raises(_Interrupt):
    loop.train(c, workdir=str(tmp_path / "resumed"), progress=False)
  monkeypatch.setattr(loop, "_batch_iterator", build)
  resumed = loop.train(c, workdir=str(tmp_path / "resumed"), resume=True, progress=False)

  assert int(resumed.state.step) == 30
  same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), resumed.state, reference.state)
  assert all(jax.tree.leaves(same)), same
  ref_stream = [r["total_loss"] for r in _train_records(str(tmp_path / "reference"))]
  res_stream = [r["total_loss"] for r in _train_records(str(tmp_path / "resumed"))]
  assert res_stream == ref_stream


def test_compare_prints_table_with_delta_m(tiny_sprites_config, tmp_path):
  c = tiny_sprites_config
  c.train.num_steps = 10
  summary = compare.compare(c, ["equal", "mgda"], workdir=str(tmp_path / "cmp"),
                            progress=False)
  assert list(summary["results"]) == ["single-task", "equal", "mgda"]
  assert summary["delta_m"]["single-task"] == 0.0
  table = summary["table"]
  assert "Delta_m" in table and "| shape | accuracy | higher |" in table
  for label, value in summary["delta_m"].items():
    assert f"{value:+.2f}" in table
  saved = json.load(open(tmp_path / "cmp" / "compare.json"))
  assert saved["delta_m"] == summary["delta_m"]


def test_cli_train_and_config_typo(tiny_sprites_config, tmp_path, capsys):
  c = tiny_sprites_config
  args = ["mtl-jax", "train", "--config=configs/sprites.py:mlp",
          f"--config.data.data_dir={c.data.data_dir}", "--config.data.image_size=16",
          "--config.data.num_train=256", "--config.data.num_test=128",
          "--config.data.num_validation=64", "--config.train.num_steps=3",
          f"--workdir={tmp_path / 'cli'}", "--noprogress"]
  cwd = os.getcwd()
  os.chdir(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
  try:
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "Trained 3 steps" in out and "shape: accuracy=" in out
    assert cli.main(args[:3] + ["--config.train.num_stepz=3"]) == 2
    err = capsys.readouterr().err
    assert "num_stepz" in err and "num_steps" in err
  finally:
    os.chdir(cwd)
