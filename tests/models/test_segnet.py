"""SegNet trunk: pooling masks and unpooling against numpy, shapes, stages."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mtl_jax.models.segnet import SegNet, max_pool_2x2_with_mask, max_unpool_2x2
from mtl_jax.models.trunks import build_trunk


def _pool_reference(x):
  """Pooled values and indices as PyTorch's MaxPool2d(2, 2, return_indices=True):
  the first maximum of each window in row-major order."""
  b, h, w, c = x.shape
  pooled = np.zeros((b, h // 2, w // 2, c))
  where = np.zeros(x.shape, bool)
  for n in range(b):
    for i in range(h // 2):
      for j in range(w // 2):
        for k in range(c):
          window = x[n, 2 * i:2 * i + 2, 2 * j:2 * j + 2, k].reshape(-1)
          a = int(np.argmax(window))
          pooled[n, i, j, k] = window[a]
          where[n, 2 * i + a // 2, 2 * j + a % 2, k] = True
  return pooled, where


def _unpool_reference(y, where):
  """MaxUnpool2d: each pooled value back at its index, zeros elsewhere."""
  out = np.zeros(where.shape)
  b, h, w, c = y.shape
  for n in range(b):
    for i in range(h):
      for j in range(w):
        for k in range(c):
          window = where[n, 2 * i:2 * i + 2, 2 * j:2 * j + 2, k]
          r, s = np.argwhere(window)[0]
          out[n, 2 * i + r, 2 * j + s, k] = y[n, i, j, k]
  return out


@pytest.mark.parametrize("ties", [False, True])
def test_pool_mask_and_unpool_match_the_reference(ties):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 6, 8, 3))
  if ties:  # Small integers: many windows with several maxima.
    x = rng.integers(0, 3, size=x.shape).astype(np.float64)
  pooled, mask = max_pool_2x2_with_mask(jnp.asarray(x, jnp.float32))
  ref_pooled, ref_where = _pool_reference(x)
  np.testing.assert_allclose(pooled, ref_pooled, rtol=1e-6)
  np.testing.assert_array_equal(mask, ref_where)
  y = rng.normal(size=pooled.shape)
  np.testing.assert_allclose(max_unpool_2x2(jnp.asarray(y, jnp.float32), mask),
                             _unpool_reference(y, ref_where), rtol=1e-6)


def test_pool_gradient_goes_to_the_first_maximum_only():
  x = jnp.asarray([[1.0, 1.0], [0.0, 1.0]]).reshape(1, 2, 2, 1)
  g = jax.grad(lambda v: max_pool_2x2_with_mask(v)[0].sum())(x)
  np.testing.assert_array_equal(g.reshape(2, 2), [[1.0, 0.0], [0.0, 0.0]])


def test_unpool_gradient_reads_the_masked_positions():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(1, 4, 4, 2)), jnp.float32)
  _, mask = max_pool_2x2_with_mask(x)
  cot = rng.normal(size=(1, 4, 4, 2))
  y = jnp.zeros((1, 2, 2, 2))
  g = jax.grad(lambda v: jnp.sum(max_unpool_2x2(v, mask) * cot))(y)
  expected = (cot * np.asarray(mask)).reshape(1, 2, 2, 2, 2, 2).sum(axis=(2, 4))
  np.testing.assert_allclose(g, expected, rtol=1e-6)


def test_segnet_layers_and_shapes():
  net = SegNet((16, 16, 3), (4, 8), (1, 2), rngs=nnx.Rngs(0))
  assert [len(s) for s in net.encoder] == [1, 2] and [len(s) for s in net.decoder] == [1, 2]
  # Encoder c_{j-1} -> c_j; decoder stage j: c_j -> c_{j-1} (c_0 -> c_0 at j = 0).
  assert [(b.conv.in_features, b.conv.out_features) for s in net.encoder for b in s] == [
      (3, 4), (4, 8), (8, 8)]
  assert [(b.conv.in_features, b.conv.out_features) for s in net.decoder for b in s] == [
      (4, 4), (8, 4), (4, 4)]
  assert net.spatial and net.stride == 1 and net.out_features == 4
  x = jnp.asarray(np.random.default_rng(0).random((2, 16, 16, 3)), jnp.float32)
  out = net(x, train=True)
  assert out.shape == (2, 16, 16, 4)
  trace = net.trace(x)
  np.testing.assert_allclose(trace.decoded[-1], net(x), rtol=1e-6)
  assert [u.shape[1] for u in trace.first] == [16, 8]
  assert [v.shape[1:] for v in trace.unpooled] == [(8, 8, 8), (16, 16, 4)]
  assert [net.stage_width(i) for i in range(net.num_stages)] == [4, 8, 4, 4]


def test_default_segnet_is_vgg16():
  net = nnx.eval_shape(lambda: SegNet((32, 32, 3), rngs=nnx.Rngs(0)))
  assert net.channels == (64, 128, 256, 512, 512) and net.layers == (2, 2, 3, 3, 3)
  assert sum(len(s) for s in net.encoder) == 13


def test_trunk_options_and_errors():
  trunk = build_trunk((16, 16, 3), rngs=nnx.Rngs(0), kind="segnet", channels=(4,))
  assert trunk.kind == "segnet" and trunk.layers == (2,)
  with pytest.raises(ValueError, match="divisible by 2\\^2 = 4"):
    SegNet((18, 16, 3), (4, 8), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="layers"):
    SegNet((16, 16, 3), (4, 8), (1,), rngs=nnx.Rngs(0))
