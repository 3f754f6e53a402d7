"""The Pareto-MTL problem's objective surfaces as a 2-task regression.

The dataset ``pareto_mtl`` (:mod:`mtl_jax.data.pareto_mtl`): points ``x``
drawn from ``U(-0.5, 0.5)^20`` (the paper's starts) with targets ``f1``,
``f2``, the two objectives of Lin et al. (NeurIPS 2019) there. The tasks are
two Gaussian wells at ``+-(1, ..., 1) / sqrt(20)``: the same shape, shifted.
A tanh MLP trunk shared by two small heads, equal loss weights, Adam (lr
1e-2, 6000 steps); 4000 training points, under a minute on a CPU, test MSE
~2e-4 against a target variance of ~3e-3. ``mtl-jax compare`` adds MGDA (the
method Pareto MTL builds on), PCGrad and Nash-MTL.

The ``front`` split holds points of the true Pareto front; ``mtl-jax eval
--split front`` scores a model there. It is far from the training points
(random points of the cube lie ~1.6 from either well, where both objectives
are ~0.9; the front runs from 0 to 0.98), so it measures extrapolation: the
model above misses it by an MSE of ~0.07.
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.name = "pareto_mtl"
  c.seed = 0
  c.workdir = "runs/pareto_mtl"
  c.data = dict(name="pareto_mtl", data_dir=ml_collections.config_dict.placeholder(str),
                input_dim=20, num_train=4000, num_validation=500, num_test=1000,
                num_front=101, seed=0)
  spec = dict(kind="regression", dim=1, metrics=("mse", "mae"))
  c.tasks = {"f1": dict(spec), "f2": dict(spec)}
  c.model = dict(arch="hard_sharing", trunk=dict(kind="mlp", hidden=(64, 64), act="tanh"),
                 head=dict(hidden=(32,), act="tanh"))
  c.compare_methods = ("equal", "mgda", "pcgrad", "nash_mtl")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=1e-2,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="cosine", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=6000, batch_size=128, eval_batch_size=1000, log_every=100,
                 eval_every=0, checkpoint_every=0, max_to_keep=1,
                 nonfinite="skip", max_nonfinite=10)
  return c
