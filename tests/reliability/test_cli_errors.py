"""User errors of the CLI (issue 20): one line on stderr, exit 2, no file
created or changed; and a diverged ``skip`` run halts like ``halt``."""

import os
import stat

import pytest

from mtl_jax import cli, settings
from mtl_jax.train import logger, loop
from tests.reliability import common

HERE = os.path.dirname(os.path.abspath(__file__))


def _refused(capsys, args, *needles):
  capsys.readouterr()
  assert cli.main(args) == 2
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and "Traceback" not in err, err
  for needle in needles:
    assert needle in err, err
  return err


def test_missing_config_file(tmp_path, capsys):
  _refused(capsys, ["mtl-jax", "train", f"--config={tmp_path}/nope.py"],
           f"no config file '{tmp_path}/nope.py'")
  assert os.listdir(tmp_path) == []


def test_config_syntax_error_names_file_and_line(tmp_path, capsys):
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config():\n  return {\n  x = 1\n")
  _refused(capsys, ["mtl-jax", "train", f"--config={bad}"], str(bad), "line ")
  assert os.listdir(tmp_path) == ["bad.py"]


def test_bad_config_argument(capsys):
  _refused(capsys, ["mtl-jax", "train", "--config=configs/sprites.py:zzz"],
           "unknown arg 'zzz'")


def test_compare_unknown_method_creates_nothing(data_dir, tmp_path, capsys):
  base = tmp_path / "runs"
  _refused(capsys, ["mtl-jax", "compare", f"--config={HERE}/tiny_config.py:{data_dir}",
                    f"--config.workdir={base}", "--methods=equal,nosuch"],
           "Unknown method 'nosuch'")
  assert not base.exists()


@pytest.mark.parametrize("make", [False, True])
def test_eval_on_a_missing_or_empty_run_dir(data_dir, tmp_path, capsys, make):
  work = tmp_path / "run"
  if make:
    work.mkdir()
  _refused(capsys, ["mtl-jax", "eval", f"--config={HERE}/tiny_config.py:{data_dir}",
                    f"--workdir={work}"], str(work))
  assert work.exists() == make and (not make or os.listdir(work) == [])


def test_report_on_a_broken_metrics_line_names_file_and_line(tmp_path, capsys):
  run = tmp_path / "run"
  run.mkdir()
  (run / "metrics.jsonl").write_text('{"step": 1, "split": "train"}\n{oops\n'
                                     '{"step": 2, "split": "train"}\n')
  _refused(capsys, ["mtl-jax", "report", str(run), "--noprogress"],
           f"{run / 'metrics.jsonl'}, line 2")
  assert sorted(os.listdir(run)) == ["metrics.jsonl"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_run_directory(data_dir, tmp_path, capsys):
  parent = tmp_path / "ro"
  parent.mkdir()
  parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
  try:
    _refused(capsys, common.cli_args(data_dir, str(parent / "run")), "not writable")
  finally:
    parent.chmod(stat.S_IRWXU)
  assert os.listdir(parent) == []


def test_read_only_check_without_root(tmp_path, monkeypatch):
  """The same check where the tests run as root: ``os.access`` says no."""
  from mtl_jax.train import rundir
  monkeypatch.setattr(os, "access", lambda path, mode: False)
  with pytest.raises(rundir.RunDirError, match="not writable"):
    rundir.check(str(tmp_path / "run"), resume=False, overwrite=False)


def test_skip_run_that_skips_too_many_updates_halts_like_halt(data_dir, tmp_path, capsys):
  work = tmp_path / "run"
  args = [*common.cli_args(data_dir, str(work)), "--config.train.num_steps=20",
          "--config.optimizer.learning_rate=1e6", "--config.train.nonfinite=skip"]
  capsys.readouterr()
  assert cli.main(args) == 3
  err = capsys.readouterr().err.strip()
  limit = -(-20 // 10)  # 10 % of the 20 steps
  assert "Halting at step" in err and f"{limit + 1} updates" in err
  assert f"limit {limit}" in err
  assert "\n" not in err
  records = logger.read(str(work / "metrics.jsonl"))
  assert sum(r["skipped"] for r in records if r["split"] == "train") == limit + 1
  assert not [r for r in records if r["split"] == "test"]  # no result reported


@pytest.mark.parametrize("num_steps, limit", [(60, 6), (61, 7), (5, 1), (1000, 100)])
def test_skip_limit_default_is_ten_percent_of_the_steps(num_steps, limit):
  assert loop.skip_limit(settings.TrainSettings(num_steps=num_steps, batch_size=8,
                                                max_nonfinite=10)) == limit
  assert loop.skip_limit(settings.parse_train(
      dict(num_steps=num_steps, batch_size=8, max_skipped=4))) == 4


def test_summary_states_skipped_updates(data_dir, tmp_path, capsys):
  args = [*common.cli_args(data_dir, str(tmp_path / "run")), "--config.train.num_steps=2"]
  capsys.readouterr()
  assert cli.main(args) == 0
  assert "0 updates skipped as non-finite" in capsys.readouterr().out


def test_misspelt_field_is_one_plain_line(data_dir, tmp_path, capsys):
  err = _refused(capsys, [*common.cli_args(data_dir, str(tmp_path / "run")),
                          "--config.train.num_stepz=3"],
                 "unknown config field 'num_stepz'", 'Did you mean "num_steps"')
  assert "\\n" not in err and "\\'" not in err
  assert os.listdir(tmp_path) == []


def test_library_value_error_is_one_line_and_creates_nothing(data_dir, tmp_path, capsys,
                                                             monkeypatch):
  """A ValueError of the library while building the run (bad input it names)."""
  def bad_setup(settings):
    raise ValueError("model.options: a bad value for task 'x'\nsecond line")
  monkeypatch.setattr(loop, "setup", bad_setup)
  base = tmp_path / "runs"
  args = [a for a in common.cli_args(data_dir, "unused") if not a.startswith("--workdir")]
  _refused(capsys, [*args, f"--config.workdir={base}"],
           "mtl-jax train: model.options: a bad value for task 'x'")
  assert not base.exists()  # the default run directory was never created
  monkeypatch.setenv("MTL_JAX_DEBUG", "1")
  with pytest.raises(ValueError, match="second line"):
    cli.main([*args, f"--config.workdir={base}"])
