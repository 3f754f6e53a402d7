"""The toy problem's loss surfaces as a 2-task regression (no download).

The dataset ``toy`` (:mod:`mtl_jax.data.toy`): points ``theta`` drawn
uniformly from ``[-10, 10]^2`` with targets ``l1``, ``l2``, the two losses of
the CAGrad / Nash-MTL / FAMO toy problem there. The tasks share an input and
their gates ``tanh(+-x2 / 2)`` but not their branches (a log-kink above the
``x1`` axis, a parabola below). A tanh MLP trunk shared by two small heads,
equal loss weights, Adam (lr 3e-3, 3000 steps); 4000 training points, under
a minute on a CPU, test MSE ~0.08 against a target variance of ~100.
``mtl-jax compare`` adds the toy benchmark's methods (FAMO, CAGrad, Nash-MTL)
and uncertainty weighting.

To optimise the toy problem itself (``theta`` as the parameters, from the five
standard starts: the ``starts`` split), see ``benchmarks/toy.py``.
"""

import ml_collections


def get_config(arg=None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.name = "toy"
  c.seed = 0
  c.workdir = "runs/toy"
  c.data = dict(name="toy", data_dir=ml_collections.config_dict.placeholder(str),
                bound=10.0, scale_l1=1.0, num_train=4000, num_validation=500,
                num_test=1000, seed=0)
  spec = dict(kind="regression", dim=1, metrics=("mse", "mae"))
  c.tasks = {"l1": dict(spec), "l2": dict(spec)}
  c.model = dict(arch="hard_sharing", trunk=dict(kind="mlp", hidden=(64, 64), act="tanh"),
                 head=dict(hidden=(32,), act="tanh"))
  c.compare_methods = ("equal", "uncertainty", "famo", "cagrad", "nash_mtl")
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto", every=1)
  c.optimizer = dict(name="adam", learning_rate=3e-3,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="cosine", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=3000, batch_size=128, eval_batch_size=1000, log_every=100,
                 eval_every=0, checkpoint_every=0, max_to_keep=1,
                 nonfinite="skip", max_nonfinite=10)
  return c
