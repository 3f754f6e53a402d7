"""The training loop: config -> data, model, method -> compiled step -> run.

``train(config)`` is what ``mtl-jax train`` runs. It builds everything from
the config, creates the state under ``jit`` (shapes first with
``jax.eval_shape``), compiles the step once with the state donated, resumes
from the latest checkpoint when asked, logs JSON lines, shows a progress bar
and evaluates on the validation/test splits.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Optional

import jax
import numpy as np
from tqdm.auto import tqdm

from mtl_jax import aggregation, data, models, penalties, tasks as tasks_lib, weighting
from mtl_jax.losses import metrics as metrics_lib
from mtl_jax.train import engines, logger, optimizer, sharding, state as state_lib
from mtl_jax.train import signals, validate
from mtl_jax.train.checkpoint import Checkpointer, meta_for
from mtl_jax.train.step import make_eval_step, make_gramian_probe, make_train_step


@dataclasses.dataclass
class Setup:
  """Everything static about a run, built from its config."""

  config: Any
  tasks: tuple
  partition: models.Partition
  method: engines.Method
  tx: Any
  input_shape: tuple
  penalty: Any = None   # params -> scalar (soft-sharing penalties) or None


@dataclasses.dataclass
class RunResult:
  state: state_lib.TrainState
  evaluation: dict          # split -> {task: {metric: value}}
  eval_losses: dict         # split -> {task: mean loss}
  steps_per_second: float
  compilations: int         # times the train step was compiled (1 expected)
  workdir: str


def build_method(method_config, *, has_representation: bool) -> engines.Method:
  """Weighting, aggregator and engine from ``config.method``."""
  w = weighting.get(method_config.get("weighting", "equal"),
                    **dict(method_config.get("weighting_kwargs", None) or {}))
  name = method_config.get("aggregation", "none") or "none"
  agg = None if name == "none" else aggregation.get(
      name, **dict(method_config.get("aggregation_kwargs", None) or {}))
  return engines.resolve(w, agg, method_config.get("engine", "auto"),
                         has_representation=has_representation,
                         every=method_config.get("every", 1))


def setup(config) -> Setup:
  """Parses and validates a config into a :class:`Setup`."""
  tasks = tasks_lib.from_config(config.tasks)
  data.validate_tasks(config.data, tasks)
  input_shape = tuple(data.input_shape(config.data))
  options = {k: v for k, v in config.model.to_dict().items() if k != "penalties"}
  model = models.build(tasks, input_shape, seed=int(config.seed), **options)
  part = models.partition(model)
  method = build_method(config.method, has_representation=hasattr(model, "encode"))
  tx = optimizer.build(config.optimizer, int(config.train.num_steps))
  penalty = penalties.build(config.model.get("penalties", None), config.model)
  return Setup(config, tasks, part, method, tx, input_shape, penalty)


@dataclasses.dataclass
class Compiled:
  """The run's mesh, state layout and jitted functions."""

  mesh: Any
  abstract_state: Any       # ShapeDtypeStructs with shardings
  init: Any                 # () -> TrainState, created under jit, placed
  step: Any                 # jitted train step, state donated
  eval_step: Any
  gramian_probe: Any        # jitted, or None when the step logs its own Gramian

  def put(self, batch: dict, global_batch_size: int) -> dict:
    """This process's slice of a batch -> global arrays split over ``data``."""
    return sharding.global_batch(batch, self.mesh, global_batch_size)


def compile_run(s: Setup) -> Compiled:
  """Lays the state out on the mesh (shapes first) and jits the step."""
  mesh = sharding.make_mesh(s.config.get("mesh", None))
  params = models.params_of(s.partition)
  create = lambda: state_lib.create(params, s.partition.rest, s.tx, s.method,
                                    len(s.tasks), int(s.config.seed))
  abstract = jax.eval_shape(create)
  fsdp = bool((s.config.get("mesh", None) or {}).get("fsdp", False))
  state_sharding = sharding.state_sharding(mesh, abstract, fsdp=fsdp)
  abstract = jax.tree.map(
      lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
      abstract, state_sharding)
  dtype = s.config.train.get("compute_dtype", "float32")
  step = make_train_step(s.partition.graphdef, s.tasks, s.method, s.tx, penalty=s.penalty,
                         compute_dtype=dtype,
                         accumulation_steps=s.config.train.get("accumulation_steps", 1))
  return Compiled(
      mesh=mesh, abstract_state=abstract,
      init=jax.jit(create, out_shardings=state_sharding),
      step=jax.jit(step, in_shardings=(state_sharding, sharding.batch_sharding(mesh)),
                   out_shardings=(state_sharding, sharding.replicated(mesh)),
                   donate_argnums=0),
      eval_step=jax.jit(make_eval_step(s.partition.graphdef, s.tasks, compute_dtype=dtype)),
      gramian_probe=_gramian_probe(s))


def _gramian_probe(s: Setup):
  """A probe for the gradient cosines of runs whose step has no Gramian."""
  has_shared = bool(jax.tree.leaves(s.partition.shared))
  wanted = bool(s.config.train.get("log_cosine", True))
  if s.method.engine != "weighted" or not (has_shared and wanted):
    return None
  tc = s.config.train
  return jax.jit(make_gramian_probe(
      s.partition.graphdef, s.tasks, compute_dtype=tc.get("compute_dtype", "float32"),
      accumulation_steps=tc.get("accumulation_steps", 1)))


def _batch_iterator(config, split: str, *, batch_size: int, train: bool):
  if batch_size % jax.process_count():
    raise ValueError(f"batch size {batch_size} is not divisible by the process "
                     f"count {jax.process_count()}.")
  # Ask the pipeline for the configured tasks only (a subset of the dataset's).
  data_config = dict(config.data.to_dict(), tasks=sorted(config.tasks))
  return data.build(
      data_config, split, batch_size=batch_size // jax.process_count(),
      seed=int(config.seed), shuffle=train, drop_remainder=train,
      num_epochs=None if train else 1, process_index=jax.process_index(),
      process_count=jax.process_count())


def evaluate(s: Setup, compiled: Compiled, state, split: str) -> tuple[dict, dict]:
  """Per-task metrics and mean losses of ``state`` on a whole split."""
  total = None
  batch_size = int(s.config.train.get("eval_batch_size", 256))
  for batch in _batch_iterator(s.config, split, batch_size=batch_size, train=False):
    out = compiled.eval_step(state.params, state.rest, compiled.put(batch, batch_size))
    total = out if total is None else jax.tree.map(np.add, total, out)
  total = jax.device_get(total)
  values = metrics_lib.compute_all(s.tasks, total["stats"])
  counts = np.maximum(np.asarray(total["counts"]), 1)
  losses = {t.name: float(total["loss_sum"][i] / counts[i]) for i, t in enumerate(s.tasks)}
  return values, losses


class NonFiniteHalt(RuntimeError):
  """Raised after ``train.max_nonfinite`` consecutive non-finite updates."""


def train(config, *, workdir: Optional[str] = None, resume: bool = False,
          progress: Optional[bool] = None,
          eval_splits: tuple[str, ...] = ("test",)) -> RunResult:
  """Trains ``config`` and evaluates the final state on ``eval_splits``.

  Args:
    config: a ConfigDict as returned by a ``configs/*.py`` ``get_config``.
    workdir: run directory (metrics, checkpoints); default ``config.workdir``.
    resume: continue from the latest checkpoint in ``workdir`` if any.
    progress: show a progress bar (default: only on a terminal).
    eval_splits: splits evaluated at the end (and every ``train.eval_every``
      steps on ``validation``).
  """
  validate.check_config(config)  # every config error before compiling
  workdir = workdir or config.workdir
  s = setup(config)
  tc = config.train
  num_steps = int(tc.num_steps)
  compiled = compile_run(s)
  state = compiled.init()
  train_iter = _batch_iterator(config, "train", batch_size=int(tc.batch_size), train=True)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"),
                      every=int(tc.get("checkpoint_every", 0)),
                      max_to_keep=int(tc.get("max_to_keep", 3)))
  meta = meta_for(s.tasks, config)
  writer = logger.make_writer(workdir, enabled=jax.process_index() == 0,
                              tensorboard=bool(tc.get("tensorboard", True)),
                              resumed_from=ckpt.latest_step() if resume else None)
  if resume and ckpt.latest_step() is not None:
    state, data_state, start = ckpt.restore(compiled.abstract_state, meta)
    train_iter.set_state(data_state)
    logger.truncate_after(writer.path, start)
  try:  # the writer is closed (TensorBoard events flushed) also on errors
    _write_config(workdir, config)
    stop = signals.StopSignal().install()  # SIGTERM: save, then raise Preempted
    try:
      state, steps_per_second = _run(s, compiled, state, train_iter, ckpt, meta,
                                     writer, progress, stop)
      ckpt.save(num_steps, state, train_iter.get_state(), meta, force=True)
    finally:
      stop.restore()
      ckpt.close()  # waits for pending asynchronous saves, also on errors
    evaluation, eval_losses = {}, {}
    for split in eval_splits:
      evaluation[split], eval_losses[split] = evaluate(s, compiled, state, split)
      writer.write(num_steps, logger.record_split(split),
                   logger.flatten_eval(evaluation[split], eval_losses[split]))
  finally:
    writer.close()
  return RunResult(state, evaluation, eval_losses, steps_per_second,
                   compiled.step._cache_size(), workdir)


def _write_config(workdir: str, config) -> None:
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))


def _run(s, compiled, state, train_iter, ckpt, meta, writer, progress, stop=None):
  """The step loop; returns the final state and steps/s after compilation."""
  tc = s.config.train
  num_steps, log_every = int(tc.num_steps), max(int(tc.get("log_every", 50)), 1)
  batch_size = int(tc.batch_size)
  eval_every = int(tc.get("eval_every", 0))
  halt_after = int(tc.get("max_nonfinite", 0)) if tc.get("nonfinite", "skip") == "halt" else 0
  start = int(state.step)
  bar = tqdm(total=num_steps, initial=start, disable=(None if progress is None else not progress),
             desc=s.config.get("name", "train"), unit="step", dynamic_ncols=True)
  t0, timed_from = time.perf_counter(), start
  empty = validate.EmptyBatchGuard(int(tc.get("max_empty_batches", 100)),
                                   [t.name for t in s.tasks])
  for step in range(start + 1, num_steps + 1):
    batch = compiled.put(next(train_iter), batch_size)
    state, metrics = compiled.step(state, batch)
    empty.observe(step, metrics["counts"])  # checked a step later: no device wait
    if step == start + 1:  # exclude compilation from the throughput
      jax.block_until_ready(state)
      t0, timed_from = time.perf_counter(), step
    if step % log_every == 0 or step == num_steps:
      if compiled.gramian_probe is not None:  # cosines at the updated params
        metrics = dict(metrics, gramian=compiled.gramian_probe(state.params, state.rest, batch))
      record = logger.flatten_train(s.tasks, jax.device_get(metrics))
      writer.write(step, "train", record)
      bar.set_postfix({t.name: f"{record[f'loss/{t.name}']:.3g}"
                       if isinstance(record[f"loss/{t.name}"], float) else "nan"
                       for t in s.tasks}, refresh=False)
    if halt_after and int(state.nonfinite_streak) >= halt_after:
      ckpt.save(step, state, train_iter.get_state(), meta, force=True)
      raise NonFiniteHalt(
          f"Halting at step {step}: {halt_after} consecutive updates had non-finite "
          f"losses or gradients (see {writer.path}); the state before them is "
          f"saved as checkpoint step {step} in {ckpt.directory}.")
    if ckpt.should_save(step):
      ckpt.save(step, state, train_iter.get_state(), meta)
    if stop is not None and stop.requested(step):
      ckpt.save(step, state, train_iter.get_state(), meta, force=True)
      raise signals.Preempted(step, ckpt.directory, stop.signal_name)
    if eval_every and step % eval_every == 0 and step < num_steps:
      values, losses = evaluate(s, compiled, state, "validation")
      writer.write(step, "validation", logger.flatten_eval(values, losses))
    bar.update(1)
  jax.block_until_ready(state)
  bar.close()
  timed = num_steps - timed_from
  elapsed = time.perf_counter() - t0
  return state, (timed / elapsed if timed > 0 and elapsed > 0 else float("nan"))
