"""MMoE synthetic regression (Ma et al., KDD 2018): two tasks of set correlation p.

``get_config(arg)``: ``arg`` is an architecture, optionally followed by
``,key=value`` overrides: ``"mmoe"``, ``"hard_sharing,p=0.5"``,
``"independent,p=0,seed=2"``. Keys: ``p`` (task correlation, the dataset's
``correlation``), ``seed`` (initialisation and shuffling) and ``units`` (each
expert's width, 16 by default, with the shared bottom resized to the same
weights: :func:`shared_bottom_units`; for capacity-limited comparisons).

Architectures and their sizes (inputs d = 100; every model has 13k-15k parameters,
as the paper compares models of the same size):

* ``mmoe``: 8 experts x 16 ReLU units, softmax gates, towers of 8 units
  (14,834 parameters); ``dselect_k``: the same with DSelect-k gates (k = 2).
* ``hard_sharing`` (shared bottom): one shared layer of 113 units, towers of 8
  units (13,255): the paper's size, 113 = 13056 / (100 + 2 * 8), matching the
  weights of 8 experts x 16 units and two 8-unit towers.
* ``soft_sharing``: one 64-unit tower per task, pulled together by an L2
  penalty to their mean (13,986).
* ``independent``: a 64-unit network per task, nothing shared (13,986).
* ``cgc`` / ``ple``: 2 shared + 3 per-task experts x 16 units (one level /
  two levels).

Training: Adam, learning rate 1e-2, batch 128, 8000 steps, 100k training
examples. The data matter: with 10k examples every model overfits the
high-frequency sines (test MSE near the target variance, ~7).

``benchmarks/mmoe_synthetic/`` runs the paper's comparison over p; what it
found (the paper's finding does not show: both models lose about 8% as p
falls) is in ``benchmarks/results/mmoe_synthetic_paper200.md`` and the
reports next to it.
"""

import ml_collections

ARCHS = ("mmoe", "dselect_k", "hard_sharing", "soft_sharing", "independent", "cgc",
         "ple")
TOWER = dict(hidden=(8,), act="relu")


INPUT_DIM, NUM_EXPERTS, EXPERT_UNITS = 100, 8, 16


def shared_bottom_units(expert_units: int = EXPERT_UNITS) -> int:
  """The shared bottom's width with the weights of MMoE's experts and towers.

  ``8 E d + 2 * 8 E = H d + 2 * 8 H`` (the experts' and the towers' weights,
  towers of 8 units): ``H = E (8 d + 16) / (d + 16)``; 113 for ``E = 16``,
  the paper's size.
  """
  d, t = INPUT_DIM, TOWER["hidden"][0]
  return round(expert_units * (NUM_EXPERTS * d + 2 * t) / (d + 2 * t))


def _model(arch: str, units: int = EXPERT_UNITS) -> dict:
  if arch in ("mmoe", "dselect_k"):
    return dict(arch=arch, experts=dict(num=NUM_EXPERTS, hidden=(units,), act="relu"),
                gate="softmax" if arch == "mmoe" else "dselect_k", k=2, head=TOWER)
  if arch in ("cgc", "ple"):
    return dict(arch=arch, levels=2 if arch == "ple" else 1, gate="softmax",
                experts=dict(num_shared=2, num_task=3, hidden=(16,), act="relu"),
                head=TOWER)
  if arch == "hard_sharing":
    return dict(arch=arch, trunk=dict(kind="mlp", hidden=(shared_bottom_units(units),),
                                      act="relu"), head=TOWER)
  if arch == "independent":
    return dict(arch=arch, trunk=dict(kind="mlp", hidden=(64,), act="relu"), head=TOWER)
  if arch == "soft_sharing":
    return dict(arch=arch, trunk=dict(kind="mlp", hidden=(64,), act="relu"), head=TOWER,
                penalties={"l2_to_mean": 1e-3})
  raise ValueError(f"configs/mmoe_synthetic.py: unknown architecture {arch!r}; "
                   f"valid: {ARCHS}.")


def _parse(arg: str) -> tuple[str, dict]:
  arch, *pairs = [s.strip() for s in arg.split(",")]
  overrides = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep or key not in ("p", "seed", "units"):
      raise ValueError(f"configs/mmoe_synthetic.py: bad option {pair!r} in {arg!r}; "
                       "use p=<float>, seed=<int> or units=<int>.")
    overrides[key] = float(value) if key == "p" else int(value)
  return arch, overrides


def get_config(arg: str = "mmoe") -> ml_collections.ConfigDict:
  arch, overrides = _parse(arg)
  c = ml_collections.ConfigDict()
  c.name = f"mmoe_synthetic_{arch}"
  c.seed = overrides.get("seed", 0)
  c.workdir = f"runs/mmoe_synthetic/{arch}"
  c.data = dict(name="mmoe_synthetic", data_dir=ml_collections.config_dict.placeholder(str),
                correlation=overrides.get("p", 0.5), input_dim=INPUT_DIM, num_sines=10,
                scale=1.0, noise=0.01, num_train=100000, num_validation=1000,
                num_test=2000, seed=0)
  spec = dict(kind="regression", dim=1, metrics=("mse", "mae"))
  c.tasks = {"y1": dict(spec), "y2": dict(spec)}
  c.model = _model(arch, overrides.get("units", EXPERT_UNITS))
  c.method = dict(weighting="equal", weighting_kwargs={},
                  aggregation=ml_collections.config_dict.placeholder(str),
                  aggregation_kwargs={}, engine="auto")
  c.optimizer = dict(name="adam", learning_rate=1e-2,
                     task_learning_rate=ml_collections.config_dict.placeholder(float),
                     schedule="constant", warmup_steps=0, weight_decay=0.0, clip_norm=0.0)
  c.train = dict(num_steps=8000, batch_size=128, eval_batch_size=1000, log_every=100,
                 eval_every=0, checkpoint_every=0, max_to_keep=1,
                 nonfinite="skip", max_nonfinite=10)
  return c
