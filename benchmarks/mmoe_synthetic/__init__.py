"""MMoE synthetic benchmark: test MSE vs task correlation p (Ma et al., KDD 2018).

Trains shared-bottom (``hard_sharing``), MMoE, soft sharing and independent
networks of about the same size (see ``configs/mmoe_synthetic.py``) on the
two-task synthetic regression data of ``mtl_jax.data.mmoe_synthetic`` for each
correlation p and seed, with Adam on the summed MSE, and reports the test MSE
averaged over the two tasks, then over seeds: mean +- std, median and every
seed's value (one failed run must not carry a finding).

The paper's finding: as p falls, the shared-bottom model degrades much more
than MMoE. The summary prints each model's degradation ``MSE(p_min) -
MSE(p_max)``.

Usage (from the repository root)::

  python -m benchmarks.mmoe_synthetic            # 3 seeds x 4 p x 4 models, 8000 steps
  python -m benchmarks.mmoe_synthetic --quick    # smoke run, a few minutes on 2 cores
  python -m benchmarks.mmoe_synthetic --models hard_sharing,mmoe --ps 1,0 --seeds 5
  # 5 more seeds (3..7), merged with the runs of an earlier report:
  python -m benchmarks.mmoe_synthetic --first-seed 3 --seeds 5 \
      --merge benchmarks/results/mmoe_synthetic.json

Runs are deterministic on one machine and code version (same seed, same
numbers), so seeds can be added to a report in several invocations.

Writes ``<out>.json`` (every run, the summary, and the date, commit and
machine load of the run), ``<out>.md`` (tables, then ``<out>.notes.md`` if it
exists) and ``<out>.png`` (test MSE vs p per model).

``--protocol paper`` runs the paper's measurement instead (its synthetic
experiments average the training-loss curves of many runs, each with newly
generated data and a new initialisation): every run draws its own dataset
(the data ``seed`` option = the run seed: new u1, u2, inputs and noise) and
initialisation, records the training loss (per task, the mean of the batch
losses sampled every ``--sample-every`` steps within each ``--curve-every``
window) and ends with the MSE on the whole training set (and the test set).
The report gives, per model and p, the mean curve +- its standard error over
seeds and the final training MSE (mean, SE, median, std), its rise from the
highest to the lowest p and a bootstrap over seeds of the difference between
the two models' rises (from the highest p to each lower p). Defaults: shared
bottom and MMoE, 4 p, 10 seeds, 8000 steps::

  python -m benchmarks.mmoe_synthetic --protocol paper
  python -m benchmarks.mmoe_synthetic --protocol paper --quick   # smoke run
  # The paper's 200 runs per cell, one process per model and core:
  taskset -c 0 python -m benchmarks.mmoe_synthetic --protocol paper --seeds 200 \
      --models hard_sharing --out /tmp/sb &
  taskset -c 1 python -m benchmarks.mmoe_synthetic --protocol paper --seeds 200 \
      --models mmoe --out /tmp/mmoe
  wait
  python -m benchmarks.mmoe_synthetic --protocol paper --seeds 0 \
      --merge /tmp/sb.json --merge /tmp/mmoe.json      # one report of both

Runs train ``--at-once`` (50) seeds at a time, the train step vmapped over
them (``benchmarks/many_seeds.py``: the same numbers as the training loop,
4.5x less CPU time); ``--at-once 0`` runs them one at a time through
:func:`mtl_jax.train.loop.train`, each (p, seed) dataset generated into a
temporary directory unless ``--data-dir`` is given (100k examples are 40 MB a
dataset; 50 seeds at once hold 2 GB). The default output is
``benchmarks/results/mmoe_synthetic_paper.{json,md,png}`` (the PNG: the mean
training curves, one panel per model, and every run's final training MSE).

Modules: :mod:`.run` (configs, runs, the command line), :mod:`.stats`
(statistics over runs, pure numpy), :mod:`.report` (report assembly,
merging, markdown and plots).
"""

from benchmarks.mmoe_synthetic.run import (load_config_module, main, make_config,
                                           parse_args)

__all__ = ["load_config_module", "main", "make_config", "parse_args"]
