"""The ``mtl-jax`` command.

  mtl-jax train   --config configs/sprites.py [--config.train.num_steps=500 ...]
                  [--workdir DIR] [--resume]
  mtl-jax compare --config configs/sprites.py [--methods equal,mgda,pcgrad]
  mtl-jax eval    --config configs/sprites.py --workdir DIR [--split test]
  mtl-jax report  RUN_DIR [RUN_DIR ...] [--out DIR] [--split test]

Configs are Python files with ``get_config(arg)``; ``--config=path:arg``
passes ``arg``; ``--config.a.b=value`` overrides a field (unknown fields are
an error with a suggestion).

Every command answers ``--help`` with its own flags (exit 0).

``train`` exit codes: 0 done; 2 bad arguments, a config that fails
``settings.parse`` (one line naming the key and value), or a catalog
dataset not prepared under ``data_dir`` (the message says how to prepare it;
also for ``compare`` and ``eval``); 3 halted on non-finite updates
(``train.nonfinite='halt'``; the last good state is checkpointed); 143 stopped
by SIGTERM after saving a checkpoint (rerun with ``--resume``).
"""

from __future__ import annotations

import json
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
  _common_flags(fv, workdir="Run directory (default: config.workdir).", split=False)
  flags.DEFINE_bool("resume", False, "Resume from the latest checkpoint.", flag_values=fv)


def _compare_flags(fv, argv):
  _config_flags(fv, argv)
  _common_flags(fv, workdir="Directory of the runs and the table (default: "
                "config.workdir).")
  flags.DEFINE_list("methods", None, "Methods to run (weighting or aggregation names, "
                    "or 'config'; default: config.compare_methods).", flag_values=fv)


def _eval_flags(fv, argv):
  _config_flags(fv, argv)
  _common_flags(fv, workdir="Run directory holding the checkpoints (default: "
                "config.workdir).", progress=False)


def _report_flags(fv, argv):
  del argv
  flags.DEFINE_string("out", None, "Output directory (default: the first run "
                      "directory).", flag_values=fv)
  _common_flags(fv, workdir=None)


def _print_eval(values: dict, losses: dict) -> None:
  for task, metrics in values.items():
    shown = ", ".join(f"{m}={v:.4f}" for m, v in metrics.items())
    print(f"  {task}: {shown}, loss={losses[task]:.4f}")


def _train(settings, fv) -> int:
  from mtl_jax.train import loop, signals
  try:
    result = loop.train(settings, workdir=fv.workdir, resume=fv.resume,
                        progress=fv.progress)
  except loop.NonFiniteHalt as e:  # exit 3: the run diverged (checkpoint saved)
    print(f"mtl-jax train: {e}", file=sys.stderr)
    return 3
  except signals.Preempted as e:  # exit 143 (128 + SIGTERM): resume later
    print(f"mtl-jax train: {e}", file=sys.stderr)
    return signals.EXIT_CODE
  print(f"Trained {int(result.state.step)} steps ({result.steps_per_second:.1f} steps/s); "
        f"run directory: {result.workdir}")
  for split, values in result.evaluation.items():
    print(f"{split}:")
    _print_eval(values, result.eval_losses[split])


def _compare(settings, fv) -> None:
  from mtl_jax.train import compare
  summary = compare.compare(settings, fv.methods, workdir=fv.workdir,
                            progress=fv.progress, split=fv.split)
  print(f"\nPer-task {summary['split']} metrics; Delta_m% vs. single-task "
        "baselines (lower is better):\n")
  print(summary["table"])


def _eval(settings, fv) -> None:
  import os
  from mtl_jax.train import loop
  from mtl_jax.train.checkpoint import Checkpointer, meta_for
  s = loop.setup(settings)
  compiled = loop.compile_run(s)
  workdir = fv.workdir or settings.workdir
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), every=0)
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
  try:
    path = report.render(run_dirs, fv.out, split=fv.split, progress=fv.progress)
  except FileNotFoundError as e:
    print(e, file=sys.stderr)
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
  fv = _define_flags(command, argv)
  try:
    rest = fv(argv)
  except (flags.Error, KeyError, AttributeError, ValueError) as e:
    message = e.args[0] if isinstance(e, KeyError) and e.args else e
    print(f"mtl-jax {command}: {message}", file=sys.stderr)
    return 2
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
  from mtl_jax.train import distributed, validate
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


if __name__ == "__main__":
  sys.exit(main())
