"""The MMoE synthetic benchmark's report: per-seed statistics and merging.

The benchmark itself (hours of CPU) is not run here:
``python benchmarks/mmoe_synthetic.py``.
"""

import json
import types

import pytest

from benchmarks import mmoe_synthetic as bench

ARGS = dict(steps=100, lr=0.01, batch_size=8, num_train=64, num_test=32)


def _run(model, p, seed, mse):
  return dict(model=model, p=p, seed=seed, mean_test_mse=mse,
              test_mse={"y1": mse, "y2": mse}, seconds=1.0, steps_per_second=1.0)


def test_summary_has_median_and_extremes_so_one_failed_run_shows():
  runs = [_run("a", 0.0, s, v) for s, v in enumerate((0.4, 0.5, 2.0))]
  runs += [_run("a", 1.0, s, v) for s, v in enumerate((0.4, 0.4, 0.4))]
  summary = bench.summarise(runs, ["a"], [1.0, 0.0])
  cell = summary["a"]["0.0"]
  assert cell["median"] == pytest.approx(0.5) and cell["mean"] == pytest.approx(0.9667,
                                                                                abs=1e-4)
  assert (cell["min"], cell["max"], cell["n"]) == (0.4, 2.0, 3)
  assert bench.degradation(summary, "a", [1.0, 0.0]) == pytest.approx(0.5667, abs=1e-4)
  assert bench.degradation(summary, "a", [1.0, 0.0], "median") == pytest.approx(0.1)
  report = dict(args=dict(ARGS), summary=summary, params={"a": 10}, missing=[],
                runs=runs, command="cmd", merged=[])
  table = bench.markdown(report)
  assert "0.967 +- 0.732 [0.500]" in table  # population std
  assert "| a | 0.0 | 0.400 | 0.500 | 2.000 |" in table  # every seed's value


def test_merge_adds_the_missing_runs_and_refuses_other_settings(tmp_path):
  old = dict(args=dict(ARGS), command="old command", merged=[],
             runs=[_run("a", 0.0, 0, 0.3), _run("a", 0.0, 1, 0.6)])
  path = tmp_path / "old.json"
  path.write_text(json.dumps(old))
  new = [_run("a", 0.0, 1, 0.5), _run("a", 0.0, 2, 0.7)]
  merged, sources = bench.merge(new, types.SimpleNamespace(**ARGS), [str(path)])
  assert sorted((r["seed"], r["mean_test_mse"]) for r in merged) == [
      (0, 0.3), (1, 0.5), (2, 0.7)]  # seed 1 is the new run's
  assert sources[0]["runs"] == 1 and sources[0]["command"] == "old command"
  with pytest.raises(ValueError, match="other settings.*steps"):
    bench.merge(new, types.SimpleNamespace(**dict(ARGS, steps=8000)), [str(path)])
