"""Run-directory safety (issue 20): locks, refusals, --overwrite, default
timestamped run directories, safe resumes and clean metrics."""

import datetime
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from mtl_jax import cli
from mtl_jax.train import checkpoint, logger, loop, rundir
from tests.reliability import common

STEPS = 4


def _args(data_dir, workdir=None, *extra):
  args = common.cli_args(data_dir, workdir or "unused")
  if workdir is None:
    args = [a for a in args if not a.startswith("--workdir")]
  return [*args, f"--config.train.num_steps={STEPS}", "--config.train.checkpoint_every=2",
          *extra]


def _keys(workdir):
  return [(r["step"], r["split"]) for r in logger.read(os.path.join(workdir, "metrics.jsonl"))]


def _snapshot(path):
  out = {}
  for root, _, names in os.walk(path):
    for n in names:
      full = os.path.join(root, n)
      out[full] = (os.path.getsize(full), os.path.getmtime(full))
  return out


def _dead_pid():
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_live_lock_refuses_naming_host_and_pid_and_stale_lock_is_taken_over(tmp_path):
  work = str(tmp_path / "run")
  with rundir.Lock(work):
    with pytest.raises(rundir.RunDirError, match=f"host {socket.gethostname()}, pid "
                       f"{os.getpid()}"):
      rundir.check(work, resume=True, overwrite=False)
    with pytest.raises(rundir.RunDirError, match="in use by another run"):
      rundir.Lock(work).acquire()
  assert not os.path.exists(os.path.join(work, rundir.LOCK))
  with open(os.path.join(work, rundir.LOCK), "w") as f:
    json.dump({"host": socket.gethostname(), "pid": _dead_pid()}, f)
  rundir.check(work, resume=False, overwrite=False)  # stale: not a refusal
  with pytest.warns(RuntimeWarning, match="stale lock"):
    lock = rundir.Lock(work).acquire()
  assert json.load(open(lock.path))["pid"] == os.getpid()
  lock.release()


def test_new_run_dirs_are_distinct_and_latest_follows(tmp_path):
  base = str(tmp_path / "runs")
  now = datetime.datetime(2026, 1, 2, 3, 4, 5)
  a = rundir.new_run_dir(base, now)
  assert a == os.path.join(base, "20260102-030405") and not os.path.exists(a)
  assert rundir.latest(base) == base  # nothing linked yet: the flat layout
  os.makedirs(a)
  rundir.link_latest(a)
  b = rundir.new_run_dir(base, now)  # same second: a suffix
  assert b == a + "-1"
  os.makedirs(b)
  rundir.link_latest(b)
  assert os.path.realpath(rundir.latest(base)) == os.path.realpath(b)
  assert os.readlink(os.path.join(base, "latest")) == "20260102-030405-1"  # relative


def test_second_run_refuses_and_overwrite_replaces(data_dir, tmp_path, capsys):
  work = str(tmp_path / "run")
  assert cli.main(_args(data_dir, work)) == 0
  before = _snapshot(work)
  capsys.readouterr()
  assert cli.main(_args(data_dir, work)) == 2
  err = capsys.readouterr().err.strip()
  assert "already holds a run" in err and "--overwrite" in err and "\n" not in err
  assert _snapshot(work) == before  # nothing changed
  with pytest.warns(RuntimeWarning, match="--overwrite"):
    assert cli.main(_args(data_dir, work, "--overwrite")) == 0
  keys = _keys(work)
  assert len(keys) == len(set(keys)) and [k for k in keys if k[1] == "train"] == [
      (s, "train") for s in range(1, STEPS + 1)]
  assert checkpoint.Checkpointer(os.path.join(work, "checkpoints"), every=0).latest_step() == STEPS


def test_default_run_dir_is_new_per_run_and_eval_uses_latest(data_dir, tmp_path, capsys):
  base = str(tmp_path / "runs")
  for _ in range(2):
    assert cli.main(_args(data_dir, None, f"--config.workdir={base}")) == 0
  runs = sorted(d for d in os.listdir(base) if d != rundir.LATEST)
  assert len(runs) == 2
  for d in runs:  # each run has only its own records
    keys = _keys(os.path.join(base, d))
    assert len(keys) == len(set(keys)) and max(k[0] for k in keys) == STEPS
  assert os.path.realpath(os.path.join(base, "latest")) == os.path.realpath(
      os.path.join(base, runs[-1]))
  capsys.readouterr()
  eval_args = [a for a in _args(data_dir, None, f"--config.workdir={base}")
               if not a.startswith("--noprogress")]
  eval_args[1] = "eval"
  assert cli.main(eval_args) == 0
  assert f"step {STEPS}, test:" in capsys.readouterr().out


def test_resume_refuses_unsafe_changes_and_records_safe_ones(data_dir, tmp_path, capsys):
  work = str(tmp_path / "run")
  assert cli.main(_args(data_dir, work)) == 0
  config_before = open(os.path.join(work, "config.json")).read()
  before = _snapshot(work)
  capsys.readouterr()
  assert cli.main(_args(data_dir, work, "--resume", "--config.optimizer.learning_rate=0.1",
                        "--config.model.trunk.hidden=(8,8)")) == 2
  err = capsys.readouterr().err.strip()
  assert "optimizer.learning_rate: 0.005 -> 0.1" in err and "model.trunk.hidden" in err
  assert "\n" not in err and _snapshot(work) == before
  assert cli.main(_args(data_dir, work, "--resume", "--config.train.num_steps=6")) == 0
  assert open(os.path.join(work, "config.json")).read() == config_before
  history = [json.loads(l) for l in open(os.path.join(work, rundir.HISTORY))]
  assert history[-1]["resumed_from_step"] == STEPS
  assert history[-1]["changes"] == {"train.num_steps": [STEPS, 6]}
  keys = _keys(work)
  assert len(keys) == len(set(keys))
  assert [k[0] for k in keys if k[1] == "train"] == list(range(1, 7))
  # Resuming a finished run re-evaluates: the test record is replaced, not added.
  assert cli.main(_args(data_dir, work, "--resume", "--config.train.num_steps=6")) == 0
  assert sorted(_keys(work)) == sorted(keys)


def test_resume_without_a_checkpoint_but_with_metrics_refuses(data_dir, tmp_path, capsys):
  work = str(tmp_path / "run")
  assert cli.main(_args(data_dir, work)) == 0
  for step in os.listdir(os.path.join(work, "checkpoints")):
    os.remove(os.path.join(work, "checkpoints", step, checkpoint.MANIFEST))
  metrics = open(os.path.join(work, "metrics.jsonl")).read()
  capsys.readouterr()
  assert cli.main(_args(data_dir, work, "--resume")) == 2
  err = capsys.readouterr().err.strip()
  assert "no sealed checkpoint" in err and f"step {STEPS}" in err and "\n" not in err
  assert open(os.path.join(work, "metrics.jsonl")).read() == metrics


def test_torn_last_line_is_repaired_and_a_broken_line_is_named(tmp_path):
  path = tmp_path / "metrics.jsonl"
  good = [{"step": 1, "split": "train", "a": 1.0}, {"step": 2, "split": "train", "a": 2.0}]
  path.write_text("".join(json.dumps(r) + "\n" for r in good) + '{"step": 3, "spl')
  with pytest.warns(RuntimeWarning, match="torn last line"):
    writer = logger.JsonlWriter(str(tmp_path))
  assert logger.read(str(path)) == good
  writer.write(2, "train", {"a": 5.0})  # the same (step, split) replaces
  assert [(r["step"], r["a"]) for r in logger.read(str(path))] == [(1, 1.0), (2, 5.0)]
  path.write_text(json.dumps(good[0]) + "\nnot json\n" + json.dumps(good[1]) + "\n")
  with pytest.raises(ValueError, match=f"{path}, line 2"):
    logger.read(str(path))


def test_sigint_saves_and_exits_130(data_dir, tmp_path, monkeypatch, capsys):
  work = str(tmp_path / "run")

  class Interrupting(checkpoint.Checkpointer):
    def should_save(self, s):
      if s == 3:
        os.kill(os.getpid(), signal.SIGINT)
      return super().should_save(s)

  monkeypatch.setattr(loop, "Checkpointer", Interrupting)
  capsys.readouterr()
  before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a pytest-xdist worker
  assert cli.main(_args(data_dir, work)) == 130
  err = capsys.readouterr().err.strip()
  assert "Stopped by SIGINT after step 3" in err and "\n" not in err
  monkeypatch.setattr(loop, "Checkpointer", checkpoint.Checkpointer)
  ckpt = checkpoint.Checkpointer(os.path.join(work, "checkpoints"), every=0)
  assert ckpt.latest_step() == 3
  ckpt.close()
  assert signal.getsignal(signal.SIGINT) == before  # the handler is restored


def test_main_job_twice_without_workdir_gives_two_compare_dirs(data_dir, tmp_path, capsys):
  """The README's main job (``mtl-jax compare``) run twice in a row."""
  base = tmp_path / "runs"
  args = [a for a in _args(data_dir, None, f"--config.workdir={base}", "--methods=equal",
                           "--config.train.num_steps=2")]
  args[1] = "compare"
  for _ in range(2):
    assert cli.main(args) == 0
  runs = sorted(d for d in os.listdir(base) if d != rundir.LATEST)
  assert len(runs) == 2
  for d in runs:
    assert os.path.exists(base / d / "compare.json")
    keys = _keys(str(base / d / "equal"))
    assert len(keys) == len(set(keys)) and max(k[0] for k in keys) == 2
  assert os.path.realpath(base / "latest") == os.path.realpath(base / runs[-1])
  out = tmp_path / "report"
  capsys.readouterr()
  # ``report runs/<name>`` reads ``runs/<name>/latest``.
  assert cli.main(["mtl-jax", "report", str(base), f"--out={out}", "--noprogress"]) == 0
  path = capsys.readouterr().out.strip().split("Report: ")[-1]
  assert os.path.isfile(path) and os.path.dirname(path) == str(out)


def test_torn_lock_file_is_stale_and_resume_with_overwrite_refuses(tmp_path):
  work = tmp_path / "run"
  work.mkdir()
  (work / rundir.LOCK).write_text('{"host": "')  # its writer died mid-write
  with pytest.warns(RuntimeWarning, match="stale lock"):
    rundir.Lock(str(work)).acquire().release()
  with pytest.raises(rundir.RunDirError, match="exclude each other"):
    rundir.check(str(work), resume=True, overwrite=True)
