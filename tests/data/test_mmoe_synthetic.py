"""MMoE synthetic data: task correlation and the target formula."""

import numpy as np
import pytest

from mtl_jax import data
from mtl_jax.data import mmoe_synthetic

OPTIONS = dict(mmoe_synthetic.DEFAULTS, num_train=2000, num_validation=10,
               num_test=10)


@pytest.mark.parametrize("p", [0.0, 0.5, 0.9, 1.0])
def test_weight_cosine_equals_correlation(p):
  w1, w2 = mmoe_synthetic.task_weights(dict(OPTIONS, correlation=p))
  assert np.linalg.norm(w1) == pytest.approx(1.0)
  assert np.linalg.norm(w2) == pytest.approx(1.0)
  cosine = w1 @ w2 / (np.linalg.norm(w1) * np.linalg.norm(w2))
  assert cosine == pytest.approx(p, abs=1e-12)


def test_targets_follow_the_formula():
  options = dict(OPTIONS, correlation=0.7)
  arrays = mmoe_synthetic.generate(options, "train")
  w1, w2 = mmoe_synthetic.task_weights(options)
  x = arrays["x"].astype(np.float64)
  assert x.shape == (2000, 100)
  assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
  for w, y in ((w1, arrays["y1"]), (w2, arrays["y2"])):
    z = x @ w
    clean = z + sum(np.sin(j * z + (j - 1) ** 2) for j in range(1, 11))
    residual = y - clean
    assert abs(residual.mean()) < 0.002
    assert residual.std() == pytest.approx(0.01, rel=0.1)
  # The two tasks' targets correlate more when the weights do.
  low = mmoe_synthetic.generate(dict(options, correlation=0.0), "train")
  corr = lambda a: np.corrcoef(a["y1"], a["y2"])[0, 1]
  assert corr(arrays) > corr(low) + 0.3


def test_determinism_and_splits():
  a, b = (mmoe_synthetic.generate(OPTIONS, "validation") for _ in range(2))
  np.testing.assert_array_equal(a["x"], b["x"])
  np.testing.assert_array_equal(a["y1"], b["y1"])
  other = mmoe_synthetic.generate(dict(OPTIONS, seed=1), "validation")
  assert not np.array_equal(a["x"], other["x"])
  test = mmoe_synthetic.generate(OPTIONS, "test")
  assert not np.array_equal(a["x"], test["x"])


def test_builder_batches(data_dir):
  config = {"name": "mmoe_synthetic", "data_dir": data_dir, "input_dim": 8,
            "num_train": 40, "num_validation": 10, "num_test": 10,
            "correlation": 0.3}
  assert data.input_shape(config) == (8,)
  assert sorted(data.dataset_tasks(config)) == ["y1", "y2"]
  assert data.num_examples(config, "train") == 40
  batch = next(data.build(config, "train", batch_size=16, seed=0, shuffle=False,
                          drop_remainder=True))
  options = data.base.resolve_options(data.get_spec("mmoe_synthetic"), config)
  expected = mmoe_synthetic.generate(options, "train")
  np.testing.assert_array_equal(batch["inputs"], expected["x"][:16])
  np.testing.assert_array_equal(batch["targets"]["y2"], expected["y2"][:16])
  assert batch["targets"]["y1"].shape == (16,)


def test_bad_correlation_raises():
  with pytest.raises(ValueError, match="correlation"):
    mmoe_synthetic.task_weights(dict(OPTIONS, correlation=1.5))


def test_one_draw_serves_every_correlation():
  ps = [1.0, 0.5, 0.0]
  sets = mmoe_synthetic.generate_correlations(OPTIONS, "train", ps)
  for p, arrays in zip(ps, sets):
    alone = mmoe_synthetic.generate(dict(OPTIONS, correlation=p), "train")
    for key in ("x", "y1", "y2"):
      np.testing.assert_array_equal(arrays[key], alone[key])
  # w1 = u1 at every p: the inputs and the first task are one draw.
  np.testing.assert_array_equal(sets[0]["y1"], sets[2]["y1"])
  # At p = 1 the tasks differ by their independent noise only (std 0.01 each).
  assert np.std(sets[0]["y2"] - sets[0]["y1"]) == pytest.approx(0.01 * np.sqrt(2), rel=0.1)
  assert not np.allclose(sets[1]["y2"], sets[2]["y2"])
