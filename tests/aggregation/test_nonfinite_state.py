"""One non-finite step never poisons a stateful aggregator (issue 16)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mtl_jax import aggregation

CASES = [("moco", {}, False), ("moco", {"normalize_by_loss": True}, True),
         ("db_mtl", {}, True), ("excess_mtl", {}, False)]


@pytest.mark.parametrize("name,hparams,uses_losses", CASES)
@pytest.mark.parametrize("bad", ["nan_grad", "inf_grad", "nan_loss"])
def test_a_bad_step_is_skipped_and_later_steps_match(name, hparams,
                                                     uses_losses, bad):
  if bad == "nan_loss" and not uses_losses:
    pytest.skip(f"{name} does not read the losses.")
  rng = np.random.default_rng(1)
  seq = rng.normal(size=(4, 3, 5)).astype(np.float32)
  losses = rng.uniform(0.5, 2.0, size=(4, 3)).astype(np.float32)
  agg = aggregation.get(name, **hparams)
  params = {"w": jnp.zeros(5)}
  step = jax.jit(agg.update)

  def run(sequence, loss_seq):
    state = agg.init(3, params)
    out = []
    for g, l in zip(sequence, loss_seq):
      d, state = step({"w": jnp.asarray(g)}, state, losses=jnp.asarray(l))
      out.append(np.asarray(d["w"]))
    return out, state

  clean, clean_state = run(seq[[0, 2, 3]], losses[[0, 2, 3]])
  bad_seq, bad_losses = seq.copy(), losses.copy()
  if bad == "nan_grad":
    bad_seq[1, 1, 2] = np.nan
  elif bad == "inf_grad":
    bad_seq[1, 0, 0] = np.inf
  else:
    bad_losses[1, 2] = np.nan
  out, state = run(bad_seq, bad_losses)
  assert not np.all(np.isfinite(out[1]))  # The bad step is visible.
  # The later steps are those of the run without the bad step.
  for a, b in zip([out[0], out[2], out[3]], clean):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-6),
               state, clean_state)
