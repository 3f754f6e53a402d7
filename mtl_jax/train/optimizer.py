"""The optimizer: optax, partitioned over the shared and task groups.

``config.optimizer`` fields: ``name`` (adam, adamw, adam_l2, sgd, momentum,
rmsprop; ``adam_l2`` is PyTorch's ``Adam(weight_decay=...)``, the L2 term
added to the gradient before Adam's moments, as LibMTL trains; ``adamw``
decays the weights apart from them, Loshchilov & Hutter 2019),
``learning_rate``, ``task_learning_rate`` (defaults to ``learning_rate``; used
for the ``tasks`` and ``cross`` groups), ``weight_decay`` (adamw, adam_l2), ``momentum``
(sgd / momentum), ``schedule`` (constant, cosine, warmup_cosine, step),
``warmup_steps``, ``decay_every`` and ``decay_factor`` (``step``: the rate is
multiplied by ``decay_factor`` every ``decay_every`` steps, PyTorch's
``StepLR``: the NYUv2 / Cityscapes protocols halve it every 100 epochs),
``clip_norm`` (0 = off, global norm over all parameters).
"""

from __future__ import annotations

import jax
import optax

from mtl_jax.validators import at_least, choice, in_range, positive, positive_int

_OPTIMIZERS = ("adam", "adamw", "adam_l2", "sgd", "momentum", "rmsprop")
_SCHEDULES = ("constant", "cosine", "warmup_cosine", "step")


def _schedule(config, lr: float, total_steps: int):
  kind = choice(config.get("schedule", "constant"), "optimizer.schedule", _SCHEDULES)
  if kind == "cosine":
    return optax.cosine_decay_schedule(lr, max(total_steps, 1))
  if kind == "warmup_cosine":
    warmup = int(config.get("warmup_steps", 0))
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, warmup + 1))
  if kind == "step":
    every = positive_int(config.get("decay_every", 0), "optimizer.decay_every")
    factor = in_range(config.get("decay_factor", 0.5), "optimizer.decay_factor", 0.0, 1.0,
                      closed="right")
    return optax.exponential_decay(lr, every, factor, staircase=True)
  return lr


def _base(config, lr) -> optax.GradientTransformation:
  name = choice(config.get("name", "adam"), "optimizer.name", _OPTIMIZERS)
  if name == "adam":
    return optax.adam(lr)
  if name == "adamw":
    return optax.adamw(lr, weight_decay=float(config.get("weight_decay", 1e-4)))
  if name == "adam_l2":
    return optax.chain(optax.add_decayed_weights(float(config.get("weight_decay", 1e-4))),
                       optax.adam(lr))
  if name == "sgd":
    return optax.sgd(lr)
  if name == "momentum":
    return optax.sgd(lr, momentum=float(config.get("momentum", 0.9)))
  return optax.rmsprop(lr)


def _positive(config, key: str, default=None) -> float:
  value = config.get(key, default)
  return positive(default if value is None else value, f"optimizer.{key}")


def group_labels(params: dict) -> dict:
  """Labels every leaf: 'shared' under ``shared``, 'tasks' under the others."""
  return {group: jax.tree.map(lambda _, g=group: "shared" if g == "shared" else "tasks",
                              subtree)
          for group, subtree in params.items()}


def build(config, total_steps: int) -> optax.GradientTransformation:
  """The optax transformation for ``{'shared', 'tasks', 'cross'}`` params."""
  lr = _positive(config, "learning_rate")
  task_lr = _positive(config, "task_learning_rate", lr)
  tx = optax.partition(
      {"shared": _base(config, _schedule(config, lr, total_steps)),
       "tasks": _base(config, _schedule(config, task_lr, total_steps))},
      group_labels)
  clip = at_least(float(config.get("clip_norm", 0.0) or 0.0), "optimizer.clip_norm", 0)
  return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx

