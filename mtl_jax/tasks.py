"""Task declarations: what each task predicts, its loss and its metrics.

A config declares tasks as a mapping from name to fields::

  config.tasks = {
      "shape": dict(kind="multiclass", num_classes=3, metrics=("accuracy",)),
      "x": dict(kind="regression", dim=1, loss="mse", metrics=("mae", "r2")),
  }

Kinds: ``multiclass`` (integer labels ``[B]``, softmax cross-entropy),
``binary`` (labels in {0, 1}, ``[B]`` or ``[B, num_labels]`` for multi-label,
sigmoid cross-entropy), ``regression`` (float targets ``[B]`` or ``[B, dim]``,
MSE or L1). Each metric has a default direction (accuracy: higher is better;
MAE: lower); ``higher_is_better={"metric": bool}`` overrides it. Tasks are
always ordered by name: that is the order of every per-task vector (losses,
weights, Jacobian rows), the same order JAX uses for dict pytrees.

Parsing checks the loss and metric names against :mod:`mtl_jax.losses` and
writes every metric's direction into the task, so a :class:`Task` needs no
lookup afterwards (``losses`` refers to ``Task`` for typing only: the imports
run one way, tasks -> losses).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from mtl_jax.losses import losses as losses_lib, metrics as metrics_lib

KINDS = ("multiclass", "binary", "regression")
DEFAULT_LOSS = {"multiclass": "cross_entropy", "binary": "sigmoid_cross_entropy",
                "regression": "mse"}
DEFAULT_METRICS = {"multiclass": ("accuracy",), "binary": ("accuracy",),
                   "regression": ("mae",)}
_FIELDS = ("kind", "num_classes", "num_labels", "dim", "loss", "metrics",
           "higher_is_better", "ignore_label")


@dataclasses.dataclass(frozen=True)
class Task:
  """One task: its name, output head size, loss and metrics.

  Attributes:
    name: task name, the key of its targets, mask, head and metrics.
    kind: one of ``multiclass``, ``binary``, ``regression``.
    num_classes: classes of a multiclass task.
    num_labels: labels of a (multi-label) binary task; 1 means targets ``[B]``.
    dim: output size of a regression task; 1 means targets ``[B]``.
    loss: loss name (see :mod:`mtl_jax.losses`).
    metrics: metric names (see :mod:`mtl_jax.losses.metrics`).
    higher_is_better: the direction of every metric (True: higher is
      better); :func:`from_config` fills in each metric's default where the
      config does not override it.
    ignore_label: a label value that marks a missing label (multiclass only).
  """

  name: str
  kind: str
  num_classes: int = 0
  num_labels: int = 1
  dim: int = 1
  loss: str = ""
  metrics: tuple[str, ...] = ()
  higher_is_better: Mapping[str, bool] = dataclasses.field(default_factory=dict)
  ignore_label: int | None = None

  @property
  def out_features(self) -> int:
    """Width of the task's head."""
    return {"multiclass": self.num_classes, "binary": self.num_labels,
            "regression": self.dim}[self.kind]

  def direction(self, metric: str) -> bool:
    """True where a higher value of ``metric`` is better."""
    if metric not in self.higher_is_better:
      raise ValueError(f"Task {self.name!r} has no direction for metric {metric!r}; "
                       f"its metrics: {list(self.higher_is_better)}.")
    return bool(self.higher_is_better[metric])


def _make_task(name: str, spec: Mapping[str, Any]) -> Task:
  unknown = set(spec) - set(_FIELDS)
  if unknown:
    raise ValueError(f"Task {name!r}: unknown field(s) {sorted(unknown)}; "
                     f"valid fields: {list(_FIELDS)}.")
  kind = spec.get("kind")
  if kind not in KINDS:
    raise ValueError(f"Task {name!r}: kind must be one of {KINDS}, got {kind!r}.")
  if kind == "multiclass" and int(spec.get("num_classes", 0)) < 2:
    raise ValueError(f"Task {name!r}: a multiclass task needs num_classes >= 2, "
                     f"got {spec.get('num_classes')!r}.")
  for field in ("num_labels", "dim"):
    if int(spec.get(field, 1)) < 1:
      raise ValueError(f"Task {name!r}: {field} must be >= 1, got {spec[field]!r}.")
  loss = spec.get("loss") or DEFAULT_LOSS[kind]
  losses_lib.check(loss, kind, task=name)
  metrics = tuple(spec.get("metrics") or DEFAULT_METRICS[kind])
  for m in metrics:
    metrics_lib.check(m, kind, task=name)
  overrides = dict(spec.get("higher_is_better") or {})
  for m in overrides:
    if m not in metrics:
      raise ValueError(f"Task {name!r}: higher_is_better names {m!r}, which is "
                       f"not one of its metrics {metrics}.")
  hib = {m: bool(overrides.get(m, metrics_lib.get(m).higher_is_better))
         for m in metrics}
  return Task(name=name, kind=kind, num_classes=int(spec.get("num_classes", 0)),
              num_labels=int(spec.get("num_labels", 1)), dim=int(spec.get("dim", 1)),
              loss=loss, metrics=metrics, higher_is_better=hib,
              ignore_label=spec.get("ignore_label"))


def from_config(tasks_config: Mapping[str, Mapping[str, Any]]) -> tuple[Task, ...]:
  """Parses ``config.tasks`` into :class:`Task` objects sorted by name."""
  if not tasks_config:
    raise ValueError("config.tasks is empty: declare at least one task.")
  return tuple(_make_task(name, dict(tasks_config[name]))
               for name in sorted(tasks_config))
