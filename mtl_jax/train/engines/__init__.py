"""Per-task gradient engines: how the step obtains what the method needs.

Every engine takes the model's functions and the train state and returns the
update direction for each parameter group plus what the methods produced.
Let ``L(theta) = [L_1, ..., L_T]`` be the per-task losses, ``w`` the loss
weights (:mod:`mtl_jax.weighting`) and ``J`` the Jacobian of ``w * L`` w.r.t.
the shared parameters. One module per engine, with its maths and its cost on
the whole batch and over micro-batches:

* ``weighted`` (:mod:`.weighted`; no aggregator, weighting without
  ``needs``): one forward, one VJP with cotangent ``w``. Exactly the cost of
  the summed loss. The same module holds :func:`reuse`, the periodic step
  between two solves (``method.every > 1``).
* ``jacobian`` (:mod:`.jacobian`): one forward, then all ``T`` VJPs as one
  vmapped program (the rows of ``J`` for every parameter group at once), the
  Gramian ``J J^T``, and the aggregator on ``J`` (or on the Gramian, if it
  provides ``weights``).
* ``gramian`` (:mod:`.gramian`): memory-lean; never holds ``J``; the Gramian
  column by column, then one more VJP. Only for aggregators with ``weights``.
* ``representation`` (:mod:`.representation`): for models with one shared
  representation ``z``: the Jacobian w.r.t. ``z`` (``T x B x D`` instead of
  ``T x P``), its Gramian, the aggregator's weights, then one VJP through the
  trunk. MGDA on this engine is MGDA-UB (Sener & Koltun, 2018).

Task-specific and cross-task groups always get the gradient of
``sum_t w_t L_t``; the aggregator acts on the shared group only.

The interface (:mod:`.base`): every engine is called as
``engine(fns, state, batch, method, extras) -> EngineOut`` and declares what
it needs with ``@requires(...)``, which :func:`resolve` checks against the
method and the model. Adding an engine is one module here and one line in
``_ENTRIES``; a user's own engine is ``REGISTRY.register(name, fn)``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from mtl_jax.aggregation.base import Aggregator
from mtl_jax.registry import Registry
from mtl_jax.train.engines.base import (HEAD_GROUPS, Engine, EngineOut, ModelFns,
                                        Requirements, requirements_of, requires)
from mtl_jax.weighting.base import Weighting

_ENTRIES = {  # name -> "module:function"; the order of ENGINES
    "weighted": "weighted:weighted",
    "jacobian": "jacobian:jacobian",
    "gramian": "gramian:gramian",
    "representation": "representation:representation",
}
REGISTRY = Registry("engine", __name__, _ENTRIES)
ENGINES = tuple(_ENTRIES)
DEFAULT = "jacobian"  # the engine for per-task gradients unless one is named


def get(name: str) -> Engine:
  """The engine function ``name`` (imports its module)."""
  return REGISTRY.lookup(name)


class Method(NamedTuple):
  """The static description of how a step weights and aggregates.

  Attributes:
    weighting: the loss-weighting method.
    aggregator: the gradient aggregator, or None (weighted loss sum).
    engine: one of ``ENGINES``.
    every: run the engine (per-task gradients, Gramian, aggregation solve)
      only every ``every`` steps; the steps between reuse the last
      aggregation weights and Gramian, at the cost of one VJP.
  """

  weighting: Weighting
  aggregator: Optional[Aggregator]
  engine: str
  every: int = 1

  @property
  def periodic(self) -> bool:
    return self.every > 1


def _listed(names) -> str:
  quoted = [repr(n) for n in names]
  return " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def resolve(weighting: Weighting, aggregator: Optional[Aggregator], engine: str,
            *, has_representation: bool, every: int = 1) -> Method:
  """Checks the engine suits the methods and the model; picks a default.

  ``engine='auto'`` selects ``weighted`` when nothing needs per-task
  gradients and ``jacobian`` otherwise. With ``every > 1`` a ``weighted``
  run becomes ``jacobian`` every ``every`` steps, which logs the gradient
  cosines at that period for the price of one Jacobian. What an engine
  needs is its :class:`Requirements` (``@requires`` on its function).
  """
  if not isinstance(every, int) or every < 1:
    raise ValueError(f"method.every must be a positive integer, got {every!r}.")
  if every > 1 and aggregator is not None and aggregator.weights is None:
    raise ValueError(
        "method.every > 1 reuses the aggregation weights between solves, but this "
        "aggregator is not a weighted sum of task gradients (it has no `weights`); "
        "use method.every=1.")
  needs_grads = aggregator is not None or "gramian" in weighting.needs
  if engine == "auto":
    engine = DEFAULT if needs_grads else "weighted"
  if engine not in REGISTRY:
    valid = ("auto",) + ENGINES + tuple(REGISTRY.registered)
    raise ValueError(f"Unknown engine {engine!r}; valid: {valid}.")
  needs = requirements_of(get(engine))
  if not needs.task_gradients and needs_grads and every == 1:
    gradient_engines = [n for n in ENGINES if requirements_of(get(n)).task_gradients]
    raise ValueError(
        f"engine {engine!r} computes no per-task gradients, but the method needs "
        "them (an aggregator, or a weighting that needs the Gramian); use "
        f"{_listed(gradient_engines)}.")
  if needs.aggregator_weights and aggregator is not None and aggregator.weights is None:
    raise ValueError(
        f"engine {engine!r} needs an aggregator whose update is a weighted sum of "
        "task gradients (one with `weights`); this aggregator needs the full "
        f"Jacobian: use engine {DEFAULT!r}.")
  if needs.representation and not has_representation:
    others = [n for n in ENGINES if not requirements_of(get(n)).representation
              and requirements_of(get(n)).task_gradients]
    raise ValueError(
        f"engine {engine!r} needs a model with a single shared "
        "representation (encode/decode methods); this architecture has none: use "
        f"{_listed(others)}.")
  if every > 1 and not needs.task_gradients:
    engine = DEFAULT
  return Method(weighting, aggregator, engine, every)


__all__ = ["DEFAULT", "ENGINES", "Engine", "EngineOut", "HEAD_GROUPS", "Method",
           "ModelFns", "REGISTRY", "Requirements", "get", "requirements_of",
           "requires", "resolve"]
