"""The toy-problem benchmark: losses, Pareto-set criterion, a short run.

The full benchmark (every method, 35k-100k iterations) is not run here:
``python -m benchmarks.toy``.
"""

import math

import numpy as np
import pytest

from benchmarks import toy
from mtl_jax.data.toy import TOY_STARTS, toy_losses


@pytest.fixture(scope="module")
def curve():
  return toy.pareto_set(num=281)


def test_losses_at_a_start_and_at_a_single_task_minimum():
  # (0, 0): c1 = c2 = 0, both losses vanish.
  np.testing.assert_allclose(toy_losses(np.zeros(2, np.float32)), [0.0, 0.0])
  # (9, 9): c1 = tanh(4.5), f1 = log(|-8 + tanh(9)|) + 6,
  # f2 = log(|-3 - tanh(9) + 2|) + 6.
  c1 = math.tanh(4.5)
  f1 = math.log(abs(-8.0 + math.tanh(9.0))) + 6
  f2 = math.log(abs(-1.0 - math.tanh(9.0))) + 6
  np.testing.assert_allclose(toy_losses(np.array(TOY_STARTS[2], np.float32)),
                             [c1 * f1, c1 * f2], rtol=1e-5)
  # (7, -8): g1 = -20 (its minimum), g2 = 14^2 / 10 - 20; c2 = tanh(4).
  c2 = math.tanh(4.0)
  np.testing.assert_allclose(
      toy_losses(np.array([7.0, -8.0], np.float32), scale_l1=0.1),
      [0.1 * c2 * -20.0, c2 * (19.6 - 20.0)], rtol=1e-5)


def test_pareto_set_is_a_tradeoff_curve_of_anti_parallel_gradients(curve):
  assert np.all(np.abs(curve[:, 0]) <= 7.0)
  assert np.all((curve[:, 1] > -8.5) & (curve[:, 1] < -8.3))
  inner = curve[5:-5]
  assert np.all(toy.gradient_cosine(inner) < -0.9999)
  losses = toy.losses_at(curve[::20])
  assert np.all(np.diff(losses[:, 0]) < 0) and np.all(np.diff(losses[:, 1]) > 0)


def test_pareto_set_agrees_with_brute_force_non_dominance(curve):
  points = toy.non_dominated_grid(num=201)        # spacing 0.1
  # The non-dominated grid points lie along the curve (loosely in x2, where
  # the losses are flat) ...
  assert np.all(np.abs(points[:, 0]) <= 7.0 + 1e-5)
  assert np.all(toy.pareto_distance(points, curve) < 0.5)
  # ... and no grid point dominates a point of the curve.
  axis = np.linspace(-10, 10, 201, dtype=np.float32)
  grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
  grid_losses = toy.losses_at(grid)
  curve_losses = toy.losses_at(curve[::10])
  dominated = np.any(np.all(grid_losses[None] < curve_losses[:, None] - 1e-4,
                            axis=-1), axis=1)
  assert not np.any(dominated)


def test_pareto_criterion_on_and_off_the_set(curve):
  on = np.array([[0.0, float(np.interp(0.0, curve[:, 0], curve[:, 1]))]])
  off = np.array([[0.0, 9.0], [0.0, -8.0], [8.0, -8.4]])
  assert toy.pareto_distance(on, curve)[0] < 1e-3
  far = toy.pareto_distance(off, curve)
  assert np.all(far > toy.PARETO_TOL)
  np.testing.assert_allclose(far[1], 0.355, atol=0.01)
  # A dominated point on the plateau with nearly anti-parallel gradients: the
  # reason the criterion is the distance, not the cosine.
  assert toy.gradient_cosine(off[:1])[0] < -0.999
  gaps = toy.dominance_gap(np.concatenate([on, off]), curve)
  assert abs(gaps[0]) < 1e-3 and np.all(gaps[1:] > 1e-4)
  assert gaps[1] > 10.0                # the plateau is far from optimal


def test_short_run_is_finite_and_decreases_the_summed_loss():
  spec = toy.method_spec("cagrad", iters=2000)
  run = toy.optimise(spec, TOY_STARTS)
  path = run.path
  assert path.shape == (len(TOY_STARTS), 2001, 2)
  assert run.update_norms.shape == (len(TOY_STARTS), 2000)
  assert np.all(np.isfinite(path)) and np.all(np.isfinite(run.update_norms))
  start = toy.losses_at(path[:, 0]).sum(1)
  end = toy.losses_at(path[:, -1]).sum(1)
  assert np.all(end <= start) and np.sum(end) < np.sum(start) - 1.0


def test_method_settings_follow_the_papers():
  assert toy.method_spec("nash_mtl").scale_l1 == 0.1
  assert toy.method_spec("famo").iters == 50_000
  assert toy.method_spec("cagrad").iters == 100_000
  assert toy.method_spec("mgda", iters=10, scale_l1=0.5).scale_l1 == 0.5
  assert set(toy.all_methods()) >= {"equal", "famo", "cagrad", "nash_mtl"}
  with pytest.raises(ValueError, match="Unknown method"):
    toy.method_spec("nope")
