"""Tests of fixed (static) weighting."""

import jax.numpy as jnp
import numpy as np
import pytest

import mtl_jax.weighting as weighting


def test_returns_the_given_weights_whatever_the_losses():
  method = weighting.get("fixed", weights=[0.2, 1.0, 3.5])
  state = method.init(3)
  for losses in ([1.0, 2.0, 3.0], [0.0, 1e15, 1e-30]):
    weights, state = method.update(jnp.array(losses), state)
    np.testing.assert_allclose(weights, [0.2, 1.0, 3.5], rtol=1e-7)


def test_init_with_wrong_length_names_both_lengths():
  method = weighting.get("fixed", weights=[1.0, 2.0])
  with pytest.raises(ValueError, match=r"Expected 3 task weights.*length 2"):
    method.init(3)
  with pytest.raises(ValueError, match=r"Expected 4 task weights.*length 2"):
    method.update(jnp.ones(4), ())


@pytest.mark.parametrize("bad", [[1.0, -0.1], [1.0, float("nan")],
                                 [[1.0, 2.0]], []])
def test_rejects_bad_weights_naming_them(bad):
  with pytest.raises(ValueError, match="'weights'"):
    weighting.get("fixed", weights=bad)


def test_zero_weights_are_allowed():
  method = weighting.get("fixed", weights=[0.0, 1.0])
  weights, _ = method.update(jnp.ones(2), method.init(2))
  np.testing.assert_array_equal(weights, [0.0, 1.0])
