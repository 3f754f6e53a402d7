"""Run settings: a config is read and checked once, here, into typed values.

:func:`parse` turns a ConfigDict (``configs/*.py``'s ``get_config``) into a
frozen :class:`Settings` and raises :class:`ConfigError` on the first problem,
with one line naming the key and the value. Everything below it (the loop, the
step, the models, the methods) receives typed values and keyword arguments,
never the ConfigDict::

  s = settings.parse(config)          # every config error, before any compile
  s.train.batch_size, s.method.aggregation, s.model.options, s.tasks

Sections and what is checked here (the checks of a section's values live with
what uses them and are called from here):

* ``train`` (:class:`TrainSettings`): counts, policies and dtypes; the batch
  splits into ``accumulation_steps`` micro-batches.
* ``tasks``: kinds, sizes, losses, metrics (:func:`mtl_jax.tasks.from_config`).
* ``data``: a known dataset (each source's, in multi-input mode), its options,
  the same tasks as the config (:mod:`mtl_jax.data`); kept as a mapping, the
  data package's own format.
* ``model`` (:class:`ModelSettings`): a known architecture taking the given
  keyword options; ``model.penalties`` known penalties with valid weights.
* ``method`` (:class:`MethodSettings`): known weighting and aggregation names
  with hyperparameters in their domain, an engine that suits them and the
  architecture. ``aggregation=None`` means no aggregator (on the command line,
  where a field cannot be set to None: ``--config.method.aggregation=``).
* ``optimizer`` (:class:`OptimizerSettings`), ``mesh`` (:class:`MeshSettings`).

What needs the machine (the devices, prepared catalog data) is checked by
:func:`mtl_jax.train.validate.check_config`.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Mapping, Optional, Sequence

import jax
import ml_collections

from mtl_jax import aggregation, data, models, penalties, tasks as tasks_lib, validators
from mtl_jax import weighting
from mtl_jax.tasks import Task
from mtl_jax.train import accumulation, engines, optimizer, precision


class ConfigError(validators.InvalidValue):
  """A config that cannot run: one line naming the key and the value.

  A ``ValueError`` (and a ``TypeError``), so callers catching either see it.
  """


# -- sections -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """``config.train``: the step loop.

  Attributes:
    num_steps: updates to take.
    batch_size: global batch (all devices and processes together).
    eval_batch_size: batch of the evaluation passes.
    log_every: steps between logged training records.
    eval_every: steps between validation passes (0: none during training).
    checkpoint_every: steps between checkpoints (0: only the final one).
    max_to_keep: checkpoints kept.
    nonfinite: ``'skip'`` a non-finite update, or ``'halt'`` after
      ``max_nonfinite`` consecutive ones.
    max_nonfinite: see ``nonfinite`` (``'halt'`` runs only).
    max_skipped: skipped updates a ``'skip'`` run tolerates before it halts
      like ``'halt'`` (0: 10 % of ``num_steps``, :func:`loop.skip_limit`).
    max_empty_batches: consecutive batches without any label before the run
      stops (0: never).
    compute_dtype: dtype of the model's forward and backward passes.
    accumulation_steps: micro-batches per step (same update as the batch).
    log_cosine: log the per-task gradient cosines of weighting-only runs.
    tensorboard: also write TensorBoard event files.
  """

  num_steps: int
  batch_size: int
  eval_batch_size: int = 256
  log_every: int = 50
  eval_every: int = 0
  checkpoint_every: int = 0
  max_to_keep: int = 3
  nonfinite: str = "skip"
  max_nonfinite: int = 0
  max_skipped: int = 0
  max_empty_batches: int = 100
  compute_dtype: str = "float32"
  accumulation_steps: int = 1
  log_cosine: bool = True
  tensorboard: bool = True


NONFINITE_POLICIES = ("skip", "halt")
_POSITIVE = ("num_steps", "batch_size", "eval_batch_size", "log_every", "max_to_keep",
             "accumulation_steps")
_NON_NEGATIVE = ("eval_every", "checkpoint_every", "max_nonfinite", "max_skipped",
                 "max_empty_batches")


@dataclasses.dataclass(frozen=True)
class MethodSettings:
  """``config.method``: how the step weights and aggregates.

  Attributes:
    weighting: a :mod:`mtl_jax.weighting` name.
    weighting_kwargs: its hyperparameters.
    aggregation: a :mod:`mtl_jax.aggregation` name, or None (no aggregator:
      the gradient of the weighted loss sum).
    aggregation_kwargs: its hyperparameters.
    engine: ``'auto'`` or a :mod:`mtl_jax.train.engines` name.
    every: solve the aggregation every ``every`` steps (reuse between).
  """

  weighting: str = "equal"
  weighting_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  aggregation: Optional[str] = None
  aggregation_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  engine: str = "auto"
  every: int = 1

  @property
  def label(self) -> str:
    """The method's name in tables: the aggregator's, else the weighting's."""
    return self.aggregation or self.weighting

  def build(self, *, has_representation: bool) -> engines.Method:
    """The weighting, the aggregator (or None) and the engine, resolved for a
    model with (or without) a shared representation (``encode``/``decode``)."""
    w = weighting.get(self.weighting, **self.weighting_kwargs)
    agg = (None if self.aggregation is None
           else aggregation.get(self.aggregation, **self.aggregation_kwargs))
    return engines.resolve(w, agg, self.engine, has_representation=has_representation,
                           every=self.every)


@dataclasses.dataclass(frozen=True)
class ModelSettings:
  """``config.model``: the architecture and its keyword options.

  Attributes:
    arch: a :mod:`mtl_jax.models` name.
    options: the architecture's keyword arguments (``config.model`` without
      ``arch`` and ``penalties``).
    penalties: ``{penalty name: weight or {"weight": w, **options}}``, or None.
  """

  arch: str = "hard_sharing"
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  penalties: Optional[Mapping[str, Any]] = None

  def build(self, tasks, input_shape, *, seed: int):
    """The model: ``models.build(tasks, input_shape, seed, arch, **options)``.

    A bad option value is reported as a :class:`ConfigError` on ``model``.
    """
    try:
      return models.build(tasks, input_shape, seed=seed, arch=self.arch, **self.options)
    except (ValueError, TypeError) as e:
      if isinstance(e, ConfigError):
        raise
      raise ConfigError(f"model: {e}") from e


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
  """``config.optimizer`` (:mod:`mtl_jax.train.optimizer` documents each field)."""

  name: str = "adam"
  learning_rate: Optional[float] = None
  task_learning_rate: Optional[float] = None
  schedule: str = "constant"
  warmup_steps: int = 0
  decay_every: int = 0
  decay_factor: float = 0.5
  weight_decay: float = 1e-4
  momentum: float = 0.9
  clip_norm: float = 0.0


@dataclasses.dataclass(frozen=True)
class MeshSettings:
  """``config.mesh``: ``num_devices`` of the data axis (0: all), ``fsdp``."""

  num_devices: int = 0
  fsdp: bool = False


@dataclasses.dataclass(frozen=True)
class BenchmarkSettings:
  """``config.benchmark``: the published benchmark and protocol a run follows
  (:mod:`mtl_jax.report.published`), shown beside its results in reports."""

  name: str
  protocol: str


@dataclasses.dataclass(frozen=True)
class Settings:
  """A whole run, parsed and checked.

  Attributes:
    name: the run's name (progress bar, tables).
    seed: initialisation, batch order and the step keys.
    workdir: default run directory.
    tasks: the tasks, sorted by name (the order of every per-task vector).
    data: the ``config.data`` section as a plain mapping (the data package's
      format; checked against the tasks).
    input_shape: shape of one example.
    model, method, optimizer, train, mesh: the typed sections.
    compare_methods: methods ``mtl-jax compare`` runs by default.
    distributed: ``config.distributed`` (multi-host initialisation).
    benchmark: the published benchmark and protocol the run follows, or None.
    config: the ConfigDict parsed, kept to record it with the run
      (``config.json``, checkpoint metadata).
  """

  name: str
  seed: int
  workdir: Optional[str]
  tasks: tuple[Task, ...]
  data: Mapping[str, Any]
  input_shape: tuple[int, ...]
  model: ModelSettings
  method: MethodSettings
  optimizer: OptimizerSettings
  train: TrainSettings
  mesh: MeshSettings
  compare_methods: tuple[str, ...]
  distributed: Mapping[str, Any]
  benchmark: Optional[BenchmarkSettings] = None
  config: Any = dataclasses.field(repr=False, compare=False, default=None)

  @property
  def task_names(self) -> list[str]:
    return [t.name for t in self.tasks]


# -- parsing --------------------------------------------------------------------

def _section(config, key: str) -> dict:
  value = config.get(key, None) if hasattr(config, "get") else None
  try:
    return validators.mapping(value, key)
  except ValueError as e:
    raise ConfigError(str(e)) from None


def _fields(cls, *, exclude: Sequence[str] = ()) -> list[str]:
  return [f.name for f in dataclasses.fields(cls) if f.name not in exclude]


def _known(section: Mapping[str, Any], fields: Sequence[str], key: str) -> None:
  """Refuses keys of ``section`` that are not ``fields``, with a hint."""
  for name in section:
    if name not in fields:
      close = difflib.get_close_matches(name, fields, n=1)
      hint = f" Did you mean {key}.{close[0]}?" if close else ""
      raise ConfigError(f"{key}.{name} is not a setting.{hint} Valid: {sorted(fields)}.")


def _checked(fn, *args, prefix: str = "", **kwargs):
  """``fn(*args, **kwargs)``, its ValueError / TypeError as a ConfigError."""
  try:
    return fn(*args, **kwargs)
  except ConfigError:
    raise
  except (ValueError, TypeError) as e:
    raise ConfigError(f"{prefix}{e}") from e


def parse_train(section: Mapping[str, Any]) -> TrainSettings:
  """``config.train`` -> :class:`TrainSettings` (raises :class:`ConfigError`)."""
  section = dict(section)
  _known(section, _fields(TrainSettings), "train")
  values = {k: v for k, v in section.items() if v is not None}
  values.setdefault("num_steps", None)  # required: "got None" if missing
  values.setdefault("batch_size", None)
  for key in _POSITIVE:
    if key in values:
      _checked(validators.integer, values[key], f"train.{key}", 1)
  for key in _NON_NEGATIVE:
    if key in values:
      _checked(validators.integer, values[key], f"train.{key}", 0)
  for key in ("log_cosine", "tensorboard"):
    if key in values:
      _checked(validators.boolean, values[key], f"train.{key}")
  _checked(validators.choice, values.get("nonfinite", "skip"), "train.nonfinite",
           NONFINITE_POLICIES)
  _checked(precision.compute_dtype, values.get("compute_dtype", "float32"))
  train = TrainSettings(**values)
  _checked(accumulation.check_batch, train.batch_size, train.accumulation_steps)
  return train


def parse_method(section: Mapping[str, Any], *, task_names: Sequence[str], arch: str
                 ) -> MethodSettings:
  """``config.method`` -> :class:`MethodSettings`, the methods built once to
  check their names, hyperparameters and engine (raises :class:`ConfigError`)."""
  section = dict(section)
  _known(section, _fields(MethodSettings), "method")
  aggregation = section.get("aggregation", None)
  if isinstance(aggregation, str) and aggregation.lower() == "none":
    raise ConfigError(
        f"method.aggregation={aggregation!r} is not an aggregation method; no "
        "aggregator is None (on the command line: --config.method.aggregation=).")
  method = MethodSettings(
      weighting=section.get("weighting") or "equal",
      weighting_kwargs=dict(section.get("weighting_kwargs") or {}),
      aggregation=aggregation or None,
      aggregation_kwargs=dict(section.get("aggregation_kwargs") or {}),
      engine=section.get("engine") or "auto",
      every=section.get("every", 1))
  has_representation = hasattr(_checked(models.REGISTRY.lookup, arch), "encode")
  built = _checked(method.build, has_representation=has_representation)
  try:
    jax.eval_shape(lambda: built.weighting.init(len(task_names)))
  except ValueError as e:
    raise ConfigError(f"config.method.weighting_kwargs: {e} The tasks, in the order "
                      f"of every per-task vector: {list(task_names)}.") from e
  return method


def parse_model(section: Mapping[str, Any]) -> ModelSettings:
  """``config.model`` -> :class:`ModelSettings` (option values are checked
  when the model is built, :meth:`ModelSettings.build`)."""
  options = dict(section)
  arch = options.pop("arch", None) or "hard_sharing"
  penalty_config = options.pop("penalties", None)
  _checked(models.REGISTRY.lookup, arch)
  _checked(models.check_options, arch, options, prefix="model: ")
  _checked(penalties.build, penalty_config, options)
  return ModelSettings(arch=arch, options=options, penalties=penalty_config)


def parse_optimizer(section: Mapping[str, Any], num_steps: int) -> OptimizerSettings:
  """``config.optimizer`` -> :class:`OptimizerSettings`."""
  section = dict(section)
  _known(section, _fields(OptimizerSettings), "optimizer")
  values = {k: v for k, v in section.items() if v is not None}
  settings = OptimizerSettings(**values)
  _checked(optimizer.build, dataclasses.asdict(settings), num_steps)
  return settings


def parse_mesh(section: Mapping[str, Any]) -> MeshSettings:
  section = dict(section)
  _known(section, _fields(MeshSettings), "mesh")
  values = {k: v for k, v in section.items() if v is not None}
  if "num_devices" in values:
    _checked(validators.integer, values["num_devices"], "mesh.num_devices", 0)
  return MeshSettings(**values)


def parse_benchmark(section: Optional[Mapping[str, Any]]) -> Optional[BenchmarkSettings]:
  """``config.benchmark`` (None, or ``dict(name=..., protocol=...)``)."""
  if section is None:
    return None
  section = _section({"benchmark": section}, "benchmark")
  _known(section, _fields(BenchmarkSettings), "benchmark")
  for key in ("name", "protocol"):
    if not isinstance(section.get(key), str):
      raise ConfigError(f"config.benchmark.{key} must be a string, got "
                        f"{section.get(key)!r}.")
  from mtl_jax.report import published  # Here: the report package loads matplotlib.
  _checked(published.check, section["name"], section["protocol"])
  return BenchmarkSettings(name=section["name"], protocol=section["protocol"])


def parse(config) -> Settings:
  """Reads and checks ``config`` (a ConfigDict or mapping) into :class:`Settings`.

  Raises:
    ConfigError: on the first problem, naming the key and the value.
  """
  if isinstance(config, Settings):
    return config
  _known(config, _fields(Settings, exclude=("input_shape", "config")), "config")
  train = parse_train(_section(config, "train"))
  seed = _checked(validators.integer, config.get("seed", 0), "seed", 0)
  data_section = _section(config, "data")
  for section in _checked(data.sections, data_section):
    _checked(data.get_spec, section.get("name") or "")
  tasks = _checked(tasks_lib.from_config, _section(config, "tasks"))
  _checked(data.validate_tasks, data_section, tasks)
  model = parse_model(_section(config, "model"))
  return Settings(
      name=str(config.get("name", None) or "train"),
      seed=seed,
      workdir=config.get("workdir", None),
      tasks=tasks,
      data=data_section,
      input_shape=tuple(_checked(data.input_shape, data_section)),
      model=model,
      method=parse_method(_section(config, "method"),
                          task_names=[t.name for t in tasks], arch=model.arch),
      optimizer=parse_optimizer(_section(config, "optimizer"), train.num_steps),
      train=train,
      mesh=parse_mesh(_section(config, "mesh")),
      compare_methods=tuple(config.get("compare_methods", None) or ()),
      distributed=_section(config, "distributed"),
      benchmark=parse_benchmark(config.get("benchmark", None)),
      config=config if isinstance(config, ml_collections.ConfigDict)
      else ml_collections.ConfigDict(config))
