"""Penalties: ``penalty(params) -> scalar`` added to the objective.

Each penalty lives in its own module as a pure function of arrays, and is
registered as a :class:`~mtl_jax.penalties.base.Penalty` that also says which
parameters it reads (``apply(select(params), **options)``):

* soft-sharing penalties, on the stacked tower kernels (the leaves named
  ``kernel`` of ``params['cross']``, each with a leading task axis of size
  ``len(params['tasks'])``, see :func:`~mtl_jax.penalties.base.stacked_kernels`):
  ``l2_to_mean``, ``pairwise_l2``, ``trace_norm``, ``orthogonality``, ``l21``;
* auxiliary regularisers of one architecture: ``dselect_entropy`` (the
  DSelect-k selectors' entropy, on task-conditioned DSelect-k gates) and
  ``sluice_orthogonality`` (the subspace-orthogonality loss of sluice
  networks, on the columns of ``arch='cross_stitch', sluice=True``).

:func:`build` turns ``config.model.penalties`` into one function of the model
parameters for the train step's ``penalty`` hook. Each entry maps a name to a
weight, or to ``{"weight": w, **options}`` for a penalty with options::

  penalty = penalties.build({"l2_to_mean": 1e-3, "trace_norm": 1e-4})
  penalty = penalties.build({"dselect_entropy": 1e-3}, config.model)  # model's gamma
  step = make_train_step(graphdef, tasks, method, tx, penalty=penalty)

Options that describe the model (the penalty's ``model_options``: the
DSelect-k gates' ``gamma``) come from the model config given to :func:`build`
(the trainer gives ``config.model``); an entry that sets one to another value
than the model's is refused.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, Optional

import jax

from mtl_jax.penalties.base import Penalty, as_matrices, on_stacked_kernels, stacked_kernels
from mtl_jax.registry import Registry
from mtl_jax.validators import number, positive

REGISTRY = Registry("penalty", __name__, {
    name: f"{name}:PENALTY" for name in (
        "l2_to_mean", "pairwise_l2", "trace_norm", "orthogonality", "l21",
        "dselect_entropy", "sluice_orthogonality")})


def get(name: str) -> Penalty:
  """The :class:`~mtl_jax.penalties.base.Penalty` ``name``: ``apply``, a
  function of the arrays that ``select(params)`` reads from the model
  parameters."""
  return REGISTRY.lookup(name)


def register(name: str, penalty: Penalty, *, replace: bool = False) -> None:
  """Adds a user's own penalty, e.g. ``register("mine", on_stacked_kernels(fn))``."""
  REGISTRY.register(name, penalty, replace=replace)


def names() -> tuple[str, ...]:
  return REGISTRY.names()


def _weight(name: str, weight) -> float:
  subject = f"model.penalties[{name!r}]"
  return positive(number(weight, subject), subject, allow_zero=True)


def _options(name: str, apply: Callable, options: dict) -> dict:
  """``options`` if ``apply`` takes them as keywords, else a ValueError."""
  try:
    inspect.signature(apply).bind(None, **options)
  except TypeError:
    valid = list(inspect.signature(apply).parameters)[1:]
    raise ValueError(f"model.penalties[{name!r}]: unknown option(s) "
                     f"{sorted(options)}; valid: {valid or 'none'}.") from None
  return options


def _entry(name: str, spec: Any) -> tuple[float, dict]:
  """``(weight, options)`` of one entry: ``w`` or ``{"weight": w, **options}``."""
  if not hasattr(spec, "items"):
    return _weight(name, spec), {}
  options = dict(spec.items())
  if "weight" not in options:
    raise ValueError(f"model.penalties[{name!r}] is a mapping, so it needs a "
                     f"'weight' entry; got {options!r}.")
  weight = options.pop("weight")
  return _weight(name, weight), _options(name, get(name).apply, options)


def _term(name: str, weight: float, options: dict) -> Callable[[dict], jax.Array]:
  """``params -> weight * apply(select(params), **options)``, naming ``name`` in
  the error when the parameters lack what the penalty reads."""
  penalty = get(name)

  def term(params: dict) -> jax.Array:
    try:
      arrays = penalty.select(params)
    except ValueError as e:
      raise ValueError(f"Penalty {name!r} cannot be applied to this model: {e}") from e
    return weight * penalty.apply(arrays, **options)

  return term


def _with_model_options(name: str, options: dict,
                        model_config: Optional[Mapping[str, Any]]) -> dict:
  """``options`` plus the penalty's ``model_options`` read from the model."""
  for key in get(name).model_options:
    if model_config is None or model_config.get(key, None) is None:
      continue
    value = model_config.get(key)
    if key in options and options[key] != value:
      raise ValueError(f"model.penalties[{name!r}]: {key}={options[key]!r} differs from "
                       f"model.{key}={value!r}; the penalty must use the model's value "
                       f"(leave {key!r} out of the entry).")
    options = dict(options, **{key: value})
  return options


def build(penalty_config: Optional[Mapping[str, Any]],
          model_config: Optional[Mapping[str, Any]] = None,
          ) -> Optional[Callable[[dict], jax.Array]]:
  """``penalty(params) -> scalar`` from a mapping penalty name -> weight.

  Args:
    penalty_config: e.g. ``{"l2_to_mean": 1e-3, "trace_norm": 1e-4}`` (a
      dict or ConfigDict); a value may also be ``{"weight": w, **options}``
      with the penalty's keyword options. ``None`` or empty means no penalty.
    model_config: the model's config (``config.model``), where penalties
      read the options that describe the model (``dselect_entropy``:
      ``gamma``) unless their entry sets them.

  Returns:
    ``penalty(params) = sum_name weight * apply(select(params), **options)``
    for the ``{'shared', 'tasks', 'cross'}`` parameters, or ``None`` when
    there is nothing to add (no entries, or all weights zero).

  Raises:
    ValueError: for an unknown penalty name (the message lists the valid
      ones), a negative or non-numeric weight or an unknown option (naming
      the penalty), or a config that is not a mapping. Applying a penalty to
      a model without the parameters it reads raises as well, at trace time,
      naming the penalty and listing the parameters found.
  """
  if penalty_config is None:
    return None
  if not hasattr(penalty_config, "items"):
    raise ValueError("model.penalties must be a mapping penalty name -> weight, "
                     f"got {penalty_config!r}.")
  terms = []
  for name, spec in sorted(penalty_config.items()):
    get(name)  # Unknown names fail first, with the list of valid ones.
    weight, options = _entry(name, spec)
    options = _with_model_options(name, options, model_config)
    if weight > 0:
      terms.append(_term(name, weight, options))
  if not terms:
    return None

  def penalty(params: dict) -> jax.Array:
    return sum(term(params) for term in terms)

  return penalty


__all__ = ["Penalty", "REGISTRY", "as_matrices", "build", "get", "names",
           "on_stacked_kernels", "register", "stacked_kernels"]
