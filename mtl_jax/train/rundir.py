"""Run directories: one run at a time, never mixed, never overwritten silently.

A run directory holds one run: ``config.json`` (the config it started with,
never rewritten), ``config_history.jsonl`` (the safe changes of each resume),
``metrics.jsonl``, ``checkpoints/`` and TensorBoard event files.

* :class:`Lock`: ``<dir>/run.lock`` (JSON: host, pid) is created atomically
  (``O_EXCL``) by the run and removed when it ends. A second run refuses,
  naming the holder; a lock whose pid is dead on this host is stale and taken
  over with a warning.
* :func:`check`: a directory that already holds a run (finished or not)
  refuses a new one unless it resumes or ``overwrite`` is given;
  :func:`clear` then removes the old run's files (and only those).
* :func:`new_run_dir` / :func:`link_latest` / :func:`latest`: the CLI's default run directory is
  ``<config.workdir>/<YYYYmmdd-HHMMSS>`` with a ``latest`` link next to it, so
  running the same command twice never mixes two runs' records; ``eval``,
  ``report`` and ``--resume`` without ``--workdir`` use ``latest``.
* :func:`config_changes`: what a resume changes in the config; changes outside
  :data:`SAFE_KEYS` (model, tasks, data, optimizer, method, seed, ...) refuse.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import warnings
from typing import Optional

LOCK = "run.lock"
LATEST = "latest"
CONFIG = "config.json"
HISTORY = "config_history.jsonl"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
_EVENTS_PREFIX = "events.out.tfevents."

# Config keys a resume may change: they change how long the run goes on, what
# it logs, when it evaluates or saves, where the data lives and how the state
# is laid out on devices (a resume may reshard), never what a step computes.
SAFE_KEYS = ("name", "workdir", "compare_methods", "benchmark", "mesh", "distributed",
             "data.data_dir", "train.num_steps",
             "train.log_every", "train.eval_every", "train.eval_batch_size",
             "train.checkpoint_every", "train.max_to_keep", "train.tensorboard",
             "train.log_cosine", "train.nonfinite", "train.max_nonfinite",
             "train.max_empty_batches")


class RunDirError(RuntimeError):
  """The run directory cannot be used as asked (one line, for the CLI)."""


# -- what a directory holds ----------------------------------------------------

def _run_files(workdir: str) -> list[str]:
  """Names of the run files in ``workdir`` (the lock excluded)."""
  if not os.path.isdir(workdir):
    return []
  names = []
  for name in sorted(os.listdir(workdir)):
    if name in (CONFIG, HISTORY, METRICS) or name.startswith(_EVENTS_PREFIX):
      names.append(name)
    elif name == CHECKPOINTS and os.listdir(os.path.join(workdir, name)):
      names.append(name)
  return names


def holds_run(workdir: str) -> bool:
  return bool(_run_files(workdir))


def _writable(workdir: str) -> Optional[str]:
  """The first existing directory on the way to ``workdir`` if not writable."""
  path = os.path.abspath(workdir)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    return f"{path} is not a directory"
  if not os.access(path, os.W_OK | os.X_OK):
    return f"{path} is not writable"
  return None


def check(workdir: str, *, resume: bool, overwrite: bool) -> None:
  """Refuses (:class:`RunDirError`) before anything is written if the run
  cannot start in ``workdir``: a live lock, a directory that holds a run
  (unless ``resume`` or ``overwrite``), a path that is not writable."""
  if resume and overwrite:
    raise RunDirError("--resume and --overwrite exclude each other.")
  problem = _writable(workdir)
  if problem:
    raise RunDirError(f"Cannot write the run directory {workdir}: {problem}.")
  holder = _live_holder(workdir)
  if holder:
    raise RunDirError(_held_message(workdir, holder))
  if not resume and not overwrite and holds_run(workdir):
    raise RunDirError(
        f"{workdir} already holds a run ({', '.join(_run_files(workdir))}); pass "
        "--resume to continue it, --overwrite to replace it, or another --workdir.")


def clear(workdir: str) -> list[str]:
  """Removes the old run's files (``--overwrite``); returns their names."""
  removed = _run_files(workdir)
  for name in removed:
    path = os.path.join(workdir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    else:
      os.remove(path)
  if removed:
    warnings.warn(f"--overwrite: removed the previous run's {', '.join(removed)} "
                  f"from {workdir}.", RuntimeWarning, stacklevel=2)
  return removed


# -- the lock ------------------------------------------------------------------

def _read_lock(path: str) -> Optional[dict]:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):  # torn: its writer died between create and write
    return {"host": socket.gethostname(), "pid": -1}


def _pid_alive(pid: int) -> bool:
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # alive, another user's
    return True
  return True


def _is_stale(holder: dict) -> bool:
  return holder.get("host") == socket.gethostname() and not _pid_alive(
      int(holder.get("pid", -1)))


def _live_holder(workdir: str) -> Optional[dict]:
  holder = _read_lock(os.path.join(workdir, LOCK))
  if holder is None or _is_stale(holder):
    return None
  return holder


def _held_message(workdir: str, holder: dict) -> str:
  return (f"{workdir} is in use by another run (host {holder.get('host')}, pid "
          f"{holder.get('pid')}, lock {os.path.join(workdir, LOCK)}); wait for it "
          "to end or use another --workdir.")


class Lock:
  """``<workdir>/run.lock`` for the duration of a run (a context manager)."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.path = os.path.join(workdir, LOCK)
    self.workdir = workdir
    self.enabled = enabled
    self._held = False

  def acquire(self) -> "Lock":
    if not self.enabled:
      return self
    os.makedirs(self.workdir, exist_ok=True)
    me = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = _read_lock(self.path) or {}
        if not _is_stale(holder):
          raise RunDirError(_held_message(self.workdir, holder)) from None
        warnings.warn(f"Taking over the stale lock {self.path} of pid "
                      f"{holder.get('pid')} (no longer running on this host).",
                      RuntimeWarning, stacklevel=2)
        os.remove(self.path)
        continue
      with os.fdopen(fd, "w") as f:
        f.write(me)
      self._held = True
      return self
    raise RunDirError(f"Could not take the lock {self.path}.")

  def release(self) -> None:
    if self._held:
      self._held = False
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass

  def __enter__(self) -> "Lock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


# -- default run directories -----------------------------------------------------

def new_run_dir(base: str, now: Optional[datetime.datetime] = None) -> str:
  """An unused ``<base>/<YYYYmmdd-HHMMSS>[-n]`` (not created: the run creates
  it and calls :func:`link_latest` once it holds the lock, so a command that
  fails before never leaves an empty directory that ``latest`` points to)."""
  stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
  for n in range(1000):
    path = os.path.join(base, stamp if n == 0 else f"{stamp}-{n}")
    if not os.path.lexists(path):
      return path
  raise RunDirError(f"No free run directory name under {base} for {stamp}.")


def link_latest(workdir: str) -> None:
  """Points ``<parent>/latest`` at ``workdir`` (atomically: link, rename)."""
  base, name = os.path.split(os.path.abspath(workdir))
  link = os.path.join(base, LATEST)
  tmp = f"{link}.tmp{os.getpid()}"
  os.symlink(name, tmp)
  os.replace(tmp, link)


def latest(base: str) -> str:
  """``<base>/latest`` if it exists, else ``base`` (a run directory of the
  flat layout of earlier versions, or one given by ``--workdir``)."""
  link = os.path.join(base, LATEST)
  return link if os.path.exists(link) else base


# -- config changes on resume ------------------------------------------------------

def _flatten(tree, prefix: str = "") -> dict:
  if isinstance(tree, dict):
    out = {}
    for key, value in tree.items():
      out.update(_flatten(value, f"{prefix}{key}."))
    return out
  return {prefix[:-1]: tree}


ABSENT = "(absent)"


def _absent_prefix(key: str, other: dict) -> str:
  """The shortest prefix of ``key`` that ``other`` (flat) has no key under."""
  parts = key.split(".")
  for i in range(1, len(parts) + 1):
    prefix = ".".join(parts[:i])
    if not any(k == prefix or k.startswith(prefix + ".") for k in other):
      return prefix
  return key


def config_changes(saved: dict, current: dict) -> dict:
  """``{key: (saved, current)}`` of the leaves that differ; a section present
  on one side only is one entry (``tasks.r: {...} -> '(absent)'``)."""
  a, b = _flatten(saved), _flatten(current)
  changes = {}
  for k in sorted(set(a) | set(b)):
    if k in a and k in b:
      if a[k] != b[k]:
        changes[k] = (a[k], b[k])
    elif k in a:
      changes.setdefault(_absent_prefix(k, b), ("(present)", ABSENT))
    else:
      changes.setdefault(_absent_prefix(k, a), (ABSENT, "(present)"))
  return changes


def _is_safe(key: str) -> bool:
  return any(key == s or key.startswith(s + ".") for s in SAFE_KEYS)


def check_resume_config(workdir: str, config_json: str) -> dict:
  """The safe changes of a resume; raises :class:`RunDirError` naming the
  unsafe keys (``key: saved -> new``) if any. No saved config: no changes."""
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError) as e:
    raise RunDirError(f"Cannot read the saved config {path}: {e}.") from None
  changes = config_changes(saved, json.loads(config_json))
  unsafe = {k: v for k, v in changes.items() if not _is_safe(k)}
  if unsafe:
    shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in unsafe.items())
    raise RunDirError(
        f"Cannot resume {workdir} with a different config ({shown}); only "
        f"{', '.join(SAFE_KEYS)} may change. Start a new run directory instead.")
  schedule = (saved.get("optimizer") or {}).get("schedule")
  if "train.num_steps" in changes and schedule in ("cosine", "warmup_cosine"):
    warnings.warn(f"Resuming {workdir} with train.num_steps "
                  f"{changes['train.num_steps'][0]} -> {changes['train.num_steps'][1]}: "
                  f"the {schedule} learning-rate schedule is stretched to the new "
                  "length from the restored step on.", RuntimeWarning, stacklevel=2)
  return changes


def record_history(workdir: str, changes: dict, resumed_from: Optional[int]) -> None:
  """Appends one line to ``config_history.jsonl`` for a resume."""
  entry = {"time": datetime.datetime.now().isoformat(timespec="seconds"),
           "resumed_from_step": resumed_from,
           "changes": {k: [a, b] for k, (a, b) in changes.items()}}
  with open(os.path.join(workdir, HISTORY), "a") as f:
    f.write(json.dumps(entry) + "\n")


def write_config(workdir: str, config_json: str) -> None:
  """Writes ``config.json`` once (a resume never rewrites it)."""
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    with open(path, "w") as f:
      f.write(config_json)
