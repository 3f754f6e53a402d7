"""Statistics of the MMoE synthetic benchmark's runs (pure numpy).

A run's record (training-loss curve, final MSE per task) from its logged
batch losses, and per model and p over seeds: summaries, the rise of the
final training MSE as p falls, bootstrap intervals of the difference between
two models' rises, and paired (same seed) differences.
"""

from __future__ import annotations

import math

import numpy as np

CURVE_KEYS = ("curve_steps", "curve_mean", "curve_se")


def sig(x: float, digits: int = 5) -> float:
  """``x`` rounded to ``digits`` significant digits (a smaller JSON)."""
  return float(f"{float(x):.{digits}g}")


def of_cell(runs: list, arch: str, p: float) -> list:
  """The runs of model ``arch`` at correlation ``p``."""
  return [r for r in runs if r["model"] == arch and r["p"] == p]


def describe(values) -> dict:
  """Mean, standard error (ddof 1), std (ddof 1), median, min, max, n."""
  v = np.asarray(values, np.float64)
  std = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
  return {"mean": float(np.mean(v)), "se": std / math.sqrt(len(v)), "std": std,
          "median": float(np.median(v)), "min": float(np.min(v)),
          "max": float(np.max(v)), "n": len(v)}


def percentiles_95(samples) -> list:
  """The 2.5th and 97.5th percentiles of ``samples``."""
  return [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))]


# ---------------------------------------------------------------------------
# One run's record.


def training_curve(records: list, tasks, every: int) -> tuple[list, dict]:
  """Per-task training-loss curve from the sampled batch losses.

  Args:
    records: ``train`` records (``step``, ``loss/<task>``) of one run.
    tasks: the task names.
    every: the window length in steps.

  Returns:
    ``(steps, {task: [mean loss]})``: point ``k`` is the mean of the batch
    losses of the records with step in ``((k - 1) * every, k * every]``, at
    step ``min(k * every, last step)``.
  """
  windows = {}
  for r in records:
    windows.setdefault(-(-int(r["step"]) // every), []).append(r)
  last = max((int(r["step"]) for r in records), default=0)
  steps, curve = [], {t: [] for t in tasks}
  for k in sorted(windows):
    steps.append(min(k * every, last))
    for t in tasks:  # non-finite losses are logged as strings ("nan")
      curve[t].append(float(np.mean([float(r[f"loss/{t}"]) for r in windows[k]])))
  return steps, curve


def run_record(records: list, tasks, final_train: dict, test: dict, *, curve_every: int,
               seconds: float, steps_per_second: float) -> dict:
  """A paper-protocol run's record from its logged batch losses and its final
  MSE per task on the training and test sets."""
  steps, curve = training_curve(records, tasks, curve_every)
  mean_curve = np.mean([curve[t] for t in tasks], axis=0)
  return {"final_train_mse": {t: sig(final_train[t]) for t in tasks},
          "mean_final_train_mse": sig(np.mean([final_train[t] for t in tasks])),
          "test_mse": {t: sig(test[t]) for t in tasks},
          "mean_test_mse": sig(np.mean([test[t] for t in tasks])),
          "curve_steps": steps,
          "curve": {t: [sig(v, 4) for v in curve[t]] for t in tasks},
          "mean_curve": [sig(v, 4) for v in mean_curve],
          "seconds": round(seconds, 2), "steps_per_second": steps_per_second}


def logged_steps(num_steps: int, every: int) -> list[int]:
  """The steps the loop logs with ``train.log_every = every`` (1-based)."""
  return sorted(set(range(every, num_steps + 1, every)) | {num_steps})


def record_from_losses(losses: np.ndarray, tasks, final_train, test, *,
                       curve_every: int, sample_every: int, seconds: float,
                       steps_per_second: float) -> dict:
  """:func:`run_record` from a run's ``[steps, T]`` batch losses and its final
  ``[T]`` train and test MSE: the losses of the steps the loop would log."""
  records = [{"step": k, **{f"loss/{t}": float(losses[k - 1, i])
                            for i, t in enumerate(tasks)}}
             for k in logged_steps(len(losses), sample_every)]
  return run_record(records, tasks, dict(zip(tasks, final_train)), dict(zip(tasks, test)),
                    curve_every=curve_every, seconds=seconds,
                    steps_per_second=steps_per_second)


# ---------------------------------------------------------------------------
# The fixed protocol: test MSE over seeds.


def summarise(runs: list, models_: list, ps: list) -> dict:
  """Per model and p: mean, std, median, min, max and n of the seeds' test MSE."""
  summary = {}
  for arch in models_:
    summary[arch] = {}
    for p in ps:
      values = [r["mean_test_mse"] for r in of_cell(runs, arch, p)]
      if values:
        summary[arch][str(p)] = {
            "mean": float(np.mean(values)), "std": float(np.std(values)),
            "median": float(np.median(values)), "min": float(np.min(values)),
            "max": float(np.max(values)), "n": len(values)}
  return summary


def degradation(summary: dict, arch: str, ps: list, stat: str = "mean") -> float:
  """``stat`` of the test MSE at the lowest p minus that at the highest p."""
  hi, lo = str(max(ps)), str(min(ps))
  return summary[arch][lo][stat] - summary[arch][hi][stat]


# ---------------------------------------------------------------------------
# The paper's protocol: final training MSE and curves over seeds.


def curve_summary(cell: list) -> dict:
  """Mean training curve of a cell's runs and its standard error."""
  curves = np.array([r["mean_curve"] for r in cell], np.float64)
  n = len(cell)
  sem = (np.std(curves, axis=0, ddof=1) / math.sqrt(n) if n > 1
         else np.zeros(curves.shape[1]))
  return {"curve_steps": cell[0]["curve_steps"],
          "curve_mean": [sig(v, 4) for v in curves.mean(axis=0)],
          "curve_se": [sig(v, 3) for v in sem]}


def _paper_cell(cell: list, previous_cell: dict) -> dict:
  tasks = sorted(cell[0]["final_train_mse"])
  out = {"final_train": describe([r["mean_final_train_mse"] for r in cell]),
         "final_train_tasks": {t: describe([r["final_train_mse"][t] for r in cell])
                               for t in tasks},
         "test": describe([r["mean_test_mse"] for r in cell])}
  if all("mean_curve" in r for r in cell):
    out.update(curve_summary(cell))
  elif previous_cell.get("final_train", {}).get("n") == len(cell):
    # a summary of these very runs (the same count) kept their curve
    out.update({k: previous_cell[k] for k in CURVE_KEYS if k in previous_cell})
  return out


def summarise_paper(runs: list, models_: list, ps: list,
                    previous: dict | None = None) -> dict:
  """Per model and p: statistics of the final train / test MSE over seeds,
  and the mean training curve with its standard error.

  Runs of a compact report (many seeds: the runs keep no curves) carry no
  curves; a cell whose runs lack them keeps the curve of ``previous`` (the
  summary of a report of the same runs: the one re-rendered, or the merged
  report that holds the whole cell), else has none.
  """
  summary = {}
  for arch in models_:
    summary[arch] = {}
    for p in ps:
      cell = of_cell(runs, arch, p)
      if cell:
        previous_cell = (previous or {}).get(arch, {}).get(str(p), {})
        summary[arch][str(p)] = _paper_cell(cell, previous_cell)
  return summary


def _final(runs: list, arch: str, p: float) -> dict:
  """seed -> mean final training MSE of ``arch`` at ``p``."""
  return {r["seed"]: r["mean_final_train_mse"] for r in of_cell(runs, arch, p)}


def _versus(out: dict, boot: dict, arch: str) -> dict:
  """The shared bottom's rise minus ``arch``'s: estimate, 95% bootstrap
  interval and the fraction of resamples where it is <= 0."""
  vs = {}
  for stat in ("mean", "median"):
    diff = boot["hard_sharing"][stat] - boot[arch][stat]
    vs[stat] = {"estimate": float(out["hard_sharing"][stat] - out[arch][stat]),
                "bootstrap_95": percentiles_95(diff),
                "fraction_le_0": float(np.mean(diff <= 0))}
  return vs


def rises(runs: list, models_: list, ps: list, *, num_bootstrap: int = 10000,
          seed: int = 0) -> dict:
  """The rise of the final training MSE from the highest to the lowest p.

  Per model: the rise of the mean (with its standard error, the two cells'
  SEs combined), of the median, the mean of the per-seed (paired: same data
  seed, so the same u1, inputs and initialisation at both p) differences
  with its SE, and 95% bootstrap intervals of the mean and median rises
  (seeds resampled with replacement in each cell). With ``hard_sharing``
  among the models: the bootstrap distribution of its rise minus each other
  model's (``vs``), with the fraction of resamples where it is <= 0.
  """
  hi, lo = max(ps), min(ps)
  rng = np.random.default_rng(seed)
  out, boot = {}, {}
  for arch in models_:
    a, b = _final(runs, arch, hi), _final(runs, arch, lo)
    if not a or not b:
      continue
    va, vb = np.array(list(a.values())), np.array(list(b.values()))
    sa, sb = describe(va), describe(vb)
    paired = [b[s] - a[s] for s in sorted(set(a) & set(b))]
    ia = rng.integers(0, len(va), (num_bootstrap, len(va)))
    ib = rng.integers(0, len(vb), (num_bootstrap, len(vb)))
    boot[arch] = {"mean": vb[ib].mean(1) - va[ia].mean(1),
                  "median": np.median(vb[ib], 1) - np.median(va[ia], 1)}
    out[arch] = {
        "p_high": hi, "p_low": lo,
        "mean": sb["mean"] - sa["mean"], "se": math.hypot(sa["se"], sb["se"]),
        "median": sb["median"] - sa["median"],
        "paired_mean": float(np.mean(paired)) if paired else float("nan"),
        "paired_se": describe(paired)["se"] if len(paired) > 1 else float("nan"),
        "bootstrap_95": {k: percentiles_95(v) for k, v in boot[arch].items()}}
  if "hard_sharing" in boot:
    for arch in boot:
      if arch != "hard_sharing":
        out["hard_sharing"].setdefault("vs", {})[arch] = _versus(out, boot, arch)
  return out


def rises_by_p(runs: list, models_: list, ps: list) -> dict:
  """:func:`rises` from the highest p to each lower p: ``{str(p): rises}``."""
  hi = max(ps)
  return {str(p): rises(runs, models_, [hi, p]) for p in sorted(ps, reverse=True)
          if p != hi}


def first_task_rises(runs: list, models_: list, ps: list, task: str = "y1") -> dict:
  """Paired rise of one task's final training MSE from the highest p.

  ``w1 = c u1`` at every p, and a seed's inputs, noise and initialisation do
  not depend on p: the first task's data are the same at every p of a seed,
  and only its companion task changes. So the per-seed difference of its
  MSE between p and the highest p is the cost, for that one target, of
  sharing the model with a less related task (negative transfer), free of
  the run-to-run spread of the data. ``{model: {str(p): stats}}``.
  """
  hi = max(ps)
  out = {}
  for arch in models_:
    base = {r["seed"]: r["final_train_mse"][task] for r in of_cell(runs, arch, hi)}
    for p in sorted(ps, reverse=True):
      if p == hi:
        continue
      diffs = [r["final_train_mse"][task] - base[r["seed"]]
               for r in of_cell(runs, arch, p) if r["seed"] in base]
      if len(diffs) > 1:
        out.setdefault(arch, {})[str(p)] = describe(diffs)
  return out


def paper_analysis(runs: list, models_: list, ps: list) -> dict:
  """The rises of a paper-protocol report: overall, per p and the first task's."""
  return {"rises": rises(runs, models_, ps), "rises_by_p": rises_by_p(runs, models_, ps),
          "first_task_rises": first_task_rises(runs, models_, ps)}
