"""The MMoE synthetic benchmark's report: per-seed statistics and merging.

The benchmark itself (hours of CPU) is not run here:
``python -m benchmarks.mmoe_synthetic``.
"""

import json
import types

import pytest

from benchmarks.mmoe_synthetic import report as reporting
from benchmarks.mmoe_synthetic import run as runner
from benchmarks.mmoe_synthetic import stats

ARGS = dict(steps=100, lr=0.01, batch_size=8, num_train=64, num_test=32)


def _run(model, p, seed, mse):
  return dict(model=model, p=p, seed=seed, mean_test_mse=mse,
              test_mse={"y1": mse, "y2": mse}, seconds=1.0, steps_per_second=1.0)


def test_summary_has_median_and_extremes_so_one_failed_run_shows():
  runs = [_run("a", 0.0, s, v) for s, v in enumerate((0.4, 0.5, 2.0))]
  runs += [_run("a", 1.0, s, v) for s, v in enumerate((0.4, 0.4, 0.4))]
  summary = stats.summarise(runs, ["a"], [1.0, 0.0])
  cell = summary["a"]["0.0"]
  assert cell["median"] == pytest.approx(0.5) and cell["mean"] == pytest.approx(0.9667,
                                                                                abs=1e-4)
  assert (cell["min"], cell["max"], cell["n"]) == (0.4, 2.0, 3)
  assert stats.degradation(summary, "a", [1.0, 0.0]) == pytest.approx(0.5667, abs=1e-4)
  assert stats.degradation(summary, "a", [1.0, 0.0], "median") == pytest.approx(0.1)
  report = dict(args=dict(ARGS), summary=summary, params={"a": 10}, missing=[],
                runs=runs, command="cmd", merged=[])
  table = reporting.markdown(report)
  assert "0.967 +- 0.732 [0.500]" in table  # population std
  assert "| a | 0.0 | 0.400 | 0.500 | 2.000 |" in table  # every seed's value


def test_merge_adds_the_missing_runs_and_refuses_other_settings(tmp_path):
  old = dict(args=dict(ARGS), command="old command", merged=[],
             runs=[_run("a", 0.0, 0, 0.3), _run("a", 0.0, 1, 0.6)])
  path = tmp_path / "old.json"
  path.write_text(json.dumps(old))
  new = [_run("a", 0.0, 1, 0.5), _run("a", 0.0, 2, 0.7)]
  merged, sources = reporting.merge(new, types.SimpleNamespace(**ARGS), [str(path)])
  assert sorted((r["seed"], r["mean_test_mse"]) for r in merged) == [
      (0, 0.3), (1, 0.5), (2, 0.7)]  # seed 1 is the new run's
  assert sources[0]["runs"] == 1 and sources[0]["command"] == "old command"
  with pytest.raises(ValueError, match="other settings.*steps"):
    reporting.merge(new, types.SimpleNamespace(**dict(ARGS, steps=8000)), [str(path)])


def test_training_curve_averages_the_sampled_losses_of_each_window():
  records = [{"step": s, "loss/y1": float(s), "loss/y2": "nan" if s == 25 else 1.0}
             for s in (5, 10, 15, 20, 25)]
  steps, curve = stats.training_curve(records, ["y1", "y2"], 10)
  assert steps == [10, 20, 25]  # the last window ends at the last step
  assert curve["y1"] == [7.5, 17.5, 25.0]
  assert curve["y2"][:2] == [1.0, 1.0] and curve["y2"][2] != curve["y2"][2]  # nan kept


def test_paper_protocol_sets_the_data_seed_and_merge_refuses_the_other_protocol(tmp_path):
  module = runner.load_config_module()
  fixed, paper = (runner.parse_args(["--protocol", p]) for p in ("fixed", "paper"))
  assert (paper.models, paper.out) == ("hard_sharing,mmoe", str(runner.PAPER_OUT))
  assert runner.make_config(module, "mmoe", 0.5, 3, fixed).data.seed == 0
  c = runner.make_config(module, "mmoe", 0.5, 3, paper)
  assert (c.seed, c.data.seed, c.train.log_every) == (3, 3, paper.sample_every)
  old = dict(args=dict(ARGS), command="old", merged=[], runs=[])  # no protocol: fixed
  path = tmp_path / "old.json"
  path.write_text(json.dumps(old))
  with pytest.raises(ValueError, match="other settings.*protocol"):
    reporting.merge([], types.SimpleNamespace(**dict(ARGS, protocol="paper",
                                                     curve_every=100, sample_every=10)),
                    [str(path)])


def test_paper_protocol_tiny_run_records_curves_and_final_training_loss(tmp_path):
  out = tmp_path / "paper"
  report = runner.main(["--protocol", "paper", "--ps", "1.0,0.0", "--seeds", "2",
                       "--steps", "20", "--curve-every", "10", "--sample-every", "5",
                       "--batch-size", "8", "--num-train", "64", "--num-test", "32",
                       "--out", str(out)])
  runs = report["runs"]
  assert sorted((r["model"], r["p"], r["seed"]) for r in runs) == [
      (m, p, s) for m in ("hard_sharing", "mmoe") for p in (0.0, 1.0) for s in (0, 1)]
  for r in runs:
    assert r["data_seed"] == r["seed"] and r["curve_steps"] == [10, 20]
    assert sorted(r["curve"]) == ["y1", "y2"] and len(r["mean_curve"]) == 2
    assert all(v > 0 for v in r["curve"]["y1"] + r["curve"]["y2"])
    assert sorted(r["final_train_mse"]) == ["y1", "y2"] and r["mean_final_train_mse"] > 0
  # A new dataset per seed: the two seeds' runs differ.
  a, b = ([r["mean_final_train_mse"] for r in runs
           if r["model"] == "mmoe" and r["p"] == 1.0 and r["seed"] == s] for s in (0, 1))
  assert a != b
  cell = report["summary"]["hard_sharing"]["0.0"]
  assert cell["final_train"]["n"] == 2 and len(cell["curve_mean"]) == 2
  assert len(cell["curve_se"]) == 2
  vs = report["rises"]["hard_sharing"]["vs"]["mmoe"]["mean"]
  assert 0.0 <= vs["fraction_le_0"] <= 1.0
  assert {p.name for p in tmp_path.iterdir()} >= {"paper.json", "paper.md", "paper.png"}
  text = (tmp_path / "paper.md").read_text()
  assert "## Final training MSE" in text and "Rise of the final training MSE" in text
  # p = 1 -> 0 is the only lower p here: the per-p rise equals the overall one.
  by_p = report["rises_by_p"]["0.0"]["hard_sharing"]
  assert by_p["mean"] == pytest.approx(report["rises"]["hard_sharing"]["mean"])
  assert "| 0.0 | " in text.split("at every p")[1]
  assert "| hard_sharing | 1.0 | 2 |" in text  # the quantile table
  assert report["first_task_rises"]["mmoe"]["0.0"]["n"] == 2
  assert "## The first task alone" in text
  # The report re-renders from its JSON.
  again = runner.main(["--render", str(tmp_path / "paper.json")])
  assert again["summary"]["mmoe"]["1.0"]["curve_mean"] == report["summary"]["mmoe"]["1.0"][
      "curve_mean"]


def test_first_task_rise_is_paired_by_seed():
  def run(model, p, seed, y1):
    return dict(model=model, p=p, seed=seed, final_train_mse={"y1": y1, "y2": 9.0})
  # Seed 1's y1 is much harder at every p; paired, the rise is exactly +0.1
  # and +0.3 for every seed (standard error 0).
  runs = [run("a", 1.0, 0, 0.2), run("a", 1.0, 1, 2.0),
          run("a", 0.5, 0, 0.3), run("a", 0.5, 1, 2.1),
          run("a", 0.0, 0, 0.5), run("a", 0.0, 1, 2.3)]
  out = stats.first_task_rises(runs, ["a"], [1.0, 0.5, 0.0])
  assert out["a"]["0.5"]["mean"] == pytest.approx(0.1)
  assert out["a"]["0.0"]["mean"] == pytest.approx(0.3)
  assert out["a"]["0.0"]["se"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("units, width", [(16, 113), (4, 28)])
def test_units_resize_both_models_to_the_same_weights(units, width):
  module = runner.load_config_module()
  args = runner.parse_args(["--protocol", "paper", "--units", str(units)])
  configs = {m: runner.make_config(module, m, 0.5, 0, args)
             for m in ("hard_sharing", "mmoe")}
  assert configs["hard_sharing"].model.trunk.hidden == (width,)
  assert configs["mmoe"].model.experts.hidden == (units,)
  params = {m: runner.count_params(c) for m, c in configs.items()}
  # Without its gates MMoE has the shared bottom's parameters within 1%.
  assert params["mmoe"] - reporting.GATE_PARAMS == pytest.approx(params["hard_sharing"],
                                                             rel=0.01)


def test_big_reports_keep_curves_in_the_summary_only(tmp_path):
  def run(model, p, seed):
    v = 0.5 + 0.01 * seed + (1 - p) * 0.1
    return dict(model=model, p=p, seed=seed, data_seed=seed, mean_final_train_mse=v,
                final_train_mse={"y1": v, "y2": v}, mean_test_mse=v,
                test_mse={"y1": v, "y2": v}, curve_steps=[10, 20],
                curve={"y1": [2 * v, v], "y2": [2 * v, v]}, mean_curve=[2 * v, v],
                seconds=1.0, steps_per_second=1.0)
  seeds = reporting.PER_SEED_TABLE_MAX + 1
  runs = [run(m, p, s) for m in ("hard_sharing", "mmoe") for p in (1.0, 0.0)
          for s in range(seeds)]
  args = runner.parse_args(["--protocol", "paper", "--steps", "20", "--curve-every", "10"])
  report = reporting.paper_report(runs, args, {"hard_sharing": 1, "mmoe": 2}, [], [], [])
  assert not any("mean_curve" in r or "curve" in r for r in report["runs"])
  cell = report["summary"]["mmoe"]["0.0"]
  assert cell["curve_steps"] == [10, 20]
  assert cell["curve_mean"][1] == pytest.approx(cell["final_train"]["mean"])
  # Re-rendering the compact JSON keeps the curves of the written summary.
  out = tmp_path / "big"
  reporting.write_paper(report, str(out))
  again = runner.main(["--render", str(out) + ".json"])
  assert again["summary"]["mmoe"]["0.0"]["curve_mean"] == cell["curve_mean"]
  text = (tmp_path / "big.md").read_text()
  assert "Every run's final training MSE" not in text and "| mmoe | 0.0 | 21 |" in text


def test_merging_compact_reports_keeps_each_cells_curve(tmp_path):
  """Compact (many-seed) reports hold their curves in the summary only; a
  report merging two of them, one per model, keeps both models' curves."""
  def run(model, p, seed):
    v = 0.5 + 0.01 * seed
    return dict(model=model, p=p, seed=seed, data_seed=seed, mean_final_train_mse=v,
                final_train_mse={"y1": v, "y2": v}, mean_test_mse=v,
                test_mse={"y1": v, "y2": v}, curve_steps=[10, 20],
                mean_curve=[2 * v, v], seconds=1.0, steps_per_second=1.0)
  argv = ["--protocol", "paper", "--steps", "20", "--curve-every", "10"]
  args = runner.parse_args(argv)
  paths = []
  for model in ("hard_sharing", "mmoe"):
    runs = [run(model, p, s) for p in (1.0, 0.0)
            for s in range(reporting.PER_SEED_TABLE_MAX + 1)]
    out = str(tmp_path / model)
    reporting.write_paper(reporting.paper_report(runs, args, {model: 1}, [], [], argv),
                          out)
    paths += ["--merge", out + ".json"]
  both = runner.main(argv + ["--seeds", "0", "--out", str(tmp_path / "both")] + paths)
  for model in ("hard_sharing", "mmoe"):
    assert both["summary"][model]["1.0"]["curve_steps"] == [10, 20]
  assert "| mmoe | 0.0 | 1.200 | 1.200 | 0.600 |" in (tmp_path / "both.md").read_text()
