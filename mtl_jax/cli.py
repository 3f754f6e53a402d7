"""The ``mtl-jax`` command.

  mtl-jax train   --config configs/sprites.py [--config.train.num_steps=500 ...]
                  [--workdir DIR] [--resume]
  mtl-jax compare --config configs/sprites.py [--methods equal,mgda,pcgrad]
  mtl-jax eval    --config configs/sprites.py --workdir DIR [--split test]
  mtl-jax report  RUN_DIR [RUN_DIR ...] [--out DIR] [--split test]

Configs are Python files with ``get_config(arg)``; ``--config=path:arg``
passes ``arg``; ``--config.a.b=value`` overrides a field (unknown fields are
an error with a suggestion).

``train`` exit codes: 0 done; 2 bad arguments, a config that fails
``validate.check_config`` (one line naming the key and value), or a catalog
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

COMMANDS = ("train", "compare", "eval", "report")



def _define_flags(argv) -> flags.FlagValues:
  """The command's flags on a fresh ``FlagValues``: each ``main`` call parses
  its own, so calls in one process (tests, notebooks) never collide on the
  ``--config.*`` override flags that parsing defines."""
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "Path to a config file.",
                                  flag_values=fv, lock_config=True, sys_argv=argv)
  flags.DEFINE_string("workdir", None, "Run directory (default: config.workdir).",
                      flag_values=fv)
  flags.DEFINE_bool("resume", False, "Resume from the latest checkpoint.", flag_values=fv)
  flags.DEFINE_list("methods", None, "compare: methods to run (weighting or aggregation "
                    "names, or 'config').", flag_values=fv)
  flags.DEFINE_string("split", "test", "Split to evaluate.", flag_values=fv)
  flags.DEFINE_bool("progress", None, "Force the progress bar on or off.", flag_values=fv)
  flags.DEFINE_string("out", None, "report: output directory (default: the first run "
                      "directory).", flag_values=fv)
  return fv


def _usage() -> str:
  return __doc__.strip()


def _print_eval(values: dict, losses: dict) -> None:
  for task, metrics in values.items():
    shown = ", ".join(f"{m}={v:.4f}" for m, v in metrics.items())
    print(f"  {task}: {shown}, loss={losses[task]:.4f}")


def _train(config, fv) -> int:
  from mtl_jax.train import loop, signals
  try:
    result = loop.train(config, workdir=fv.workdir, resume=fv.resume,
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


def _compare(config, fv) -> None:
  from mtl_jax.train import compare
  summary = compare.compare(config, fv.methods, workdir=fv.workdir,
                            progress=fv.progress, split=fv.split)
  print(f"\nPer-task {summary['split']} metrics; Delta_m% vs. single-task "
        "baselines (lower is better):\n")
  print(summary["table"])


def _eval(config, fv) -> None:
  import os
  from mtl_jax.train import loop
  from mtl_jax.train.checkpoint import Checkpointer, meta_for
  s = loop.setup(config)  # main() has run validate.check_config already
  compiled = loop.compile_run(s)
  workdir = fv.workdir or config.workdir
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), every=0)
  state, _, step = ckpt.restore(compiled.abstract_state, meta_for(s.tasks, config))
  ckpt.close()
  values, losses = loop.evaluate(s, compiled, state, fv.split)
  print(f"step {step}, {fv.split}:")
  _print_eval(values, losses)
  print(json.dumps(values))


def _report(run_dirs, fv) -> int:
  from mtl_jax import report
  if not run_dirs:
    print(f"mtl-jax report: give one or more run directories.\n\n{_usage()}",
          file=sys.stderr)
    return 2
  try:
    path = report.render(run_dirs, fv.out, split=fv.split, progress=fv.progress)
  except FileNotFoundError as e:
    print(e, file=sys.stderr)
    return 2
  print(f"Report: {path}")
  return 0


def main(argv=None) -> int:
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] not in COMMANDS:
    print(_usage(), file=sys.stderr)
    return 2
  command = argv.pop(1)
  fv = _define_flags(argv)
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
    print(f"mtl-jax {command}: --config is required.\n\n{_usage()}", file=sys.stderr)
    return 2
  from mtl_jax.data.catalog import MissingDataError
  from mtl_jax.train import distributed, validate
  try:
    # A config error or missing data is the user's setup, not a bug: one line
    # naming the key and value, no traceback.
    validate.check_config(fv.config)
  except MissingDataError as e:
    print(f"mtl-jax {command}: {e}", file=sys.stderr)
    return 2
  except (ValueError, TypeError) as e:
    print(f"mtl-jax {command}: invalid config: {e}", file=sys.stderr)
    return 2
  distributed.initialize(fv.config)
  try:
    return {"train": _train, "compare": _compare, "eval": _eval}[command](fv.config, fv) or 0
  except MissingDataError as e:
    print(f"mtl-jax {command}: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
