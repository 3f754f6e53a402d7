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

from mtl_jax import data, models, penalties, settings as settings_lib
from mtl_jax.losses import metrics as metrics_lib
from mtl_jax.settings import Settings
from mtl_jax.train import engines, logger, optimizer, sharding, state as state_lib
from mtl_jax.train import rundir, signals, validate
from mtl_jax.train.checkpoint import Checkpointer, meta_for
from mtl_jax.train.step import make_eval_step, make_gramian_probe, make_train_step


@dataclasses.dataclass
class Setup:
  """Everything static about a run, built from its settings."""

  settings: Settings
  partition: models.Partition
  method: engines.Method
  tx: Any
  penalty: Any = None   # params -> scalar (soft-sharing penalties) or None

  @property
  def tasks(self) -> tuple:
    return self.settings.tasks

  @property
  def input_shape(self) -> tuple:
    return self.settings.input_shape


@dataclasses.dataclass
class RunResult:
  state: state_lib.TrainState
  evaluation: dict          # split -> {task: {metric: value}}
  eval_losses: dict         # split -> {task: mean loss}
  steps_per_second: float
  compilations: int         # times the train step was compiled (1 expected)
  workdir: str
  skipped: int = 0          # updates skipped as non-finite over the whole run


def setup(config) -> Setup:
  """The model, method, optimizer and penalty of a run.

  Args:
    config: :class:`~mtl_jax.settings.Settings`, or a ConfigDict to parse
      (raises :class:`~mtl_jax.settings.ConfigError`).
  """
  s = settings_lib.parse(config)
  model = s.model.build(s.tasks, s.input_shape, seed=s.seed)
  part = models.partition(model)
  method = s.method.build(has_representation=hasattr(model, "encode"))
  tx = optimizer.build(dataclasses.asdict(s.optimizer), s.train.num_steps)
  penalty = penalties.build(s.model.penalties, s.model.options)
  return Setup(s, part, method, tx, penalty)


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
  mesh_settings, train = s.settings.mesh, s.settings.train
  mesh = sharding.make_mesh(mesh_settings.num_devices)
  create = lambda: state_lib.init_state(s.partition, s.tx, s.method, seed=s.settings.seed)
  abstract = jax.eval_shape(create)
  state_sharding = sharding.state_sharding(mesh, abstract, fsdp=mesh_settings.fsdp)
  abstract = jax.tree.map(
      lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
      abstract, state_sharding)
  step = make_train_step(s.partition.graphdef, s.tasks, s.method, s.tx, penalty=s.penalty,
                         compute_dtype=train.compute_dtype,
                         accumulation_steps=train.accumulation_steps)
  return Compiled(
      mesh=mesh, abstract_state=abstract,
      init=jax.jit(create, out_shardings=state_sharding),
      step=jax.jit(step, in_shardings=(state_sharding, sharding.batch_sharding(mesh)),
                   out_shardings=(state_sharding, sharding.replicated(mesh)),
                   donate_argnums=0),
      eval_step=jax.jit(make_eval_step(s.partition.graphdef, s.tasks,
                                       compute_dtype=train.compute_dtype)),
      gramian_probe=_gramian_probe(s))


def _gramian_probe(s: Setup):
  """A probe for the gradient cosines of runs whose step has no Gramian."""
  has_shared = bool(jax.tree.leaves(s.partition.shared))
  train = s.settings.train
  if s.method.engine != "weighted" or not (has_shared and train.log_cosine):
    return None
  return jax.jit(make_gramian_probe(
      s.partition.graphdef, s.tasks, compute_dtype=train.compute_dtype,
      accumulation_steps=train.accumulation_steps))


def _batch_iterator(s: Settings, split: str, *, batch_size: int, train: bool):
  if batch_size % jax.process_count():
    raise ValueError(f"batch size {batch_size} is not divisible by the process "
                     f"count {jax.process_count()}.")
  # Ask the pipeline for the configured tasks only (a subset of the dataset's).
  data_config = dict(s.data, tasks=sorted(s.task_names))
  return data.build(
      data_config, split, batch_size=batch_size // jax.process_count(),
      seed=s.seed, shuffle=train, drop_remainder=train,
      num_epochs=None if train else 1, process_index=jax.process_index(),
      process_count=jax.process_count())


def _widen(x) -> np.ndarray:
  """A batch's statistic as int64 / float64, so split totals (pixel counts,
  confusion matrices, error sums over millions of pixels) stay exact."""
  x = np.asarray(x)
  return x.astype(np.int64 if np.issubdtype(x.dtype, np.integer) else np.float64)


def evaluate(s: Setup, compiled: Compiled, state, split: str) -> tuple[dict, dict]:
  """Per-task metrics and mean losses of ``state`` on a whole split."""
  total = None
  batch_size = s.settings.train.eval_batch_size
  for batch in _batch_iterator(s.settings, split, batch_size=batch_size, train=False):
    out = jax.tree.map(_widen, jax.device_get(
        compiled.eval_step(state.params, state.rest, compiled.put(batch, batch_size))))
    total = out if total is None else jax.tree.map(np.add, total, out)
  values = metrics_lib.compute_all(s.tasks, total["stats"])
  counts = np.maximum(np.asarray(total["counts"]), 1)
  losses = {t.name: float(total["loss_sum"][i] / counts[i]) for i, t in enumerate(s.tasks)}
  return values, losses


class NonFiniteHalt(RuntimeError):
  """Raised after ``train.max_nonfinite`` consecutive non-finite updates
  (``nonfinite='halt'``), or once the skipped updates of a ``'skip'`` run pass
  :func:`skip_limit`."""


def skip_limit(tc) -> int:
  """Skipped updates a ``nonfinite='skip'`` run tolerates before it halts.

  10 % of ``train.num_steps`` (rounded up, at least 1): a run that skips more
  has diverged, and its final metrics would silently describe a broken model.
  ``train.max_skipped`` (a count; 0 for the default) overrides it.
  ``train.max_nonfinite`` keeps its meaning, the consecutive non-finite
  updates of a ``'halt'`` run.
  """
  return tc.max_skipped if tc.max_skipped > 0 else max(1, -(-tc.num_steps // 10))


def train(config, *, workdir: Optional[str] = None, resume: bool = False,
          progress: Optional[bool] = None, eval_splits: tuple[str, ...] = ("test",),
          overwrite: bool = False, link_latest: bool = False) -> RunResult:
  """Trains a run and evaluates the final state on ``eval_splits``.

  Args:
    config: a ConfigDict as returned by a ``configs/*.py`` ``get_config``
      (parsed and checked first: every config error before compiling), or
      :class:`~mtl_jax.settings.Settings` already parsed.
    workdir: run directory (metrics, checkpoints); default ``config.workdir``.
      It is locked for the run (:mod:`~mtl_jax.train.rundir`).
    resume: continue from the latest checkpoint in ``workdir`` if any. The
      config may differ from the saved one only in
      :data:`~mtl_jax.train.rundir.SAFE_KEYS` (recorded in
      ``config_history.jsonl``).
    progress: show a progress bar (default: only on a terminal).
    eval_splits: splits evaluated at the end (and every ``train.eval_every``
      steps on ``validation``).
    overwrite: replace the run ``workdir`` holds (default: refuse).
    link_latest: point ``<parent of workdir>/latest`` at ``workdir`` once
      the run holds its lock (the CLI's default run directories).

  Raises:
    rundir.RunDirError: the directory is locked, holds a run (without
      ``resume`` or ``overwrite``), is not writable, or a resume changes an
      unsafe config key or finds metrics but no checkpoint.
  """
  settings = validate.check_config(config)
  workdir = workdir or settings.workdir
  primary = jax.process_index() == 0
  config_json = settings.config.to_json_best_effort(indent=2)
  if primary:
    rundir.check(workdir, resume=resume, overwrite=overwrite)
  changes = rundir.check_resume_config(workdir, config_json) if resume else {}
  s = setup(settings)
  compiled = compile_run(s)
  with rundir.Lock(workdir, enabled=primary):
    if overwrite and primary:
      rundir.clear(workdir)
    if link_latest and primary:
      rundir.link_latest(workdir)
    return _train_locked(s, compiled, workdir, resume, progress, eval_splits,
                         config_json, changes)


def _restore(s, compiled, ckpt, meta, workdir, train_iter):
  """The restored ``(state, start)`` of a resume; refuses a resume that finds
  metrics but no checkpoint (it would restart and duplicate them)."""
  metrics_path = os.path.join(workdir, rundir.METRICS)
  logged = logger.last_step(metrics_path) if jax.process_index() == 0 else None
  if ckpt.latest_step() is None:
    if logged:
      raise rundir.RunDirError(
          f"Cannot resume {workdir}: {metrics_path} has records up to step {logged} "
          f"but {ckpt.directory} has no sealed checkpoint; use --overwrite to start "
          "again.")
    return compiled.init(), 0
  state, data_state, start = ckpt.restore(compiled.abstract_state, meta)
  train_iter.set_state(data_state)
  if jax.process_index() == 0:
    logger.truncate_after(metrics_path, start)
  return state, start


def _train_locked(s, compiled, workdir, resume, progress, eval_splits, config_json,
                  changes) -> RunResult:
  settings = s.settings
  num_steps = settings.train.num_steps
  train_iter = _batch_iterator(settings, "train", batch_size=settings.train.batch_size,
                               train=True)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"),
                      every=settings.train.checkpoint_every,
                      max_to_keep=settings.train.max_to_keep)
  meta = meta_for(s.tasks, settings.config)
  try:
    if resume:
      state, start = _restore(s, compiled, ckpt, meta, workdir, train_iter)
    else:
      state, start = compiled.init(), 0
  except BaseException:
    ckpt.close()
    raise
  primary = jax.process_index() == 0
  writer = logger.make_writer(workdir, enabled=primary,
                              tensorboard=settings.train.tensorboard,
                              resumed_from=start if resume else None)
  try:  # the writer is closed (TensorBoard events flushed) also on errors
    if primary:
      rundir.write_config(workdir, config_json)
      if resume:
        rundir.record_history(workdir, changes, start)
    stop = signals.StopSignal().install()  # SIGTERM/SIGINT: save, raise Preempted
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
                   compiled.step._cache_size(), workdir,
                   skipped=int(state.nonfinite_total))


def _run(s, compiled, state, train_iter, ckpt, meta, writer, progress, stop=None):
  """The step loop; returns the final state and steps/s after compilation."""
  tc = s.settings.train
  num_steps, log_every, batch_size = tc.num_steps, tc.log_every, tc.batch_size
  halt_after = tc.max_nonfinite if tc.nonfinite == "halt" else 0
  skip_after = skip_limit(tc) if tc.nonfinite == "skip" else 0
  start = int(state.step)
  bar = tqdm(total=num_steps, initial=start, disable=(None if progress is None else not progress),
             desc=s.settings.name, unit="step", dynamic_ncols=True)
  t0, timed_from = time.perf_counter(), start
  empty = validate.EmptyBatchGuard(tc.max_empty_batches, s.settings.task_names)
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
    if skip_after and int(state.nonfinite_total) > skip_after:
      ckpt.save(step, state, train_iter.get_state(), meta, force=True)
      raise NonFiniteHalt(
          f"Halting at step {step}: {int(state.nonfinite_total)} updates had "
          f"non-finite losses or gradients and were skipped, more than the limit "
          f"{skip_after} (10% of train.num_steps; see "
          f"{writer.path}); the state is saved as checkpoint step {step} in "
          f"{ckpt.directory}.")
    if ckpt.should_save(step):
      ckpt.save(step, state, train_iter.get_state(), meta)
    if stop is not None and stop.requested(step):
      ckpt.save(step, state, train_iter.get_state(), meta, force=True)
      raise signals.Preempted(step, ckpt.directory, stop.signal_name)
    if tc.eval_every and step % tc.eval_every == 0 and step < num_steps:
      values, losses = evaluate(s, compiled, state, "validation")
      writer.write(step, "validation", logger.flatten_eval(values, losses))
    bar.update(1)
  jax.block_until_ready(state)
  bar.close()
  timed = num_steps - timed_from
  elapsed = time.perf_counter() - t0
  return state, (timed / elapsed if timed > 0 and elapsed > 0 else float("nan"))
