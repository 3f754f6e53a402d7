"""mtl-jax report: figures, tables, TensorBoard events, skip messages, CLI."""

import json
import math
import os
import re
import shutil
import types

import pytest
from PIL import Image

from mtl_jax import cli, report
from mtl_jax.report import figures, runs as runs_lib
from mtl_jax.train import compare, logger
from tests import configs_loader
from tests.report import tb_events

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _render(run_dirs, out, **kw) -> str:
  with open(report.render([str(d) for d in run_dirs], str(out), progress=False, **kw)) as f:
    return f.read()


def _figure_links(md: str) -> list[str]:
  return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def _assert_pngs(md: str, out) -> list[str]:
  """Every image in report.md exists and is a real, non-trivial PNG."""
  links = _figure_links(md)
  for link in links:
    path = os.path.join(str(out), link)
    with open(path, "rb") as f:
      assert f.read(8) == PNG_MAGIC, link
    assert os.path.getsize(path) > 5000, link
    with Image.open(path) as image:
      image.verify()
    with Image.open(path) as image:
      assert image.format == "PNG" and min(image.size) >= 200, (link, image.size)
  return [os.path.basename(link) for link in links]


def _table(md: str) -> dict:
  """``{(task, metric): {column: cell}}`` of the metric table (bold stripped)."""
  lines = [l for l in md.splitlines() if l.startswith("| ")]
  header_at = next(i for i, l in enumerate(lines) if l.startswith("| task | metric |"))
  columns = [c.strip().strip("`") for c in lines[header_at].split("|")[1:-1]]
  rows = {}
  for line in lines[header_at + 1:]:
    cells = [c.strip().replace("**", "") for c in line.split("|")[1:-1]]
    if len(cells) != len(columns):
      break
    rows[(cells[0], cells[1])] = dict(zip(columns[3:], cells[3:]))
  return rows


def _write_run(path, records, config=None):
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
  if config is not None:
    with open(os.path.join(path, "config.json"), "w") as f:
      json.dump(config, f)
  return str(path)


TWO_TASKS = {"a": {"kind": "multiclass", "num_classes": 3, "metrics": ["accuracy"]},
             "b": {"kind": "regression", "dim": 1, "metrics": ["mae"]}}


def _synthetic(path, accuracy, mae, *, cos=False, steps=40):
  records = []
  for s in range(1, steps + 1):
    r = {"step": s, "split": "train", "loss/a": 2.0 / s, "loss/b": 1.0 / s + 0.01,
         "weight/a": 1.0, "weight/b": 1.0 + s / steps, "total_loss": 3.0 / s}
    if cos:
      r.update({"agg_weight/a": 0.5, "agg_weight/b": 0.5, "cos/a/b": math.sin(s / 5)})
    records.append(r)
  records.append({"step": steps, "split": "test", "a/accuracy": accuracy, "b/mae": mae,
                  "loss/a": 0.1, "loss/b": 0.2})
  config = {"name": os.path.basename(str(path)), "tasks": TWO_TASKS,
            "method": {"weighting": "equal", "aggregation": "mgda" if cos else "none"},
            "model": {"arch": "hard_sharing", "trunk": {"kind": "mlp"}},
            "train": {"num_steps": steps, "batch_size": 8}}
  return _write_run(path, records, config)


# --- a real train run --------------------------------------------------------------


def test_report_of_a_train_run(sprites_run, tmp_path):
  md = _render([sprites_run], tmp_path)
  name = os.path.basename(sprites_run)
  pngs = _assert_pngs(md, tmp_path)
  assert sorted(pngs) == sorted(["loss.png", f"{name}-weights.png",
                                 f"{name}-cos-matrix.png", f"{name}-cos-steps.png"])
  records = logger.read(os.path.join(sprites_run, "metrics.jsonl"))
  test = [r for r in records if r["split"] == "test"][-1]
  table = _table(md)
  metrics = {k: v for k, v in test.items() if k.count("/") == 1 and not k.startswith("loss/")}
  declared = configs_loader.load("sprites", "mlp").tasks
  assert len(metrics) == sum(len(spec["metrics"]) for spec in declared.values())
  for key, value in metrics.items():
    assert table[tuple(key.split("/"))] == {name: f"{value:.4f}"}
  assert "No Delta_m: none of the runs is a single-task baseline" in md
  assert "_Pareto front: skipped, a Pareto plot compares runs; only one run" in md
  assert '"aggregation": "mgda"' in md  # the config section


def test_config_comes_from_checkpoint_meta_without_config_json(sprites_run, tmp_path):
  shutil.copytree(os.path.join(sprites_run, "checkpoints"), tmp_path / "checkpoints")
  config, source = runs_lib.read_config(str(tmp_path))
  assert source.startswith("checkpoints") and source.endswith(os.path.join("meta", "metadata"))
  assert config["method"]["aggregation"] == "mgda" and sorted(config["tasks"]) == [
      "orientation", "scale", "shape", "x", "y"]
  assert runs_lib.read_config(str(tmp_path / "nothing")) == (
      None, "no config.json and no checkpoint meta")


def test_tensorboard_events_mirror_the_json_lines(sprites_run):
  assert tb_events.event_files(sprites_run)
  events = tb_events.scalars(sprites_run)
  expected = {}
  for r in logger.read(os.path.join(sprites_run, "metrics.jsonl")):
    for key, value in r.items():
      if key not in ("step", "split") and not isinstance(value, list):
        expected.setdefault(f"{r['split']}/{key}", {})[r["step"]] = float(value)
  assert set(events) == set(expected)
  assert {"train/loss/shape", "train/agg_weight/x", "train/cos/scale/shape",
          "validation/shape/accuracy", "test/x/mae", "test/loss/y"} <= set(events)
  assert "train/empty" not in events
  for tag, by_step in expected.items():
    assert events[tag] == pytest.approx(by_step, rel=1e-5, abs=1e-6, nan_ok=True), tag


# --- a real compare run ------------------------------------------------------------


def test_report_of_a_compare_dir(compare_dir, tmp_path):
  md = _render([compare_dir], tmp_path)
  pngs = _assert_pngs(md, tmp_path)
  # Equal weighting logs cosines through the loop's Gramian probe; the
  # single-task baselines share no parameters, so they have none.
  assert {"loss.png", "pareto.png", "mgda-cos-matrix.png", "mgda-cos-steps.png",
          "equal-weights.png", "equal-cos-matrix.png"} <= set(pngs)
  assert "_single-task: gradient cosine: skipped, no `cos/<a>/<b>` records" in md
  with open(os.path.join(compare_dir, "compare.json")) as f:
    summary = json.load(f)
  table = _table(md)
  for label, results in summary["results"].items():
    for task, metrics in results.items():
      for metric, value in metrics.items():
        assert table[(task, metric)][label] == f"{value:.4f}"
    assert table[("Delta_m %", "all")][label] == f"{summary['delta_m'][label]:+.2f}"


def test_cli_report(compare_dir, tmp_path, capsys):
  out = tmp_path / "out"
  assert cli.main(["mtl-jax", "report", compare_dir, f"--out={out}", "--noprogress"]) == 0
  assert "Report:" in capsys.readouterr().out
  _assert_pngs((out / "report.md").read_text(), out)
  assert cli.main(["mtl-jax", "report"]) == 2
  assert "give one or more run directories" in capsys.readouterr().err
  assert cli.main(["mtl-jax", "report", str(tmp_path / "missing")]) == 2


def test_compare_shows_a_progress_bar_over_runs(tiny_sprites_config, monkeypatch, capsys):
  c = tiny_sprites_config
  x_task = c.tasks["x"].to_dict()
  x_task["metrics"] = ("mae",)
  c.tasks = {"shape": c.tasks["shape"], "x": x_task}

  def fake_train(config, *, workdir, progress, eval_splits):
    values = {"shape": {"accuracy": 0.5}, "x": {"mae": 0.25}}
    return types.SimpleNamespace(evaluation={eval_splits[0]: values}, steps_per_second=1.0)

  monkeypatch.setattr(compare.loop, "train", fake_train)
  compare.compare(c, ["equal", "mgda"], progress=True)
  err = capsys.readouterr().err
  assert "compare" in err and "3/3" in err and "run" in err


# --- synthetic runs: baselines, Pareto, missing data --------------------------------


def test_train_runs_with_a_single_task_run_get_delta_m_and_pareto(tmp_path, capsys):
  dirs = [_synthetic(tmp_path / "single-task", 0.5, 0.4),
          _synthetic(tmp_path / "ew", 0.8, 0.2),
          _synthetic(tmp_path / "mgda", 0.9, 0.3, cos=True)]
  path = report.render(dirs, str(tmp_path / "out"), progress=True)
  assert "report" in capsys.readouterr().err  # the tqdm bar (forced on)
  md = open(path).read()
  assert sorted(_assert_pngs(md, tmp_path / "out")) == sorted([
      "loss.png", "single-task-weights.png", "ew-weights.png", "mgda-weights.png",
      "mgda-cos-matrix.png", "mgda-cos-steps.png", "pareto.png"])
  deltas = _table(md)[("Delta_m %", "all")]
  # ew: accuracy +60% better, mae 50% better -> -55; mgda: -80 and -25 -> -52.5.
  assert deltas == {"single-task": "+0.00", "ew": "-55.00", "mgda": "-52.50"}
  assert _table(md)[("a", "accuracy")]["mgda"] == "0.9000"


def test_non_dominated():
  points = {"st": (0.5, 0.4), "ew": (0.8, 0.2), "mgda": (0.9, 0.3), "tie": (0.8, 0.2)}
  assert figures.non_dominated(points, (True, False)) == {"ew", "mgda", "tie"}
  assert figures.non_dominated(points, (False, False)) == {"st", "ew", "tie"}
  assert figures.non_dominated({"x": (math.nan, 1.0), "y": (1.0, 1.0)},
                               (False, False)) == {"y"}


def test_missing_data_gives_skip_messages(tmp_path):
  records = [{"step": s, "split": "train", "loss/a": 1.0 / s, "loss/b": 2.0 / s,
              "total_loss": 3.0 / s} for s in range(1, 6)]
  md = _render([_write_run(tmp_path / "bare", records)], tmp_path / "out")
  assert _assert_pngs(md, tmp_path / "out") == ["loss.png"]
  assert "_bare: task weights: skipped, no `weight/<task>` or `agg_weight/<task>`" in md
  assert "_bare: gradient cosine: skipped, no `cos/<a>/<b>` records" in md
  assert "No run has `test` evaluation records" in md
  assert "`bare`: config not found (no config.json and no checkpoint meta)" in md

  md = _render([_write_run(tmp_path / "empty", []), _synthetic(tmp_path / "two", 0.5, 0.5)],
               tmp_path / "out2")
  assert "_empty: task weights: skipped" in md
  assert "_Pareto front: skipped, the Pareto plot is for runs on the same two tasks" in md
  assert "No Delta_m: none of the runs is a single-task baseline" in md

  md = _render([_write_run(tmp_path / "nothing", [])], tmp_path / "out3")
  assert _figure_links(md) == []
  assert "_Training loss per task: skipped, no train records with `loss/<task>`" in md
  with pytest.raises(FileNotFoundError, match="neither metrics.jsonl"):
    report.render([str(tmp_path / "out3" / "figures")], progress=False)


def test_writer_sends_records_to_json_lines_and_tensorboard(tmp_path):
  w = logger.make_writer(str(tmp_path / "tb"))
  w.write(3, "train", {"loss/a": 1.5, "skipped": True, "empty": ["b"], "loss/b": "nan"})
  w.close()
  assert logger.read(w.path)[0]["loss/a"] == 1.5
  events = tb_events.scalars(str(tmp_path / "tb"))
  assert set(events) == {"train/loss/a", "train/skipped", "train/loss/b"}
  assert events["train/loss/a"] == {3: 1.5} and events["train/skipped"] == {3: 1.0}
  assert math.isnan(events["train/loss/b"][3])

  w = logger.make_writer(str(tmp_path / "json-only"), tensorboard=False)
  w.write(1, "train", {"loss/a": 1.0})
  w.close()
  assert os.path.exists(w.path) and not tb_events.event_files(str(tmp_path / "json-only"))
  w = logger.make_writer(str(tmp_path / "off"), enabled=False)
  w.write(1, "train", {"loss/a": 1.0})
  w.close()
  assert not os.path.exists(tmp_path / "off")


def test_resumed_writer_purges_later_tensorboard_events(tmp_path):
  from tensorboardX.proto import event_pb2
  logger.make_writer(str(tmp_path), resumed_from=10).close()
  events = [event_pb2.Event.FromString(d) for path in tb_events.event_files(str(tmp_path))
            for d in tb_events.records(path)]
  starts = [e for e in events if e.HasField("session_log")]
  assert [(e.step, e.session_log.status) for e in starts] == [(11, event_pb2.SessionLog.START)]


def test_tensorboard_events_are_flushed_when_a_run_fails(tiny_sprites_config, tmp_path,
                                                         monkeypatch):
  """The writer is closed on errors too: the logged steps reach the event file."""
  from mtl_jax.train import loop

  def broken_evaluate(*args, **kwargs):
    raise RuntimeError("evaluation failed")

  monkeypatch.setattr(loop, "evaluate", broken_evaluate)
  c = tiny_sprites_config
  c.train.update(num_steps=3, log_every=1, checkpoint_every=0)
  with pytest.raises(RuntimeError, match="evaluation failed"):
    loop.train(c, workdir=str(tmp_path), progress=False)
  logged = {json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")}
  events = tb_events.scalars(str(tmp_path))
  assert logged and set(events["train/total_loss"]) == logged
