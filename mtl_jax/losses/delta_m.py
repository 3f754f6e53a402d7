"""Delta_m: the overall relative change of a multi-task model vs. baselines.

    Delta_m% = (100 / M) * sum_k (-1)^{d_k} (M_{m,k} - M_{b,k}) / M_{b,k}

over all M metrics of all tasks, with d_k = 1 where higher is better for
metric k (so a positive Delta_m means the multi-task model is worse; lower is
better). Metrics are averaged directly, not within each task first. We divide
by ``|M_{b,k}|``, which equals the formula for the usual positive metrics and
keeps the sign meaningful for a metric such as R^2 whose baseline can be
negative.

Reference: Navon et al., "Multi-Task Learning as a Bargaining Game", ICML
2022, Sec. 6 (after Maninis et al., CVPR 2019).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
  from mtl_jax.tasks import Task


def relative_changes(tasks: Sequence[Task], baseline: Mapping, model: Mapping
                     ) -> dict[str, dict[str, float]]:
  """Signed relative change in percent per task and metric (positive = worse)."""
  out = {}
  for t in tasks:
    out[t.name] = {}
    for m in t.metrics:
      base, value = float(baseline[t.name][m]), float(model[t.name][m])
      if base == 0 or not (math.isfinite(base) and math.isfinite(value)):
        raise ValueError(
            f"Delta_m: task {t.name!r} metric {m!r} has baseline {base!r} and "
            f"model value {value!r}; a relative change needs a finite, non-zero "
            "baseline.")
      sign = -1.0 if t.direction(m) else 1.0
      out[t.name][m] = 100.0 * sign * (value - base) / abs(base)
  return out


def delta_m(tasks: Sequence[Task], baseline: Mapping, model: Mapping) -> float:
  """Delta_m% of ``model`` against ``baseline`` (``{task: {metric: value}}``)."""
  changes = [c for per_task in relative_changes(tasks, baseline, model).values()
             for c in per_task.values()]
  return sum(changes) / len(changes)
