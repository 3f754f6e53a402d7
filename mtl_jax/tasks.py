"""Task declarations: what each task predicts, its loss and its metrics.

A config declares tasks as a mapping from name to fields::

  config.tasks = {
      "shape": dict(kind="multiclass", num_classes=3, metrics=("accuracy",)),
      "x": dict(kind="regression", dim=1, loss="mse", metrics=("mae", "r2")),
  }

Kinds: ``multiclass`` (integer labels ``[B]``, softmax cross-entropy),
``binary`` (labels in {0, 1}, ``[B]`` or ``[B, num_labels]`` for multi-label,
sigmoid cross-entropy), ``regression`` (float targets ``[B]`` or ``[B, dim]``,
MSE or L1), and the dense per-pixel kinds ``segmentation`` (integer labels
``[B, H, W]``, pixel cross-entropy; ``ignore_label`` marks unlabelled
pixels, -1 unless declared), ``depth`` (float ``[B, H, W]``, L1 over valid
pixels; 0 = missing) and ``normals`` (float ``[B, H, W, 3]``, 1 - cosine over
valid pixels; an all-zero vector = missing). A dense task's head outputs
``[B, H, W, out_features]`` at the targets' resolution; its optional
``shape=(H, W)`` (the dataset's declarations carry it) is then checked
against the data and the predictions. Each metric has a default direction
(accuracy: higher is better; MAE: lower); ``higher_is_better={"metric":
bool}`` overrides it. Tasks are
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

DENSE_KINDS = ("segmentation", "depth", "normals")
KINDS = ("multiclass", "binary", "regression") + DENSE_KINDS
DEFAULT_LOSS = {"multiclass": "cross_entropy", "binary": "sigmoid_cross_entropy",
                "regression": "mse", "segmentation": "pixel_cross_entropy",
                "depth": "depth_l1", "normals": "normal_cosine"}
DEFAULT_METRICS = {"multiclass": ("accuracy",), "binary": ("accuracy",),
                   "regression": ("mae",),
                   "segmentation": ("miou", "pixel_accuracy"),
                   "depth": ("abs_err", "rel_err"),
                   "normals": ("angle_mean", "angle_median", "within_11_25",
                               "within_22_5", "within_30")}
_FIELDS = ("kind", "num_classes", "num_labels", "dim", "loss", "metrics",
           "higher_is_better", "ignore_label", "shape")
# The ignore label of a segmentation task that declares none: the value of the
# preprocessed NYUv2 / Cityscapes releases (MTAN: F.nll_loss(ignore_index=-1);
# LibMTL: nn.CrossEntropyLoss(ignore_index=-1)).
SEGMENTATION_IGNORE_LABEL = -1


@dataclasses.dataclass(frozen=True)
class Task:
  """One task: its name, output head size, loss and metrics.

  Attributes:
    name: task name, the key of its targets, mask, head and metrics.
    kind: one of :data:`KINDS`.
    num_classes: classes of a multiclass or segmentation task.
    num_labels: labels of a (multi-label) binary task; 1 means targets ``[B]``.
    dim: output size of a regression task; 1 means targets ``[B]``.
    loss: loss name (see :mod:`mtl_jax.losses`).
    metrics: metric names (see :mod:`mtl_jax.losses.metrics`).
    higher_is_better: the direction of every metric (True: higher is
      better); :func:`from_config` fills in each metric's default where the
      config does not override it.
    ignore_label: a label value that marks a missing label (multiclass and
      segmentation; a segmentation task's defaults to
      :data:`SEGMENTATION_IGNORE_LABEL`, -1).
    shape: ``(H, W)`` of a dense task's targets and predictions, or None
      (not checked).
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
  shape: tuple[int, int] | None = None

  def __post_init__(self):
    if self.kind == "segmentation" and self.ignore_label is None:
      object.__setattr__(self, "ignore_label", SEGMENTATION_IGNORE_LABEL)

  @property
  def dense(self) -> bool:
    """True for a per-pixel task (head output ``[B, H, W, out_features]``)."""
    return self.kind in DENSE_KINDS

  @property
  def out_features(self) -> int:
    """Width of the task's head (channels per pixel for a dense task)."""
    return {"multiclass": self.num_classes, "binary": self.num_labels,
            "regression": self.dim, "segmentation": self.num_classes,
            "depth": 1, "normals": 3}[self.kind]

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
  if kind in ("multiclass", "segmentation") and int(spec.get("num_classes", 0)) < 2:
    raise ValueError(f"Task {name!r}: a {kind} task needs num_classes >= 2, "
                     f"got {spec.get('num_classes')!r}.")
  for field in ("num_labels", "dim"):
    if int(spec.get(field, 1)) < 1:
      raise ValueError(f"Task {name!r}: {field} must be >= 1, got {spec[field]!r}.")
  if spec.get("ignore_label") is not None and kind in ("depth", "normals"):
    raise ValueError(f"Task {name!r}: ignore_label does not apply to a {kind} "
                     "task (a missing depth is 0, a missing normal all-zero).")
  shape = _shape(name, kind, spec.get("shape"))
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
              ignore_label=spec.get("ignore_label"), shape=shape)


def _shape(name: str, kind: str, shape: Any) -> tuple[int, int] | None:
  """A dense task's declared ``(H, W)`` as a tuple of ints, or None."""
  if shape is None:
    return None
  if kind not in DENSE_KINDS:
    raise ValueError(f"Task {name!r}: shape applies to dense tasks {DENSE_KINDS}, "
                     f"not to a {kind} task.")
  try:
    dims = tuple(int(d) for d in shape)
  except (TypeError, ValueError):
    dims = ()
  if len(dims) != 2 or min(dims) < 1 or dims != tuple(shape):
    raise ValueError(f"Task {name!r}: shape must be (H, W) with two positive "
                     f"integers, got {shape!r}.")
  return dims


def from_config(tasks_config: Mapping[str, Mapping[str, Any]]) -> tuple[Task, ...]:
  """Parses ``config.tasks`` into :class:`Task` objects sorted by name."""
  if not tasks_config:
    raise ValueError("config.tasks is empty: declare at least one task.")
  return tuple(_make_task(name, dict(tasks_config[name]))
               for name in sorted(tasks_config))
