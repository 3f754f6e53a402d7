"""MTAN on SegNet (the paper's NYUv2 network): parameter count, shapes, groups."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mtl_jax import models, tasks as tasks_lib
from tests.models import arch_checks, dense_checks as d

NYU_TASKS = tasks_lib.from_config({
    "segmentation": dict(kind="segmentation", num_classes=13),
    "depth": dict(kind="depth"),
    "normal": dict(kind="normals"),
})


def _authors_count(outputs=(13, 1, 3), f=(64, 128, 256, 512, 512)):
  """Parameters of lorenmt/mtan im2im_pred/model_segnet_mtan.py's SegNet,
  module by module as its __init__ builds them (Conv2d with bias; BatchNorm2d
  weight and bias), without its ``logsigma``."""
  conv = lambda a, b, k=3: k * k * a * b + b
  conv_layer = lambda a, b: conv(a, b) + 2 * b                       # conv-BN-ReLU
  att_layer = lambda a, b, c: conv(a, b, 1) + 2 * b + conv(b, c, 1) + 2 * c
  n = conv_layer(3, f[0]) + conv_layer(f[0], f[0])                   # encoder/decoder_block[0]
  for i in range(4):
    n += conv_layer(f[i], f[i + 1]) + conv_layer(f[i + 1], f[i])
  n += conv_layer(f[0], f[0]) + conv_layer(f[0], f[0])               # conv_block_enc/dec[0]
  for i in range(4):
    if i == 0:
      n += conv_layer(f[1], f[1]) + conv_layer(f[0], f[0])
    else:
      n += 2 * conv_layer(f[i + 1], f[i + 1]) + 2 * conv_layer(f[i], f[i])
  for _ in range(3):                                                 # encoder/decoder_att
    n += att_layer(f[0], f[0], f[0]) + att_layer(2 * f[0], f[0], f[0])
    for i in range(4):
      n += att_layer(2 * f[i + 1], f[i + 1], f[i + 1])
      n += att_layer(f[i + 1] + f[i], f[i], f[i])
  n += conv_layer(f[0], f[1]) + conv_layer(f[0], f[0])               # *_block_att[0]
  for i in range(4):
    if i < 3:
      n += conv_layer(f[i + 1], f[i + 2]) + conv_layer(f[i + 1], f[i])
    else:
      n += 2 * conv_layer(f[i + 1], f[i + 1])
  for out in outputs:                                                # pred_task1..3
    n += conv(f[0], f[0]) + conv(f[0], out, 1)
  return n


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_parameter_count_at_the_papers_sizes():
  model = nnx.eval_shape(lambda: models.build(NYU_TASKS, (288, 384, 3), arch="mtan",
                                              trunk=dict(kind="segnet")))
  p = models.partition(model)
  assert _authors_count() + 3 == 44_229_076  # their count_parameters, with logsigma
  assert _count((p.shared, p.tasks, p.cross)) == _authors_count()
  # The shared SegNet alone is the authors' model_segnet_split.py body.
  assert _count(nnx.state(model.shared.segnet, nnx.Param)) == 24_943_296


def test_outputs_groups_and_attention_norm():
  build = lambda **kw: models.build(d.TASKS, d.SHAPE, arch="mtan",
                                    trunk=dict(kind="segnet", channels=(4, 8)), **kw)
  out = jax.eval_shape(lambda x: build()(x, train=True),
                       jax.ShapeDtypeStruct((2, *d.SHAPE), jnp.float32))
  assert {k: v.shape for k, v in out.items()} == d.expected_shapes(2)
  model = nnx.eval_shape(build)
  p = arch_checks.assert_partition_exhaustive(model)
  assert set(p.shared) == {"segnet", "encoder_f", "decoder_f"}
  assert set(p.tasks["seg"]) == {"encoder", "decoder", "head"}
  plain = nnx.eval_shape(lambda: build(attention_norm=False))
  # g and h batch norms (scale, bias): encoder widths c_j, decoder widths c_{j-1}.
  norms = 2 * (2 * 4 + 2 * 8) + 2 * (2 * 4 + 2 * 4)
  assert _count(p.tasks["seg"]) - _count(models.partition(plain).tasks["seg"]) == norms


def test_with_every_mask_one_the_task_sees_the_shared_segnet():
  """Attention ``a * p`` with ``a = 1``: the attended decoder output equals the
  SegNet's own output (the paper's identity property of the masks)."""
  @jax.jit
  def both(x):
    model = models.build(d.SEG, d.SHAPE, arch="mtan",
                         trunk=dict(kind="segnet", channels=(4, 8), layers=(1, 1)))
    att = model.tasks["seg"]
    for module in list(att.encoder) + list(att.decoder):
      module.h.kernel[...] = jnp.zeros_like(module.h.kernel[...])
      module.h.bias[...] = jnp.full_like(module.h.bias[...], 50.0)  # sigmoid -> 1
      module.h_norm = None
    trace = model.shared.segnet.trace(x)
    return att.attend(model.shared, trace), model.shared.segnet(x)
  attended, plain = both(jnp.asarray(d.inputs(), jnp.float32))
  np.testing.assert_allclose(attended, plain, rtol=1e-5, atol=1e-6)


def test_dense_tasks_need_the_segnet_trunk():
  with pytest.raises(ValueError) as err:
    models.build(d.TASKS, d.SHAPE, arch="mtan", trunk=dict(kind="cnn", channels=(4,)))
  assert "MTAN" in str(err.value) and "'depth'" in str(err.value)
  assert "'cnn'" in str(err.value)


def test_trains_a_step():
  model = models.build(d.TASKS, d.SHAPE, arch="mtan",
                       trunk=dict(kind="segnet", channels=(4, 8), layers=(1, 1)))
  states, history = d.train_steps(model, "weighted")
  assert np.all(np.asarray(history[0]["counts"]) > 0)
  arch_checks.assert_moved(states[0].params, states[1].params, ("shared", "tasks"),
                           every=False)
