"""The ``mtl-jax`` command.

  mtl-jax train   --config configs/sprites.py [--config.train.num_steps=500 ...]
                  [--workdir DIR] [--resume | --overwrite]
  mtl-jax compare --config configs/sprites.py [--methods equal,mgda,pcgrad]
  mtl-jax eval    --config configs/sprites.py [--workdir DIR] [--split test]
  mtl-jax report  RUN_DIR [RUN_DIR ...] [--out DIR] [--split test]

Configs are Python files with ``get_config(arg)``; ``--config=path:arg``
passes ``arg``; ``--config.a.b=value`` overrides a field (unknown fields are
an error with a suggestion).

Every command answers ``--help`` with its own flags (exit 0).

Run directories (:mod:`mtl_jax.train.rundir`): without ``--workdir``,
``train`` and ``compare`` write a new ``<config.workdir>/<YYYYmmdd-HHMMSS>``
and point ``<config.workdir>/latest`` at it; ``train --resume`` and ``eval``
use ``latest``. A run directory is locked while a run uses it, and one that
holds a run refuses a new one unless ``--resume`` or ``--overwrite``.

Exit codes: 0 done; 2 a user error, one line on stderr and no file changed:
bad arguments, a missing config file or one with a syntax error (file and
line), a config that fails ``settings.parse`` (the key and value), a catalog
dataset not prepared under ``data_dir`` (the message says how to prepare it),
a run directory that is locked, holds a run, is not writable or has no
checkpoint (``eval``), a resume whose config changes an unsafe key;
any other ``ValueError`` of the library (bad input named in its first line;
``MTL_JAX_DEBUG=1`` shows the traceback instead); 3 halted on non-finite updates (``train.nonfinite='halt'``, or a ``'skip'``
run that skipped too many; the last state is checkpointed); 143 / 130 stopped
by SIGTERM / SIGINT after saving a checkpoint (rerun with ``--resume``).
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags
from ml_collections import config_flags

USAGE = """usage: mtl-jax COMMAND [flags]   (mtl-jax COMMAND --help: the command's flags)

commands:
  train    train one run of a config
  compare  single-task baselines vs. multi-task methods, one table with Delta_m
  eval     evaluate a run's latest checkpoint on a split
  report   a markdown report with figures of one or more run directories"""


def _config_flags(fv: flags.FlagValues, argv) -> None:
  config_flags.DEFINE_config_file(
      "config", None, "Path to a config file (configs/*.py); --config=path:arg passes "
      "arg to get_config; --config.a.b=value overrides a field.",
      flag_values=fv, lock_config=True, sys_argv=argv)


def _common_flags(fv: flags.FlagValues, *, workdir: str | None, split: bool = True,
                  progress: bool = True) -> None:
  if workdir:
    flags.DEFINE_string("workdir", None, workdir, flag_values=fv)
  if split:
    flags.DEFINE_string("split", "test", "Split to evaluate.", flag_values=fv)
  if progress:
    flags.DEFINE_bool("progress", None, "Force the progress bar on or off (default: "
                      "on a terminal only).", flag_values=fv)


def _train_flags(fv, argv):
  _config_flags(fv, argv)
  _common_flags(fv, workdir="Run directory (default: a new "
                "<config.workdir>/<YYYYmmdd-HHMMSS>, linked as <config.workdir>/latest).",
                split=False)
  flags.DEFINE_bool("resume", False, "Resume from the latest checkpoint (default "
                    "run directory: <config.workdir>/latest).", flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace the run the run directory holds "
                    "(its files are removed).", flag_values=fv)


def _compare_flags(fv, argv):
  _config_flags(fv, argv)
  _common_flags(fv, workdir="Directory of the runs and the table (default: a new "
                "<config.workdir>/<YYYYmmdd-HHMMSS>, linked as <config.workdir>/latest).")
  flags.DEFINE_list("methods", None, "Methods to run (weighting or aggregation names, "
                    "or 'config'; default: config.compare_methods).", flag_values=fv)


def _eval_flags(fv, argv):
  _config_flags(fv, argv)
  _common_flags(fv, workdir="Run directory holding the checkpoints (default: "
                "<config.workdir>/latest).", progress=False)


def _report_flags(fv, argv):
  del argv
  flags.DEFINE_string("out", None, "Output directory (default: the first run "
                      "directory).", flag_values=fv)
  _common_flags(fv, workdir=None)


def _print_eval(values: dict, losses: dict) -> None:
  for task, metrics in values.items():
    shown = ", ".join(f"{m}={v:.4f}" for m, v in metrics.items())
    print(f"  {task}: {shown}, loss={losses[task]:.4f}")


def _workdir(settings, fv, *, new: bool) -> str:
  """``--workdir``, else a new timestamped run directory (``new``) or the
  ``latest`` one under ``config.workdir``."""
  from mtl_jax.train import rundir
  if fv.workdir:
    return fv.workdir
  return rundir.new_run_dir(settings.workdir) if new else rundir.latest(settings.workdir)


def _train(settings, fv) -> int:
  from mtl_jax.train import loop, rundir
  if fv.resume and fv.overwrite:
    raise rundir.RunDirError("--resume and --overwrite exclude each other.")
  workdir = _workdir(settings, fv, new=not fv.resume)
  try:
    result = loop.train(settings, workdir=workdir, resume=fv.resume,
                        progress=fv.progress, overwrite=fv.overwrite,
                        link_latest=not fv.workdir and not fv.resume)
  except loop.NonFiniteHalt as e:  # exit 3: the run diverged (checkpoint saved)
    print(f"mtl-jax train: {e}", file=sys.stderr)
    return 3
  print(f"Trained {int(result.state.step)} steps ({result.steps_per_second:.1f} steps/s, "
        f"{result.skipped} updates skipped as non-finite); run directory: "
        f"{result.workdir}")
  for split, values in result.evaluation.items():
    print(f"{split}:")
    _print_eval(values, result.eval_losses[split])


def _compare(settings, fv) -> None:
  from mtl_jax.train import compare, rundir
  for name in fv.methods or []:  # before any directory is created
    if name != "config":
      compare.method_overrides(name)
  workdir = _workdir(settings, fv, new=True)
  try:
    summary = compare.compare(settings, fv.methods, workdir=workdir,
                              progress=fv.progress, split=fv.split)
  finally:
    if not fv.workdir and os.path.isdir(workdir):
      rundir.link_latest(workdir)
  print(f"\nPer-task {summary['split']} metrics; Delta_m% vs. single-task "
        "baselines (lower is better):\n")
  print(summary["table"])


def _eval(settings, fv) -> None:
  from mtl_jax.train import loop
  from mtl_jax.train.checkpoint import Checkpointer, meta_for
  from mtl_jax.train import rundir
  workdir = _workdir(settings, fv, new=False)
  checkpoints = os.path.join(workdir, rundir.CHECKPOINTS)
  if not os.path.isdir(checkpoints) or not os.listdir(checkpoints):
    what = "does not exist" if not os.path.isdir(workdir) else "has no checkpoints"
    raise rundir.RunDirError(f"Cannot evaluate {workdir}: the run directory {what}.")
  s = loop.setup(settings)
  compiled = loop.compile_run(s)
  ckpt = Checkpointer(checkpoints, every=0)
  state, _, step = ckpt.restore(compiled.abstract_state,
                                meta_for(s.tasks, settings.config))
  ckpt.close()
  values, losses = loop.evaluate(s, compiled, state, fv.split)
  print(f"step {step}, {fv.split}:")
  _print_eval(values, losses)
  print(json.dumps(values))


def _report(run_dirs, fv) -> int:
  from mtl_jax import report
  if not run_dirs:
    print(f"mtl-jax report: give one or more run directories.\n\n{_help('report')}",
          file=sys.stderr)
    return 2
  from mtl_jax.train import rundir
  run_dirs = [d if os.path.exists(os.path.join(d, rundir.METRICS))
              or os.path.exists(os.path.join(d, "compare.json")) else rundir.latest(d)
              for d in run_dirs]  # runs/<name> -> runs/<name>/latest
  try:
    path = report.render(run_dirs, fv.out, split=fv.split, progress=fv.progress)
  except FileNotFoundError as e:
    print(e, file=sys.stderr)
    return 2
  except ValueError as e:  # a broken metrics line: the message names file and line
    print(f"mtl-jax report: {e}", file=sys.stderr)
    return 2
  print(f"Report: {path}")
  return 0


COMMANDS = {
    "train": (_train_flags, _train),
    "compare": (_compare_flags, _compare),
    "eval": (_eval_flags, _eval),
    "report": (_report_flags, None),
}
_COMMAND_USAGE = {
    "train": "mtl-jax train --config PATH[:ARG] [--config.a.b=VALUE ...] [--workdir DIR] "
             "[--resume] [--progress]",
    "compare": "mtl-jax compare --config PATH[:ARG] [--methods equal,mgda,...] "
               "[--workdir DIR] [--split test]",
    "eval": "mtl-jax eval --config PATH[:ARG] [--workdir DIR] [--split test]",
    "report": "mtl-jax report RUN_DIR [RUN_DIR ...] [--out DIR] [--split test]",
}


def _define_flags(command: str, argv) -> flags.FlagValues:
  """The command's flags on a fresh ``FlagValues``: each ``main`` call parses
  its own, so calls in one process (tests, notebooks) never collide on the
  ``--config.*`` override flags that parsing defines."""
  fv = flags.FlagValues()
  COMMANDS[command][0](fv, argv)
  return fv


def _help(command: str) -> str:
  fv = _define_flags(command, [])
  shown = fv.get_help(include_special_flags=False).replace(
      "mtl_jax.cli:\n", "").rstrip()
  return f"usage: {_COMMAND_USAGE[command]}\n\nflags:\n{shown}"


def _wants_help(argv) -> bool:
  return any(a in ("--help", "-h", "--helpfull", "-?") for a in argv)


def main(argv=None) -> int:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) >= 2 and argv[1] in ("--help", "-h", "help"):
    print(USAGE)
    return 0
  if len(argv) < 2 or argv[1] not in COMMANDS:
    print(USAGE, file=sys.stderr)
    return 2
  command = argv.pop(1)
  if _wants_help(argv[1:]):
    print(_help(command))
    return 0
  try:
    fv = _define_flags(command, argv)
    rest = fv(argv)
    if command != "report":
      _raise_load_error(fv.config)  # config file errors are argument errors
  except (flags.Error, KeyError, AttributeError, ValueError, TypeError, OSError,
          SyntaxError) as e:
    print(f"mtl-jax {command}: {_argument_error(e, argv)}", file=sys.stderr)
    return 2
  try:
    return _main(command, fv, rest)
  except KeyboardInterrupt:  # Ctrl-C outside the step loop (which saves first)
    print(f"mtl-jax {command}: interrupted (SIGINT).", file=sys.stderr)
    return 130


def _raise_load_error(config) -> None:
  """Raises the error that kept ``config_flags`` from loading the config file
  (it returns a placeholder that raises only when the config is used)."""
  from ml_collections.config_flags import config_flags as cf
  error_type = getattr(cf, "_ErrorConfig", None)
  if error_type is not None and isinstance(config, error_type):
    error = config._error  # pylint: disable=protected-access
    cause = error
    while cause.__cause__ is not None or cause.__context__ is not None:
      cause = cause.__cause__ or cause.__context__
    raise cause if isinstance(cause, (SyntaxError, ValueError, TypeError)) else error


def _argument_error(e: BaseException, argv) -> str:
  """One line for an error while parsing the flags or loading the config."""
  if isinstance(e, SyntaxError):
    return (f"syntax error in the config file {e.filename}, line {e.lineno}: "
            f"{e.msg}.")
  if isinstance(e, OSError):
    paths = [a.split("=", 1)[1].split(":", 1)[0] for a in argv
             if a.startswith("--config=")]
    if paths and not os.path.exists(paths[0]):
      return f"no config file {paths[0]!r}."
    cause = e.__cause__ or e
    return f"cannot load the config: {' '.join(str(cause).split())}"
  while isinstance(e, (KeyError, AttributeError)) and e.args and isinstance(
      e.args[0], BaseException):  # ml_collections wraps a KeyError in one
    e = e.args[0]
  message = str(e.args[0] if isinstance(e, KeyError) and e.args else e)
  if isinstance(e, KeyError) and "Did you mean" in message:
    name, hint = message.split("\n", 1) if "\n" in message else (message, "")
    message = f"unknown config field {name}. {hint}"
  if "Traceback (most recent call last)" in message:  # get_config raised
    head = message.split("Traceback (most recent call last)")[0].rstrip(": \n")
    message = f"{head}: {message.strip().splitlines()[-1]}"
  return " ".join(message.split())  # one line


def _main(command: str, fv, rest) -> int:
  if command == "report":  # positional run directories, no --config
    return _report(rest[1:], fv)
  if len(rest) > 1:
    print(f"mtl-jax {command}: unexpected arguments {rest[1:]}", file=sys.stderr)
    return 2
  if fv.config is None:
    print(f"mtl-jax {command}: --config is required.\n\n{_help(command)}",
          file=sys.stderr)
    return 2
  from mtl_jax.data.catalog import MissingDataError
  from mtl_jax.settings import ConfigError
  from mtl_jax.train import distributed, rundir, signals, validate
  from mtl_jax.train.checkpoint import CheckpointError
  try:
    # A config error or missing data is the user's setup, not a bug: one line
    # naming the key and value, no traceback.
    settings = validate.check_config(fv.config)
    distributed.initialize(settings.config)
    return COMMANDS[command][1](settings, fv) or 0
  except MissingDataError as e:
    print(f"mtl-jax {command}: {e}", file=sys.stderr)
    return 2
  except ConfigError as e:
    print(f"mtl-jax {command}: invalid config: {e}", file=sys.stderr)
    return 2
  except (rundir.RunDirError, CheckpointError) as e:
    print(f"mtl-jax {command}: {e}", file=sys.stderr)
    return 2
  except signals.Preempted as e:  # 143 (SIGTERM) or 130 (SIGINT): resume later
    print(f"mtl-jax {command}: {e}", file=sys.stderr)
    return e.exit_code
  except ValueError as e:
    # Bad input found while building or running (an engine the method cannot
    # use, a record of the wrong shape, ...): the library raises ValueError
    # naming the key or value. MTL_JAX_DEBUG=1 shows the traceback instead.
    if os.environ.get("MTL_JAX_DEBUG"):
      raise
    first = next((l for l in str(e).splitlines() if l.strip()), type(e).__name__)
    print(f"mtl-jax {command}: {first.strip()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
