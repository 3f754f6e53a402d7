"""Procedural 3D scenes: objects on a ground plane, with per-pixel class,
depth and surface normals from one ray-cast geometry (an embedded NYUv2).

Each example is a small scene, ray cast in numpy (one ray through the centre
of every pixel, vectorised over pixels and scenes; no antialiasing, so the
edges in the image are exactly the edges in the labels):

* a ground plane ``z = 0`` with a checkerboard of 1 x 1 tiles (two tones of a
  random, mostly grey colour);
* ``min_objects`` to ``max_objects`` objects resting on it, each of one of the
  first ``num_shapes`` kinds of :data:`SHAPES`: ``box`` (half-lengths ``rx``,
  ``ry`` in [0.25, 0.6], height in [0.4, 1.4]), ``sphere`` (radius in
  [0.3, 0.7]), ``cylinder`` (vertical axis, radius in [0.25, 0.55], height in
  [0.5, 1.6]) and ``cone`` (vertical axis, apex up, base radius in
  [0.3, 0.6], height in [0.6, 1.6]); each with a random position in front of
  the camera (forward distance in [2, 6], the centre inside the horizontal
  field of view), a rotation about the vertical axis and a random colour.
  Footprints never overlap (rejection sampling; an object that finds no free
  place in 20 tries is left out, so a scene may hold fewer objects);
* a pinhole camera at height ``h`` in [1.4, 2] above the origin, looking
  along world ``+y`` and pitched down by an angle in [18, 32] degrees, with a
  vertical field of view of 50 degrees and square pixels (focal length
  ``f = (H / 2) / tan(25 deg)`` pixels, principal point at the image centre);
* a directional light (azimuth uniform, elevation in [35, 70] degrees).

World coordinates are right-handed, ``x`` right, ``y`` forward, ``z`` up, in
metre-like units.

Per pixel, from the same ray hit:

* ``image``: uint8 ``[H, W, 3]``: Lambertian shading,
  ``albedo * (0.3 + 0.7 * max(0, n . l) * lit)`` with ``lit`` 0 where a
  shadow ray towards the light hits an object, then a light fog (a fraction
  ``1 - exp(-t / 30)`` of the sky's horizon colour); rays that hit nothing
  show a sky gradient. Colours are independent of the class, so the class has
  to be read from the shape, the shading and the context.
* ``segmentation``: int32 ``[H, W]``: 0 for the ground, ``1 + k`` for an
  object of kind ``SHAPES[k]`` (``num_classes = 1 + num_shapes``), and
  :data:`IGNORE_LABEL` (-1) where the pixel has no surface within range (sky,
  or ground farther than :data:`MAX_DEPTH`), like NYUv2's unlabelled pixels.
* ``depth``: float32 ``[H, W]``: the z-depth, the distance along the optical
  axis (as NYUv2's depth maps), not along the ray, in the scene's units
  (about 1 to 10, like NYUv2's metres); 0 = missing, exactly where
  ``segmentation`` is -1 (a depth sensor's range, :data:`MAX_DEPTH` = 10).
* ``normals``: float32 ``[H, W, 3]``: the outward unit surface normal in
  camera coordinates with ``x`` to the right, ``y`` down the image and ``z``
  towards the camera (the colour convention of the NYU Depth v2 normal maps
  as Armeni et al. describe it: red to the right, green downwards, blue
  towards the camera; a surface facing the camera is ``(0, 0, 1)``, the
  ground ``(0, -cos(pitch), sin(pitch))``). All zeros =
  missing, again exactly where ``segmentation`` is -1. The MTAN / LibMTL
  code does not state the axes of its preprocessed NYUv2 normals; the losses
  and angle metrics only compare prediction and target, so the convention
  matters only when models move between datasets.

The three tasks are related as in real data: the class boundaries are depth
and normal discontinuities, the ground's normal is one vector per image
(fixed by the pitch) and its depth grows towards the horizon, and
back-projecting a pixel with its depth gives a 3D point on the surface whose
normal it carries (for the ground: ``n . X = -h`` in camera coordinates).

Options (config ``data`` keys): ``image_size`` (the height ``H``, and the
width unless ``image_width`` is set; default 64), ``image_width`` (None:
square), ``num_train`` / ``num_validation`` / ``num_test`` (2000 / 500 /
500), ``seed``, ``num_shapes`` (1 to 4, default 4), ``min_objects`` /
``max_objects`` (2 / 5). Generation is deterministic: split ``s`` draws its
scenes from ``SeedSequence([seed, index of s])``. A 64 x 64 scene takes
5 to 8 ms of one core (the default 3000 scenes: 15 to 25 s, once; the files
are reused).

References:
  Silberman, Hoiem, Kohli, Fergus. Indoor Segmentation and Support Inference
  from RGBD Images. ECCV 2012 (NYU Depth v2).
  Liu, Johns, Davison. End-to-End Multi-Task Learning with Attention. CVPR
  2019 (MTAN; its NYUv2 tasks: 13-class segmentation with ignore label -1,
  depth with 0 = missing, normals with a zero vector = missing).
  https://github.com/lorenmt/mtan
  Armeni, Sax, Zamir, Savarese. Joint 2D-3D-Semantic Data for Indoor Scene
  Understanding. arXiv:1702.01105, 2017 (the NYU normal-map convention).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from mtl_jax.data import base, catalog, embedded
from mtl_jax.validators import at_least, in_range, integer

SHAPES = ("box", "sphere", "cylinder", "cone")
GROUND = 0  # class of the ground plane; object kind k has class 1 + k
IGNORE_LABEL = -1  # class of pixels with no surface in range
MAX_DEPTH = 10.0  # farther surfaces are missing (a depth sensor's range)
VERTICAL_FOV = math.radians(50.0)
AMBIENT = 0.3
FOG_DISTANCE = 30.0
SKY_HORIZON = np.array([0.78, 0.84, 0.92])
SKY_ZENITH = np.array([0.35, 0.52, 0.85])
MIN_IMAGE_SIZE = 8
_EPS = 1e-6  # smallest hit distance (the camera and shadow rays start outside)
_SHADOW_OFFSET = 1e-4  # shadow rays start this far along the surface normal
_PLACEMENT_TRIES = 20
_GAP = 0.1  # least distance between two footprints
_RAYS_PER_CHUNK = 1 << 18
# Size ranges: (half-length or radius, height; None: the sphere's diameter).
_SIZES = {"box": ((0.25, 0.6), (0.4, 1.4)), "sphere": ((0.3, 0.7), None),
          "cylinder": ((0.25, 0.55), (0.5, 1.6)), "cone": ((0.3, 0.6), (0.6, 1.6))}

DEFAULTS = {"image_size": 64, "image_width": None, "num_train": 2000,
            "num_validation": 500, "num_test": 500, "seed": 0, "num_shapes": 4,
            "min_objects": 2, "max_objects": 5}


class Scenes(NamedTuple):
  """A batch of ``S`` scenes with up to ``K`` objects each (world units).

  Attributes:
    height: camera height above the ground ``[S]``.
    pitch: camera pitch below the horizontal, radians ``[S]``.
    light: unit vector towards the light ``[S, 3]``.
    ground: the two tile colours, RGB in [0, 1] ``[S, 2, 3]``.
    kind: index into :data:`SHAPES`, -1 for no object ``[S, K]``.
    centre: ground position ``(x, y)`` of each object's base centre ``[S, K, 2]``.
    size: ``(rx, ry, height)``: half-lengths along the object's own x and y
      axes and height (sphere: ``(r, r, 2 r)``; cylinder and cone: ``(r, r,
      height)``) ``[S, K, 3]``.
    angle: rotation about the vertical axis, radians ``[S, K]``.
    colour: RGB in [0, 1] ``[S, K, 3]``.
  """

  height: np.ndarray
  pitch: np.ndarray
  light: np.ndarray
  ground: np.ndarray
  kind: np.ndarray
  centre: np.ndarray
  size: np.ndarray
  angle: np.ndarray
  colour: np.ndarray


# --- Options ------------------------------------------------------------------


def image_shape(options: Mapping[str, Any]) -> tuple[int, int]:
  """``(H, W)`` of the images of ``options`` (checking the options)."""
  _check(options)
  width = options["image_width"]
  return (int(options["image_size"]),
          int(options["image_size"] if width is None else width))


def class_names(num_shapes: int) -> tuple[str, ...]:
  """The class of each segmentation id: the ground, then the object kinds."""
  return ("ground",) + SHAPES[:num_shapes]


def _check(options: Mapping[str, Any]) -> None:
  at_least(options["image_size"], "scenes: image_size", MIN_IMAGE_SIZE)
  if options["image_width"] is not None:
    integer(options["image_width"], "scenes: image_width", MIN_IMAGE_SIZE)
  in_range(options["num_shapes"], "scenes: num_shapes", 1, len(SHAPES))
  at_least(options["min_objects"], "scenes: min_objects", 1)
  at_least(options["max_objects"], "scenes: max_objects", options["min_objects"])
  embedded.check_split_sizes("scenes", options)


# --- Sampling -----------------------------------------------------------------


def focal_length(height: int) -> float:
  """Focal length in pixels of an image ``height`` pixels high."""
  return (height / 2) / math.tan(VERTICAL_FOV / 2)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
  """RGB ``[..., 3]`` of hue in [0, 1), saturation and value in [0, 1]."""
  k = (np.array([5.0, 3.0, 1.0]) + 6.0 * h[..., None]) % 6.0
  return v[..., None] - (v * s)[..., None] * np.clip(np.minimum(k, 4.0 - k), 0, 1)


def _sample_size(rng: np.random.Generator, kind: int) -> np.ndarray:
  """``(rx, ry, height)`` of an object of kind ``SHAPES[kind]``."""
  (low, high), heights = _SIZES[SHAPES[kind]]
  rx = rng.uniform(low, high)
  ry = rng.uniform(low, high) if SHAPES[kind] == "box" else rx
  height = 2 * rx if heights is None else rng.uniform(*heights)
  return np.array([rx, ry, height])


def _place(rng: np.random.Generator, radius: float, placed: list,
           half_fov: float) -> np.ndarray | None:
  """A free ground position for a footprint of ``radius``, or None."""
  for _ in range(_PLACEMENT_TRIES):
    y = rng.uniform(2.0, 6.0)
    x = rng.uniform(-0.8, 0.8) * y * half_fov
    if all(math.hypot(x - px, y - py) >= radius + r + _GAP
           for (px, py), r in placed):
      return np.array([x, y])
  return None


def sample_scenes(rng: np.random.Generator, n: int, *, num_shapes: int,
                  min_objects: int, max_objects: int,
                  aspect: float = 1.0) -> Scenes:
  """``n`` random scenes (``aspect``: image width over height)."""
  height = rng.uniform(1.4, 2.0, n)
  pitch = np.radians(rng.uniform(18.0, 32.0, n))
  azimuth = rng.uniform(0.0, 2 * math.pi, n)
  elevation = np.radians(rng.uniform(35.0, 70.0, n))
  light = np.stack([np.cos(elevation) * np.cos(azimuth),
                    np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], -1)
  tone = _hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0, 0.3, n),
                     rng.uniform(0.45, 0.75, n))
  ground = np.stack([tone, 0.8 * tone], 1)
  k = max_objects
  kind, centre = np.full((n, k), -1), np.zeros((n, k, 2))
  size, angle, colour = np.ones((n, k, 3)), np.zeros((n, k)), np.zeros((n, k, 3))
  half_fov = aspect * math.tan(VERTICAL_FOV / 2)
  for s in range(n):
    placed = []
    for j in range(rng.integers(min_objects, max_objects + 1)):
      shape = int(rng.integers(0, num_shapes))
      dims = _sample_size(rng, shape)
      turn = rng.uniform(0.0, 2 * math.pi)
      paint = _hsv_to_rgb(*rng.uniform([0.0, 0.4, 0.5], [1.0, 0.9, 1.0]))
      footprint = math.hypot(dims[0], dims[1]) if shape == 0 else dims[0]
      position = _place(rng, footprint, placed, half_fov)
      if position is None:
        continue
      placed.append((position, footprint))
      kind[s, j], centre[s, j], size[s, j] = shape, position, dims
      angle[s, j], colour[s, j] = turn, paint
  return Scenes(height, pitch, light, ground, kind, centre, size, angle, colour)


# --- Camera -------------------------------------------------------------------


def camera_axes(pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """World directions ``[S, 3]`` of the camera's right, down and forward axes."""
  c, s = np.cos(pitch), np.sin(pitch)
  zero, one = np.zeros_like(c), np.ones_like(c)
  return (np.stack([one, zero, zero], -1), np.stack([zero, -s, -c], -1),
          np.stack([zero, c, -s], -1))


def pixel_rays(pitch: np.ndarray, height: int, width: int) -> np.ndarray:
  """World ray directions ``[S, H * W, 3]`` through the pixel centres, scaled
  to a forward component of 1 (so a hit's ray parameter is its z-depth)."""
  f = focal_length(height)
  u = (np.arange(width) + 0.5 - width / 2) / f
  v = (np.arange(height) + 0.5 - height / 2) / f
  u = np.broadcast_to(u, (height, width)).reshape(1, -1, 1)
  v = np.broadcast_to(v[:, None], (height, width)).reshape(1, -1, 1)
  right, down, forward = camera_axes(pitch)
  return u * right[:, None] + v * down[:, None] + forward[:, None]


# --- Ray-object intersections (object frame: base centre at the origin) ------


def _roots(a, b, c):
  """Both roots of ``a t^2 + b t + c = 0`` (NaN where there is none)."""
  disc = b * b - 4 * a * c
  sq = np.sqrt(np.where(disc >= 0, disc, np.nan))
  q = -0.5 * (b + np.copysign(sq, b))
  return q / a, c / q


def _nearest(candidates):
  """The nearest valid ``(t, normal)`` of ``[(t, valid, normal), ...]``."""
  best_t = np.full(candidates[0][0].shape, np.inf)
  best_n = np.zeros(best_t.shape + (3,))
  for t, valid, normal in candidates:
    closer = valid & (t > _EPS) & (t < best_t)
    best_t = np.where(closer, t, best_t)
    best_n = np.where(closer[..., None], normal, best_n)
  return best_t, best_n


def _box(o, d, size):
  """``|x| <= rx, |y| <= ry, 0 <= z <= h`` (slab method)."""
  half = size * np.array([1.0, 1.0, 0.5])
  o = o - half * np.array([0.0, 0.0, 1.0])
  d = np.where(np.abs(d) < 1e-12, 1e-12, d)
  t1, t2 = (-half - o) / d, (half - o) / d
  near, far = np.minimum(t1, t2), np.maximum(t1, t2)
  t_near, t_far = near.max(-1), far.min(-1)
  axis = np.eye(3)[near.argmax(-1)]
  normal = -axis * np.sign(np.sum(d * axis, -1, keepdims=True))
  return _nearest([(t_near, t_near <= t_far, normal)])


def _sphere(o, d, size):
  """Radius ``r``, centre ``(0, 0, r)``."""
  r = size[..., :1]
  oc = o - r * np.array([0.0, 0.0, 1.0])
  roots = _roots(np.sum(d * d, -1), 2 * np.sum(oc * d, -1),
                 np.sum(oc * oc, -1) - r[..., 0] ** 2)
  return _nearest([(t, np.isfinite(t), (oc + t[..., None] * d) / r)
                   for t in roots])


def _cylinder(o, d, size):
  """``x^2 + y^2 <= r^2``, ``0 <= z <= h``: the side and the top disc."""
  r, h = size[..., 0], size[..., 2]
  a = d[..., 0] ** 2 + d[..., 1] ** 2
  b = 2 * (o[..., 0] * d[..., 0] + o[..., 1] * d[..., 1])
  c = o[..., 0] ** 2 + o[..., 1] ** 2 - r ** 2
  candidates = []
  for t in _roots(a, b, c):
    p = o + t[..., None] * d
    side = p * np.array([1.0, 1.0, 0.0]) / r[..., None]
    candidates.append((t, (p[..., 2] >= 0) & (p[..., 2] <= h), side))
  t = (h - o[..., 2]) / np.where(d[..., 2] == 0, 1e-12, d[..., 2])
  p = o + t[..., None] * d
  top = np.broadcast_to(np.array([0.0, 0.0, 1.0]), p.shape)
  candidates.append((t, p[..., 0] ** 2 + p[..., 1] ** 2 <= r ** 2, top))
  return _nearest(candidates)


def _cone(o, d, size):
  """``sqrt(x^2 + y^2) <= k (h - z)``, ``0 <= z <= h``, ``k = r / h``."""
  r, h = size[..., 0], size[..., 2]
  k2 = (r / h) ** 2
  w0 = h - o[..., 2]
  a = d[..., 0] ** 2 + d[..., 1] ** 2 - k2 * d[..., 2] ** 2
  b = 2 * (o[..., 0] * d[..., 0] + o[..., 1] * d[..., 1] + k2 * w0 * d[..., 2])
  c = o[..., 0] ** 2 + o[..., 1] ** 2 - k2 * w0 ** 2
  candidates = []
  for t in _roots(a, b, c):
    p = o + t[..., None] * d
    normal = np.stack([p[..., 0], p[..., 1], k2 * (h - p[..., 2])], -1)
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    candidates.append((t, (p[..., 2] >= 0) & (p[..., 2] <= h), normal))
  return _nearest(candidates)


_INTERSECT = (_box, _sphere, _cylinder, _cone)  # in the order of SHAPES


def _to_object(v, angle, centre=None):
  """World vectors (points if ``centre``) ``[n, 3]`` in the object frame."""
  c, s = np.cos(angle), np.sin(angle)
  x, y = v[:, 0], v[:, 1]
  if centre is not None:
    x, y = x - centre[:, 0], y - centre[:, 1]
  return np.stack([c * x + s * y, c * y - s * x, v[:, 2]], -1)


def _to_world(n, angle):
  """Object-frame vectors ``[n, 3]`` in world coordinates."""
  c, s = np.cos(angle), np.sin(angle)
  return np.stack([c * n[:, 0] - s * n[:, 1], s * n[:, 0] + c * n[:, 1],
                   n[:, 2]], -1)


def intersect(kind: int, origins, dirs, centre, size, angle):
  """Nearest hits of rays with objects of kind ``SHAPES[kind]``, one object
  per ray.

  Args:
    origins, dirs: world ray origins and directions ``[n, 3]``.
    centre, size, angle: each ray's object, as the fields of :class:`Scenes`
      (``[n, 2]``, ``[n, 3]``, ``[n]``).

  Returns:
    ``t [n]``, the ray parameter of the hit (``inf`` for none), and the world
    outward unit normal ``[n, 3]`` there (zeros for none).
  """
  o, d = _to_object(origins, angle, centre), _to_object(dirs, angle)
  with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
    t, normal = _INTERSECT[kind](o, d, size)
  return t, _to_world(normal, angle)


def _dot(a, b):
  return np.einsum("...i,...i->...", a, b)


def _candidates(scenes: Scenes, k: int, origins, dirs, dd, t_best):
  """``(scene, ray)`` index pairs whose ray may hit object slot ``k`` before
  ``t_best``: the ray passes the object's bounding sphere (``dd``: the rays'
  squared lengths)."""
  present = np.flatnonzero(scenes.kind[:, k] >= 0)
  size = scenes.size[present, k]
  centre = np.concatenate([scenes.centre[present, k], size[:, 2:] / 2], -1)
  radius = np.linalg.norm(size * np.array([1.0, 1.0, 0.5]), axis=-1)[:, None]
  oc = centre[:, None] - origins[present]
  dd = dd[present]
  tc = _dot(oc, dirs[present]) / dd
  reach = radius / np.sqrt(dd)
  near = ((_dot(oc, oc) - tc * tc * dd <= radius ** 2)
          & (tc + reach > _EPS) & (tc - reach < t_best[present]))
  rows, rays = np.nonzero(near)
  return present[rows], rays


def _trace(scenes: Scenes, origins, dirs, ground: bool):
  """Nearest hits ``(t, class, slot, world normal)`` of rays ``[S, P, 3]``.

  The ground (class 0, slot -1) is included when ``ground``; class -1 and
  ``t = inf`` where nothing is hit.
  """
  shape = dirs.shape[:2]
  t_best, label = np.full(shape, np.inf), np.full(shape, IGNORE_LABEL)
  slot, normal = np.full(shape, -1), np.zeros(shape + (3,))
  if ground:
    with np.errstate(divide="ignore", invalid="ignore"):
      t = np.broadcast_to(-origins[..., 2], shape) / dirs[..., 2]
    hit = (dirs[..., 2] < 0) & (t > _EPS)
    t_best = np.where(hit, t, np.inf)
    label = np.where(hit, GROUND, IGNORE_LABEL)
    normal[hit] = (0.0, 0.0, 1.0)
  dd, rays_from = _dot(dirs, dirs), np.broadcast_to(origins, dirs.shape)
  for k in range(scenes.kind.shape[1]):
    rows, rays = _candidates(scenes, k, origins, dirs, dd, t_best)
    for kind in range(len(SHAPES)):
      pick = scenes.kind[rows, k] == kind
      s, r = rows[pick], rays[pick]
      if not s.size:
        continue
      t, n = intersect(kind, rays_from[s, r], dirs[s, r], scenes.centre[s, k],
                       scenes.size[s, k], scenes.angle[s, k])
      closer = t < t_best[s, r]
      s, r = s[closer], r[closer]
      t_best[s, r], label[s, r], slot[s, r] = t[closer], 1 + kind, k
      normal[s, r] = n[closer]
  return t_best, label, slot, normal


def _albedo(scenes: Scenes, points, label, slot):
  """Surface colour ``[S, P, 3]``: ground tiles or the object's colour."""
  tile = (np.floor(points[..., 0]) + np.floor(points[..., 1])) % 2
  tile = np.where(np.isfinite(tile), tile, 0).astype(np.int64)
  rows = np.arange(len(label))[:, None]
  ground = scenes.ground[rows, tile]
  objects = scenes.colour[rows, np.maximum(slot, 0)]
  return np.where((label == GROUND)[..., None], ground, objects)


def _sky(dirs):
  """Sky colour ``[S, P, 3]`` by the rays' elevation."""
  elevation = dirs[..., 2] / np.linalg.norm(dirs, axis=-1)
  mix = np.clip(2.0 * elevation, 0.0, 1.0)[..., None]
  return (1 - mix) * SKY_HORIZON + mix * SKY_ZENITH


def _shade(scenes: Scenes, origins, dirs, t, label, slot, normal):
  """The RGB image ``[S, P, 3]`` in [0, 1]."""
  hit = np.isfinite(t)
  points = origins + np.where(hit, t, 0.0)[..., None] * dirs
  light = np.broadcast_to(scenes.light[:, None], dirs.shape)
  shadow_t, *_ = _trace(scenes, points + _SHADOW_OFFSET * normal, light,
                        ground=False)
  lit = ~np.isfinite(shadow_t)
  lambert = np.maximum(np.sum(normal * light, -1), 0.0) * lit
  colour = _albedo(scenes, points, label, slot) * (
      AMBIENT + (1 - AMBIENT) * lambert)[..., None]
  fog = (1 - np.exp(-np.where(hit, t, 0.0) / FOG_DISTANCE))[..., None]
  colour = (1 - fog) * colour + fog * SKY_HORIZON
  return np.where(hit[..., None], colour, _sky(dirs))


def _camera_normals(normal, pitch):
  """World normals ``[S, P, 3]`` in camera coordinates (x right, y down,
  z towards the camera)."""
  right, down, forward = camera_axes(pitch)
  dot = lambda axis: np.sum(normal * axis[:, None], -1)
  n = np.stack([dot(right), dot(down), -dot(forward)], -1)
  return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def _render_chunk(scenes: Scenes, height: int, width: int) -> dict[str, np.ndarray]:
  dirs = pixel_rays(scenes.pitch, height, width)
  origins = np.stack([np.zeros_like(scenes.height), np.zeros_like(scenes.height),
                      scenes.height], -1)[:, None]
  t, label, slot, normal = _trace(scenes, origins, dirs, ground=True)
  image = _shade(scenes, origins, dirs, t, label, slot, normal)
  valid = t <= MAX_DEPTH
  normals = np.where(valid[..., None], _camera_normals(normal, scenes.pitch), 0.0)
  shape = (len(t), height, width)
  return {
      "image": np.round(np.clip(image, 0, 1) * 255).astype(np.uint8).reshape(
          shape + (3,)),
      "segmentation": np.where(valid, label, IGNORE_LABEL).astype(
          np.int32).reshape(shape),
      "depth": np.where(valid, t, 0.0).astype(np.float32).reshape(shape),
      "normals": normals.astype(np.float32).reshape(shape + (3,)),
  }


def render(scenes: Scenes, height: int, width: int) -> dict[str, np.ndarray]:
  """``image``, ``segmentation``, ``depth``, ``normals`` of ``scenes``
  (record format, with a leading scene axis)."""
  n = len(scenes.height)
  chunk = max(1, _RAYS_PER_CHUNK // (height * width))
  parts = [_render_chunk(Scenes(*(field[i:i + chunk] for field in scenes)),
                         height, width) for i in range(0, n, chunk)]
  return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


# --- The dataset --------------------------------------------------------------


def split_size(options: Mapping[str, Any], split: str) -> int:
  return int(options[f"num_{split}"])


def generate(options: Mapping[str, Any], split: str) -> dict[str, np.ndarray]:
  """All examples of ``split`` as arrays (what the builder writes)."""
  height, width = image_shape(options)
  scenes = sample_scenes(
      embedded.split_rng(options, split), split_size(options, split),
      num_shapes=int(options["num_shapes"]),
      min_objects=int(options["min_objects"]),
      max_objects=int(options["max_objects"]), aspect=width / height)
  return render(scenes, height, width)


def features(options: Mapping[str, Any]) -> dict[str, Any]:
  """The TFDS features of a record."""
  hw = image_shape(options)
  tensor = lambda shape, dtype: tfds.features.Tensor(
      shape=shape, dtype=dtype, encoding=tfds.features.Encoding.BYTES)
  return {"image": tensor(hw + (3,), np.uint8),
          "segmentation": tensor(hw, np.int32),
          "depth": tensor(hw, np.float32),
          "normals": tensor(hw + (3,), np.float32)}


class Scenes3D(embedded.Builder, skip_registration=True):
  """Procedural 3D scenes: per-pixel class, depth and surface normals."""

  name = "scenes"
  VERSION = tfds.core.Version("1.0.0")
  generate, features = staticmethod(generate), staticmethod(features)


def tasks(options: Mapping[str, Any]) -> dict[str, dict]:
  """The dense tasks of the scenes, named as NYUv2's."""
  shape = image_shape(options)
  return {"segmentation": catalog.segmentation(
              len(class_names(int(options["num_shapes"]))), shape=shape,
              ignore_label=IGNORE_LABEL),
          "depth": catalog.depth(shape=shape),
          "normals": catalog.normals(shape=shape)}


def input_shape(options: Mapping[str, Any]) -> tuple[int, int, int]:
  return image_shape(options) + (3,)


DATASET = base.DatasetSpec(
    name="scenes",
    defaults=DEFAULTS,
    tasks=tasks,
    input_shape=input_shape,
    load=base.tfds_loader(Scenes3D),
    in_memory=True,
)
