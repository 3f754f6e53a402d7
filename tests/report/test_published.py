"""The table of published results and its place in ``mtl-jax report``.

Values checked here are typed from ``PUBLISHED.md`` (the project's reference
notes), not read from it.
"""

import json
import os

import numpy as np
import pytest

from mtl_jax import aggregation, models, report, weighting
from mtl_jax.report import markdown, published, runs as runs_lib


def _row(benchmark, protocol, method, statistic=None):
  found = [r for r in published.rows(benchmark, protocol) if r.method == method
           and (statistic is None or r.statistic == statistic)]
  assert len(found) == 1, (benchmark, protocol, method, found)
  return found[0]


def test_every_row_has_a_citation_a_protocol_and_a_known_method():
  ours = set(weighting.REGISTRY.names()) | set(aggregation.REGISTRY.names())
  for row in published.ROWS:
    assert isinstance(row.citation, published.Citation), row
    assert all([row.citation.authors, row.citation.title, row.citation.venue,
                row.citation.where]) and row.citation.year >= 2022, row
    protocol = published.PROTOCOLS[row.protocol]
    assert row.statistic.split("/")[0] == protocol.statistic, row
    names = set(models.REGISTRY.names()) if row.protocol == "rechub" else ours
    assert row.ours is None or row.ours in names, row
    assert np.isfinite(row.value), row
  keys = [(r.benchmark, r.protocol, r.method, r.statistic) for r in published.ROWS]
  assert len(keys) == len(set(keys))


@pytest.mark.parametrize("dataset,protocol,method,value", [
    ("nyuv2", "A", "LS (equal)", 5.59), ("nyuv2", "A", "Nash-MTL", -4.04),
    ("nyuv2", "A", "FairGrad", -4.66), ("nyuv2", "A", "DB-MTL", -5.36),
    ("cityscapes", "A", "MGDA", 44.14), ("cityscapes", "A", "UW", 5.89),
    ("celeb_a", "A", "FAMO", 1.21), ("celeb_a", "A", "IMTL-G", 0.84),
    ("qm9", "A", "IMTL-G", 77.2), ("qm9", "A", "LS (equal)", 177.6),
    ("nyuv2", "B", "GLS", 0.30), ("nyuv2", "B", "EW", -1.78),
    ("cityscapes", "B", "DB-MTL", 0.20), ("qm9", "B", "Nash-MTL", -73.9),
    ("office_31", "B", "DB-MTL", 1.05), ("office_home", "B", "EW", -0.92),
])
def test_values_from_published_md(dataset, protocol, method, value):
  assert _row(dataset, protocol, method).value == value


def test_sources_of_each_cell():
  assert _row("nyuv2", "A", "Nash-MTL").citation.authors == "Navon et al."
  assert _row("qm9", "A", "CAGrad").citation.authors == "Navon et al."
  assert _row("celeb_a", "A", "LS (equal)").citation.title.startswith("FAMO")
  assert _row("nyuv2", "A", "FAMO").citation.title.startswith("FAMO")
  assert _row("celeb_a", "A", "FairGrad").citation.authors == "Ban & Ji"
  assert _row("office_31", "B", "EW").citation.title == "Dual-Balancing for Multi-Task Learning"
  assert "F1" in _row("celeb_a", "A", "UW").note
  assert _row("census_income", "rechub", "PLE", "auc/income").value == 0.9593
  assert _row("census_income", "rechub", "MMoE", "auc/marital_status").value == 0.9950


def test_protocols_and_lookup_errors():
  assert published.protocols("nyuv2") == ("A", "B")
  assert published.protocols("office_31") == ("B",)
  assert not any(r.method == "FairGrad" for r in published.rows("qm9", "A"))
  assert not published.PROTOCOLS["A"].higher_is_better
  assert published.PROTOCOLS["B"].higher_is_better
  with pytest.raises(ValueError, match=r"benchmark 'mnist'; benchmarks: \['celeb_a'"):
    published.rows("mnist", "A")
  with pytest.raises(ValueError, match=r"protocol 'A'; its protocols: \['B'\]"):
    published.rows("office_home", "A")


def test_delta_p_averages_within_tasks_first():
  dirs = {"seg": {"miou": True, "pix": True}, "depth": {"abs": False}}
  base = {"seg": {"miou": 0.40, "pix": 0.60}, "depth": {"abs": 0.50}}
  model = {"seg": {"miou": 0.44, "pix": 0.57}, "depth": {"abs": 0.45}}
  seg = np.mean([(0.44 - 0.40) / 0.40, (0.57 - 0.60) / 0.60])
  depth = -(0.45 - 0.50) / 0.50
  assert published.delta_p(dirs, base, model) == pytest.approx(100 * (seg + depth) / 2)
  delta_m = 100 * np.mean([-(0.44 - 0.40) / 0.40, -(0.57 - 0.60) / 0.60,
                           (0.45 - 0.50) / 0.50])
  assert published.delta_p(dirs, base, model) != pytest.approx(-delta_m)
  with pytest.raises(ValueError, match="no depth/abs"):
    published.delta_p(dirs, base, {"seg": model["seg"]})


# --- in the report --------------------------------------------------------------

TASKS = {"a": {"kind": "multiclass", "num_classes": 3, "metrics": ["accuracy"]},
         "b": {"kind": "regression", "dim": 1, "metrics": ["mae"]}}


def _run(path, accuracy, mae, benchmark, method):
  os.makedirs(path, exist_ok=True)
  records = [{"step": 1, "split": "train", "loss/a": 1.0, "loss/b": 1.0},
             {"step": 1, "split": "test", "a/accuracy": accuracy, "b/mae": mae}]
  with open(os.path.join(path, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in records)
  config = {"tasks": TASKS, "method": method, "train": {"num_steps": 1}}
  if benchmark is not None:
    config["benchmark"] = benchmark
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config, f)
  return str(path)


def _table(tmp_path, benchmark):
  dirs = [_run(tmp_path / "single-task", 0.5, 0.4, benchmark, {"weighting": "equal"}),
          _run(tmp_path / "ew", 0.8, 0.2, benchmark, {"weighting": "equal"}),
          _run(tmp_path / "nash", 0.6, 0.5, benchmark,
               {"weighting": "equal", "aggregation": "nash_mtl"}),
          _run(tmp_path / "mine", 0.5, 0.3, benchmark, {"weighting": "rlw"})]
  runs, split = runs_lib.load(dirs)
  return markdown.metrics_table(runs, split, markdown.directions(runs))[0]


def test_protocol_a_shows_delta_m_beside_the_published_values(tmp_path):
  text = _table(tmp_path, {"name": "nyuv2", "protocol": "A"})
  # ew: accuracy +60% (better), mae -50% (better) -> Delta_m = -55.
  ew = 100 * np.mean([-(0.8 - 0.5) / 0.5, (0.2 - 0.4) / 0.4])
  nash = 100 * np.mean([-(0.6 - 0.5) / 0.5, (0.5 - 0.4) / 0.4])
  mine = 100 * np.mean([0.0, (0.3 - 0.4) / 0.4])
  assert "**Published results: `nyuv2`, protocol A** (lower is better)" in text
  assert (f"| LS (equal) | delta_m | +5.59 | Navon et al., ICML 2022 | `ew` {ew:+.2f} |"
          in text)
  assert (f"| Nash-MTL | delta_m | -4.04 | Navon et al., ICML 2022 | `nash` {nash:+.2f} |"
          in text)
  assert "| FAMO | delta_m | -4.10 | Liu et al., NeurIPS 2023 | — |" in text
  assert f"| (not published) | delta_m | — | — | `mine` {mine:+.2f} |" in text
  assert "`single-task`" not in text.split("**Published results")[1]
  assert "- Navon et al., ICML 2022: Multi-Task Learning as a Bargaining Game" in text


def test_protocol_b_shows_delta_p(tmp_path):
  text = _table(tmp_path, {"name": "office_31", "protocol": "B"})
  ew = 100 * np.mean([(0.8 - 0.5) / 0.5, -(0.2 - 0.4) / 0.4])
  assert "protocol B** (higher is better)" in text
  assert f"| EW | delta_p | -0.61 | Lin et al., arXiv:2308.12029 2023 | `ew` {ew:+.2f} |" in text


def test_no_benchmark_no_published_table_and_unknown_ones_say_why(tmp_path):
  assert "Published" not in _table(tmp_path / "none", None)
  text = _table(tmp_path / "bad", {"name": "nyuv2", "protocol": "C"})
  assert "_Published results: No published results for benchmark 'nyuv2' under " \
         "protocol 'C'; its protocols: ['A', 'B']._" in text


def test_report_md_holds_the_published_table(tmp_path):
  dirs = [_run(tmp_path / "single-task", 0.5, 0.4, {"name": "cityscapes", "protocol": "A"},
               {"weighting": "equal"}),
          _run(tmp_path / "uw", 0.6, 0.4, {"name": "cityscapes", "protocol": "A"},
               {"weighting": "uncertainty"})]
  path = report.render(dirs, str(tmp_path / "out"), progress=False)
  text = open(path).read()
  uw = 100 * np.mean([-(0.6 - 0.5) / 0.5, 0.0])
  assert f"| UW | delta_m | +5.89 | Navon et al., ICML 2022 | `uw` {uw:+.2f} |" in text
