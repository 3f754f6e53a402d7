"""Every Gramian-based aggregator runs under ``jax_enable_x64`` (issue 16:
``_qp.py``'s while_loop carried int32 while ``argmax`` gave int64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation
from tests.aggregation import helpers

NAMES = ("upgrad", "dualproj", "mgda", "nash_mtl", "fairgrad", "cagrad",
         "imtl_g", "aligned_mtl")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_runs_under_x64_and_matches_float32(name, dtype):
  rng = np.random.default_rng(0)
  jac = rng.normal(size=(3, 5))
  jac[1] = -0.5 * jac[0] + 0.3 * rng.normal(size=5)  # A conflict.
  agg = aggregation.get(name)
  grads = {"w": jnp.asarray(jac, jnp.float32)}
  d32, _ = jax.jit(agg.update)(grads, agg.init(3))
  with jax.enable_x64(True):
    grads = {"w": jnp.asarray(jac, dtype)}
    d, _ = jax.jit(agg.update)(grads, agg.init(3))
    d = np.asarray(d["w"], np.float64)
  assert np.all(np.isfinite(d))
  np.testing.assert_allclose(d, np.asarray(d32["w"], np.float64), rtol=1e-3,
                             atol=1e-4)
