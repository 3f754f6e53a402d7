"""Learning to branch: a differentiable search of where tasks branch off a trunk.

Guo, Lee, Ulbricht, "Learning to Branch for Multi-Task Learning", ICML 2020,
arXiv:2006.01895.

The search space is a layered trunk. Layer ``l`` has ``c_l`` candidate blocks
(``branching['blocks']``); every block of layer ``l >= 1`` chooses one *parent*
among the ``c_{l-1}`` blocks of the layer below, and every task head chooses
one block of the last layer. Any choice of parents is a tree: tasks whose
paths share a block share its weights, and tasks branch apart where their
paths diverge. The parent choices are relaxed with Gumbel-softmax samples
(Jang et al. / Maddison et al., ICLR 2017):

    w_j = softmax((theta_j + G) / tau),   G ~ Gumbel(0, 1)^{c_{l-1}}
    input of block j = sum_i w_{j,i} * output of block i of layer l-1

with one sample per training step shared by the whole batch (the paper's
"branching probabilities" ``softmax(theta_j)``). ``hard=True`` uses
straight-through one-hot samples. At evaluation (``train=False``) the choices
are the argmax of ``theta`` (``eval_mode='argmax'``, the derived tree) or the
noise-free softmax (``eval_mode='soft'``). :func:`derive_architecture` reads
the tree from the parameters: for every task, the block it uses in each layer.
After the search, the paper retrains the derived tree from scratch.

The Gumbel noise comes from a key and a counter kept in the model's
non-parameter state (``rest``), so the model keeps the ``__call__(x, *,
train)`` signature and every train step draws fresh noise. The temperature is
``max(tau * tau_decay ** count, tau_min)``.

Groups: the candidate blocks are ``shared``; the branching logits ``theta``
(``cross['parents'][l - 1]`` ``[c_l, c_{l-1}]`` for layer ``l`` and
``cross['heads'][task]`` ``[c_L]``) are ``cross``; the heads are
``tasks[name]``. There is no single shared representation (each task reads a
different mixture), so no ``encode``/``decode``.

Usage::

  models.build(tasks, input_shape, arch="branching",
               trunk=dict(kind="mlp", hidden=(32, 32, 32), act="relu"),
               # or trunk=dict(kind="cnn", channels=(8, 16), kernel_size=3, act="relu")
               branching=dict(blocks=(1, 2, 2), tau=1.0, tau_decay=1.0, tau_min=0.1,
                              hard=False, gumbel=True, eval_mode="argmax"),
               head=dict(hidden=(), act="relu"))

``blocks`` defaults to one block in the first layer and one per task in the
others. Dense (per-pixel) tasks are refused when the model is built (every
head reads a vector per example).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mtl_jax.models.heads import HEAD, Head, head_options, refuse_dense
from mtl_jax.models.options import frozen, group
from mtl_jax.models.trunks import activation, flat_size
from mtl_jax.tasks import Task
from mtl_jax.validators import boolean, choice, in_range, positive, positive_int, widths

EVAL_MODES = ("argmax", "soft")
# The keys of the ``trunk`` and ``branching`` options and their defaults
# (``trunk``: ``hidden`` for mlp, ``channels`` and ``kernel_size`` for cnn;
# ``branching['blocks']``: None gives one block, then one per task per layer).
TRUNK = frozen(kind="mlp", hidden=(32, 32, 32), channels=(32, 32, 32), kernel_size=3,
               act="relu")
SEARCH = frozen(blocks=None, tau=1.0, tau_decay=1.0, tau_min=0.1, hard=False,
                gumbel=True, eval_mode="argmax")


class SearchState(nnx.Variable):
  """Non-trainable search state: the Gumbel key data and the step counter."""


class Block(nnx.Module):
  """A candidate block: ``act(dense(x))``, or ``pool(act(conv(x)))`` for cnn."""

  def __init__(self, cnn: bool, a: int, b: int, *, kernel_size: int, act: str,
               rngs: nnx.Rngs):
    k = kernel_size
    self.layer = nnx.Conv(a, b, (k, k), rngs=rngs) if cnn else nnx.Linear(a, b, rngs=rngs)
    self.cnn, self.act = cnn, act

  def __call__(self, x: jax.Array) -> jax.Array:
    x = activation(self.act)(self.layer(x))
    return nnx.max_pool(x, (2, 2), strides=(2, 2)) if self.cnn else x


def _search_options(branching: Mapping[str, Any] | None, owner: str, num_layers: int,
                    num_tasks: int) -> dict[str, Any]:
  """The ``branching`` option checked, with defaults."""
  b = group(branching, f"{owner}: branching", SEARCH)
  blocks = b["blocks"] or (1,) + (num_tasks,) * (num_layers - 1)
  blocks = widths(blocks, f"{owner}: branching.blocks")
  if len(blocks) != num_layers:
    raise ValueError(f"{owner}: branching.blocks needs one count per trunk layer "
                     f"({num_layers}), got {blocks!r}.")
  return dict(blocks=blocks,
              eval_mode=choice(b["eval_mode"], f"{owner}: branching.eval_mode", EVAL_MODES),
              tau=positive(b["tau"], f"{owner}: branching.tau"),
              tau_decay=in_range(b["tau_decay"], f"{owner}: branching.tau_decay", 0, 1,
                                 closed="right"),
              tau_min=positive(b["tau_min"], f"{owner}: branching.tau_min"),
              hard=boolean(b["hard"], f"{owner}: branching.hard"),
              gumbel=boolean(b["gumbel"], f"{owner}: branching.gumbel"))


class BranchingSearch(nnx.Module):
  """Candidate blocks (``shared``), branching logits (``cross``), heads (``tasks``).

  Args:
    tasks: the tasks.
    input_shape: ``(H, W, C)`` (cnn) or any shape (mlp, flattened).
    rngs: initialisation keys (also seed the Gumbel noise).
    trunk: the search space's layers: ``kind`` (``'mlp'``, the default, or
      ``'cnn'``), ``act`` (default ``'relu'``); for mlp ``hidden`` (layer
      widths), for cnn ``channels`` (default ``(32, 32, 32)`` each) and
      ``kernel_size`` (default 3).
    branching: the search: ``blocks`` (candidate blocks per layer; default one,
      then one per task), ``tau`` (Gumbel-softmax temperature, default 1.0),
      ``tau_decay`` (per training step, in (0, 1], default 1.0), ``tau_min``
      (default 0.1), ``hard`` (straight-through one-hot samples, default
      False), ``gumbel`` (add Gumbel noise, default True) and ``eval_mode``
      (``'argmax'``, the default, or ``'soft'``).
    head: each task's head: ``hidden`` (default ``()``) and ``act`` (default
      ``'relu'``).
  """

  def __init__(self, tasks: Sequence[Task], input_shape: Sequence[int], *,
               rngs: nnx.Rngs, trunk: Mapping[str, Any] = TRUNK,
               branching: Mapping[str, Any] = SEARCH, head: Mapping[str, Any] = HEAD):
    owner = type(self).__name__
    refuse_dense(tasks, owner, "its search space's blocks end in a vector per example")
    trunk = group(trunk, f"{owner}: trunk", TRUNK)
    kind = choice(trunk["kind"], f"{owner}: trunk.kind", ("cnn", "mlp"))
    self.cnn = kind == "cnn"
    field = "channels" if self.cnn else "hidden"
    sizes = widths(trunk[field], f"{owner}: trunk.{field}")
    opts = _search_options(branching, owner, len(sizes), len(tasks))
    self.tau, self.tau_decay, self.tau_min = opts["tau"], opts["tau_decay"], opts["tau_min"]
    self.hard, self.gumbel, self.eval_mode = opts["hard"], opts["gumbel"], opts["eval_mode"]
    in_features, out_features = self._io_sizes(input_shape, sizes)
    act = trunk["act"]
    activation(act)  # Validates the name.
    kernel = positive_int(trunk["kernel_size"], f"{owner}: trunk.kernel_size")
    ins = (in_features, *sizes[:-1])
    self.shared = nnx.Dict({"layers": nnx.List([
        nnx.List([Block(self.cnn, a, b, kernel_size=kernel, act=act, rngs=rngs)
                  for _ in range(c)])
        for a, b, c in zip(ins, sizes, opts["blocks"])])})
    c = opts["blocks"]
    self.cross = nnx.Dict({
        "parents": nnx.List([nnx.Param(jnp.zeros((c[l], c[l - 1])))
                             for l in range(1, len(c))]),
        "heads": nnx.Dict({t.name: nnx.Param(jnp.zeros((c[-1],))) for t in tasks})})
    head = head_options(head, owner)
    self.tasks = nnx.Dict({t.name: Head(out_features, t, tuple(head["hidden"]),
                                        act=head["act"], rngs=rngs)
                           for t in tasks})
    self.noise_key = SearchState(jax.random.key_data(rngs.params()))
    self.count = SearchState(jnp.zeros((), jnp.uint32))

  def _io_sizes(self, input_shape, sizes) -> tuple[int, int]:
    if not self.cnn:
      return flat_size(input_shape), sizes[-1]
    if len(input_shape) != 3:
      raise ValueError(f"A cnn branching trunk needs (H, W, C) inputs, got "
                       f"{tuple(input_shape)}.")
    h, w, c = (int(d) for d in input_shape)
    n = len(sizes)
    if (h >> n) < 1 or (w >> n) < 1:
      raise ValueError(f"branching: input {tuple(input_shape)} is too small for "
                       f"{n} pooling blocks.")
    return c, (h >> n) * (w >> n) * sizes[-1]

  def _choice(self, logits: jax.Array, key, train: bool, tau) -> jax.Array:
    """Parent weights (last axis) from branching logits."""
    if not train:
      if self.eval_mode == "argmax":
        return jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1], dtype=logits.dtype)
      return jax.nn.softmax(logits, -1)
    if self.gumbel:
      logits = logits + jax.random.gumbel(key, logits.shape, logits.dtype)
    w = jax.nn.softmax(logits / tau, -1)
    if self.hard:
      one_hot = jax.nn.one_hot(jnp.argmax(w, -1), w.shape[-1], dtype=w.dtype)
      w = one_hot + w - jax.lax.stop_gradient(w)
    return w

  def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
    count = self.count[...]
    key = jax.random.fold_in(jax.random.wrap_key_data(self.noise_key[...]), count)
    tau = jnp.maximum(self.tau * self.tau_decay ** count.astype(jnp.float32), self.tau_min)
    if train:
      self.count[...] = count + 1
    if not self.cnn:
      x = x.reshape(x.shape[0], -1)
    layers = self.shared["layers"]
    outs = jnp.stack([block(x) for block in layers[0]])
    for l in range(1, len(layers)):
      w = self._choice(self.cross["parents"][l - 1][...], jax.random.fold_in(key, l),
                       train, tau)
      inputs = jnp.einsum("ji,i...->j...", w, outs)
      outs = jnp.stack([block(inputs[j]) for j, block in enumerate(layers[l])])
    preds = {}
    for i, (name, head) in enumerate(sorted(self.tasks.items())):
      w = self._choice(self.cross["heads"][name][...],
                       jax.random.fold_in(key, len(layers) + i), train, tau)
      z = jnp.einsum("i,i...->...", w, outs)
      preds[name] = head(z.reshape(z.shape[0], -1))
    return preds

  @staticmethod
  def derive_architecture(params: Mapping[str, Any]) -> dict[str, list[int]]:
    """See :func:`derive_architecture`."""
    return derive_architecture(params)


def _ordered(tree) -> list:
  if isinstance(tree, Mapping):
    return [tree[k] for k in sorted(tree, key=int)]
  return list(tree)


def derive_architecture(params: Mapping[str, Any]) -> dict[str, list[int]]:
  """The argmax tree: for every task, the block it uses in each layer.

  Args:
    params: the model's parameters ``{'shared', 'tasks', 'cross'}`` (as in
      the train state) or just the ``cross`` group.

  Returns:
    ``{task: [block index in layer 0, ..., block index in layer L-1]}``,
    following each head's most likely parent down to the first layer. Two
    tasks share layers ``0..l`` exactly when their lists agree up to ``l``
    (the first layer where they differ is their branching point).
  """
  cross = params["cross"] if "cross" in params else params
  parents = [np.asarray(p) for p in _ordered(cross["parents"])]
  tree = {}
  for name in sorted(cross["heads"]):
    path = [int(np.argmax(np.asarray(cross["heads"][name])))]
    for logits in reversed(parents):
      path.append(int(np.argmax(logits[path[-1]])))
    tree[name] = path[::-1]
  return tree
