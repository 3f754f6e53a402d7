"""Published results on the standard multi-task benchmarks, with their sources.

The numbers of ``PUBLISHED.md`` (the project's reference notes, transcribed
from the papers' tables) as data: one :class:`Row` per (benchmark, protocol,
method, statistic), each with its :class:`Citation`. ``mtl-jax report`` shows
them beside a run's own value when the run's config names its benchmark and
protocol (``config.benchmark = dict(name="nyuv2", protocol="A")``).

Protocols differ between papers, and a number is only comparable with a run
that follows the same one:

* ``A`` (Nash-MTL, FAMO, FairGrad): SegNet-MTAN on NYUv2 and Cityscapes,
  test metrics averaged over the last 10 epochs, 3 seeds; the statistic is
  Delta_m% (:mod:`mtl_jax.losses.delta_m`: the mean signed relative change
  over all metrics vs. the single-task baselines; lower is better).
* ``B`` (LibMTL, reported by DB-MTL): DeepLabV3+ with a dilated ResNet-50 on
  NYUv2 and Cityscapes, the best epoch on validation; the statistic is
  Delta_p% (:func:`delta_p`: the relative improvement averaged within each
  task first, then over tasks; higher is better). On NYUv2 (2, 2 and 5
  metrics per task) Delta_p is not -Delta_m; with one metric per task
  (Office) it is.
* ``rechub`` (torch-rechub's published example results on Census-Income):
  the AUC of each task.

Examples::

  from mtl_jax.report import published
  for row in published.rows("nyuv2", "A"):
    print(row.method, row.value, row.citation.short)

References: see :data:`CITATIONS`.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence


@dataclasses.dataclass(frozen=True)
class Citation:
  """Where a published number comes from.

  Attributes:
    authors, title, venue, year: the paper.
    where: the part of the paper holding the number (as far as the notes say).
  """

  authors: str
  title: str
  venue: str
  year: int
  where: str

  @property
  def short(self) -> str:
    """``"Navon et al., ICML 2022"``."""
    return f"{self.authors}, {self.venue} {self.year}"


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How the published numbers of a protocol were obtained.

  Attributes:
    name: ``A``, ``B`` or ``rechub``.
    statistic: what the rows hold for a benchmark (``delta_m``, ``delta_p``;
      ``auc/<task>`` for ``rechub``).
    higher_is_better: the statistic's direction.
    description: the setting, in words.
  """

  name: str
  statistic: str
  higher_is_better: bool
  description: str


@dataclasses.dataclass(frozen=True)
class Row:
  """One published number.

  Attributes:
    benchmark: ``nyuv2``, ``cityscapes``, ``celeb_a``, ``qm9``, ``office_31``,
      ``office_home`` or ``census_income`` (the dataset names of
      :mod:`mtl_jax.data` where there is one).
    protocol: the :class:`Protocol` name.
    method: the method as the paper names it.
    ours: the same method's name in mtl_jax (a weighting or aggregation
      method, or an architecture for ``rechub``), or None if there is none.
    statistic: ``delta_m``, ``delta_p`` or ``auc/<task>``.
    value: the published number (percent for Delta_m and Delta_p).
    citation: its source.
    note: what to keep in mind when comparing.
  """

  benchmark: str
  protocol: str
  method: str
  ours: Optional[str]
  statistic: str
  value: float
  citation: Citation
  note: str = ""


NAVON_2022 = Citation(
    "Navon et al.", "Multi-Task Learning as a Bargaining Game", "ICML", 2022,
    "the results tables of Sec. 6 (NYUv2, Cityscapes, QM9)")
LIU_2023 = Citation(
    "Liu et al.", "FAMO: Fast Adaptive Multitask Optimization", "NeurIPS", 2023,
    "the results tables (FAMO on every benchmark; the CelebA baselines)")
BAN_JI_2024 = Citation(
    "Ban & Ji", "Fair Resource Allocation in Multi-Task Learning", "ICML", 2024,
    "the results tables (FairGrad)")
LIN_2023 = Citation(
    "Lin et al.", "Dual-Balancing for Multi-Task Learning", "arXiv:2308.12029",
    2023, "the results tables (LibMTL setting; Delta_p)")
LIN_2023_A = dataclasses.replace(
    LIN_2023, where="NYUv2 SegNet-MTAN result (as listed in PUBLISHED.md)")
LIN_2024_STCH = Citation(
    "Lin et al.", "Smooth Tchebycheff Scalarization for Multi-Objective "
    "Optimization", "ICML", 2024, "NYUv2 results (as listed in PUBLISHED.md)")
XIAO_2023 = Citation(
    "Xiao et al.", "Direction-oriented Multi-objective Learning: Simple and "
    "Provable Stochastic Algorithms", "NeurIPS", 2023,
    "NYUv2 results (as listed in PUBLISHED.md)")
RECHUB = Citation(
    "torch-rechub", "published example results (Census-Income)", "GitHub", 2023,
    "the multi-task examples' results table")

CITATIONS = (NAVON_2022, LIU_2023, BAN_JI_2024, LIN_2023, LIN_2023_A, LIN_2024_STCH,
             XIAO_2023, RECHUB)

PROTOCOLS = {
    "A": Protocol(
        "A", "delta_m", False,
        "Nash-MTL / FAMO / FairGrad: SegNet-MTAN on NYUv2 (795 train / 654 "
        "test at 288x384; Adam lr 1e-4, batch 2, 200 epochs, lr halved at "
        "epoch 100) and Cityscapes (2975 / 500 at 128x256); test metrics "
        "averaged over the last 10 epochs, 3 seeds (CelebA's 40 attributes "
        "and QM9's 11 targets: the same papers' own settings for them); "
        "Delta_m% over all metrics vs. single-task baselines, lower is better"),
    "B": Protocol(
        "B", "delta_p", True,
        "LibMTL (reported by DB-MTL): DeepLabV3+ with a dilated ResNet-50 "
        "encoder on NYUv2 and Cityscapes; best epoch on validation; Delta_p% "
        "(relative improvement averaged within each task, then over tasks), "
        "higher is better"),
    "rechub": Protocol(
        "rechub", "auc", True,
        "torch-rechub's published example results on Census-Income: AUC of "
        "each task (income, marital status)"),
}

_QM9_NOTE = ("QM9 depends strongly on the target scaling and the learning-rate "
             "schedule; papers that re-tune report LS ~180 and FAMO ~39")
_CELEBA_NOTE = ("CelebA's per-attribute metric is F1 in some papers and accuracy "
                "in others (PUBLISHED.md does not say which); mtl_jax's celeb_a "
                "reports accuracy")
_LATER_NOTE = ("DB-MTL, STCH and SDMGrad (NYUv2, protocol A): PUBLISHED.md lists "
               "them among 'later papers' without naming the table; check the "
               "paper before quoting")

# Protocol A: method, our name, NYUv2, Cityscapes, CelebA, QM9 (None: not reported).
_PROTOCOL_A = (
    ("LS (equal)", "equal", 5.59, 22.60, 4.15, 177.6),
    ("UW", "uncertainty", 4.05, 5.89, 3.23, 108.0),
    ("MGDA", "mgda", 1.38, 44.14, 14.85, 120.5),
    ("PCGrad", "pcgrad", 3.97, 18.29, 3.17, 125.7),
    ("CAGrad", "cagrad", 0.20, 11.64, 2.48, 112.8),
    ("IMTL-G", "imtl_g", -0.76, 11.10, 0.84, 77.2),
    ("Nash-MTL", "nash_mtl", -4.04, 6.82, 2.84, 62.0),
    ("FAMO", "famo", -4.10, 8.13, 1.21, 58.5),
    ("FairGrad", "fairgrad", -4.66, 5.18, 0.37, None),
)
_A_BENCHMARKS = ("nyuv2", "cityscapes", "celeb_a", "qm9")


def _protocol_a_source(method: str, benchmark: str) -> Citation:
  if method == "FairGrad":
    return BAN_JI_2024
  if method == "FAMO" or benchmark == "celeb_a":
    return LIU_2023
  return NAVON_2022


def _protocol_a_rows() -> list[Row]:
  notes = {"qm9": _QM9_NOTE, "celeb_a": _CELEBA_NOTE}
  out = []
  for method, ours, *values in _PROTOCOL_A:
    for benchmark, value in zip(_A_BENCHMARKS, values):
      if value is not None:
        out.append(Row(benchmark, "A", method, ours, "delta_m", value,
                       _protocol_a_source(method, benchmark),
                       notes.get(benchmark, "")))
  out += [Row("nyuv2", "A", "DB-MTL", "db_mtl", "delta_m", -5.36, LIN_2023_A, _LATER_NOTE),
          Row("nyuv2", "A", "STCH", "stch", "delta_m", -1.35, LIN_2024_STCH, _LATER_NOTE),
          Row("nyuv2", "A", "SDMGrad", None, "delta_m", -4.84, XIAO_2023, _LATER_NOTE)]
  return out


# Protocol B (DB-MTL paper): benchmark -> ((method, our name, Delta_p%), ...).
_PROTOCOL_B = {
    "nyuv2": (("EW", "equal", -1.78), ("GLS", "gls", 0.30),
              ("Nash-MTL", "nash_mtl", -1.01), ("DB-MTL", "db_mtl", 1.15)),
    "cityscapes": (("EW", "equal", -2.05), ("DB-MTL", "db_mtl", 0.20)),
    "qm9": (("EW", "equal", -146.3), ("Nash-MTL", "nash_mtl", -73.9),
            ("DB-MTL", "db_mtl", -58.1)),
    "office_31": (("EW", "equal", -0.61), ("Nash-MTL", "nash_mtl", 0.24),
                  ("DB-MTL", "db_mtl", 1.05)),
    "office_home": (("EW", "equal", -0.92), ("DB-MTL", "db_mtl", 0.17)),
}


def _protocol_b_rows() -> list[Row]:
  return [Row(benchmark, "B", method, ours, "delta_p", value, LIN_2023)
          for benchmark, entries in _PROTOCOL_B.items()
          for method, ours, value in entries]


# torch-rechub, Census-Income: architecture, our name, AUC income, AUC marital status.
_RECHUB = (("Shared-bottom", "hard_sharing", 0.9560, 0.9948),
           ("MMoE", "mmoe", 0.9579, 0.9950),
           ("PLE", "ple", 0.9593, 0.9950))


def _rechub_rows() -> list[Row]:
  return [Row("census_income", "rechub", method, ours, f"auc/{task}", value, RECHUB,
              "the MMoE paper (Ma et al., KDD 2018) reports the same ordering")
          for method, ours, income, marital in _RECHUB
          for task, value in (("income", income), ("marital_status", marital))]


ROWS: tuple[Row, ...] = tuple(_protocol_a_rows() + _protocol_b_rows() + _rechub_rows())


def benchmarks() -> tuple[str, ...]:
  """The benchmarks with published rows, sorted."""
  return tuple(sorted({r.benchmark for r in ROWS}))


def protocols(benchmark: str) -> tuple[str, ...]:
  """The protocols with published rows for ``benchmark``, sorted."""
  _check_benchmark(benchmark)
  return tuple(sorted({r.protocol for r in ROWS if r.benchmark == benchmark}))


def _check_benchmark(benchmark: str) -> None:
  if benchmark not in benchmarks():
    raise ValueError(f"No published results for benchmark {benchmark!r}; "
                     f"benchmarks: {list(benchmarks())}.")


def check(benchmark: str, protocol: str) -> None:
  """Raises ValueError unless ``protocol`` has published rows for ``benchmark``
  (what a config's ``benchmark`` section is checked with)."""
  _check_benchmark(benchmark)
  if protocol not in protocols(benchmark):
    raise ValueError(f"No published results for benchmark {benchmark!r} under "
                     f"protocol {protocol!r}; its protocols: "
                     f"{list(protocols(benchmark))}.")


def rows(benchmark: str, protocol: str) -> tuple[Row, ...]:
  """The published rows of ``benchmark`` under ``protocol``, in table order.

  Raises:
    ValueError: no rows for the benchmark or the protocol (naming the valid
      ones).
  """
  check(benchmark, protocol)
  return tuple(r for r in ROWS if r.benchmark == benchmark and r.protocol == protocol)


def delta_p(directions: Mapping[str, Mapping[str, bool]],
            baseline: Mapping[str, Mapping[str, float]],
            model: Mapping[str, Mapping[str, float]]) -> float:
  """Delta_p% of Protocol B (LibMTL's ``count_improvement``; the DB-MTL paper)::

      Delta_p = (100 / T) sum_t (1 / N_t) sum_i (-1)^{s_ti} (M_ti - B_ti) / B_ti

  over the ``T`` tasks of ``directions`` and each task's ``N_t`` metrics,
  with ``s_ti = 1`` where lower is better: the relative improvement over the
  single-task baseline ``B`` averaged within each task, then over tasks
  (positive = better). As :mod:`mtl_jax.losses.delta_m`, we divide by
  ``|B_ti|``.

  Args:
    directions: ``{task: {metric: higher_is_better}}``: the metrics counted.
    baseline, model: ``{task: {metric: value}}``.

  Raises:
    ValueError: a metric missing from ``model`` or ``baseline``, or a zero or
      non-finite value.
  """
  per_task = []
  for task, metrics in directions.items():
    changes = []
    for metric, higher in metrics.items():
      try:
        base, value = float(baseline[task][metric]), float(model[task][metric])
      except KeyError:
        raise ValueError(f"Delta_p: no {task}/{metric} in both the baseline and "
                         "the model results.") from None
      if base == 0 or base != base or value != value or abs(base) == float("inf"):
        raise ValueError(f"Delta_p: {task}/{metric} has baseline {base!r} and "
                         f"model value {value!r}; a relative change needs a "
                         "finite, non-zero baseline.")
      sign = 1.0 if higher else -1.0
      changes.append(sign * (value - base) / abs(base))
    if changes:
      per_task.append(sum(changes) / len(changes))
  if not per_task:
    raise ValueError("Delta_p: no metric to compare.")
  return 100.0 * sum(per_task) / len(per_task)


def method_rows(benchmark: str, protocol: str,
                method: str) -> tuple[Row, ...]:
  """The rows of ``benchmark`` / ``protocol`` whose ``ours`` is ``method``."""
  return tuple(r for r in rows(benchmark, protocol) if r.ours == method)


def cited(selected: Sequence[Row]) -> tuple[Citation, ...]:
  """The distinct citations of ``selected``, in order of first use."""
  out: list[Citation] = []
  for row in selected:
    if row.citation not in out:
      out.append(row.citation)
  return tuple(out)
