"""Scenes: the ray-cast geometry against analytic values computed here, the
consistency of class, depth and normals, determinism, and the TFDS builder.

The camera is rebuilt here from its documented description (50 degree
vertical field of view, pixel centres, pitch as a rotation about the world x
axis), independently of the module's own camera code.
"""

import math
import os

import numpy as np
import pytest

from mtl_jax import data
from mtl_jax.data import scenes

OPTIONS = dict(scenes.DEFAULTS, image_size=24, num_train=16, num_validation=4,
               num_test=4)
SPHERE = 1 + scenes.SHAPES.index("sphere")


@pytest.fixture(scope="module")
def train():
  return scenes.generate(OPTIONS, "train")


# --- An independent camera --------------------------------------------------------


def _camera_to_world(pitch):
  """Columns: the camera's right, down, forward axes in world coordinates
  (a level camera looking along +y, rotated about x by -pitch)."""
  level = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # columns r, d, f
  c, s = math.cos(-pitch), math.sin(-pitch)
  rot_x = np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])
  return rot_x @ level


def _camera_rays(height, width):
  """Camera-frame rays ``[H, W, 3]`` (x right, y down, forward component 1)."""
  f = (height / 2) / math.tan(math.radians(25.0))
  u = (np.arange(width) + 0.5 - width / 2) / f
  v = (np.arange(height) + 0.5 - height / 2) / f
  uu, vv = np.meshgrid(u, v)
  return np.stack([uu, vv, np.ones_like(uu)], -1)


def _to_nyu(normal_world, rotation):
  """World normals ``[..., 3]`` in camera axes x right, y down, z to the camera."""
  n = normal_world @ rotation  # components along right, down, forward
  return n * np.array([1.0, 1.0, -1.0])


def _scene(height=1.7, pitch=math.radians(25.0), objects=()):
  """One hand-made scene; ``objects``: ``(kind, (x, y), (rx, ry, h), angle)``."""
  k = max(1, len(objects))
  kind, centre = np.full((1, k), -1), np.zeros((1, k, 2))
  size, angle = np.ones((1, k, 3)), np.zeros((1, k))
  for j, (shape, position, dims, turn) in enumerate(objects):
    kind[0, j], centre[0, j], size[0, j], angle[0, j] = shape, position, dims, turn
  grey = np.full((1, 2, 3), 0.6)
  return scenes.Scenes(
      height=np.array([height]), pitch=np.array([pitch]),
      light=np.array([[0.0, 0.0, 1.0]]), ground=grey, kind=kind, centre=centre,
      size=size, angle=angle, colour=np.full((1, k, 3), 0.8))


# --- Geometry against analytic values -----------------------------------------


def test_ground_plane_depth_normals_and_range():
  h, pitch, rows, cols = 1.6, math.radians(20.0), 15, 22
  out = scenes.render(_scene(h, pitch), rows, cols)
  rotation = _camera_to_world(pitch)
  rays = _camera_rays(rows, cols) @ rotation.T  # world directions
  with np.errstate(divide="ignore"):
    t = np.where(rays[..., 2] < 0, -h / rays[..., 2], np.inf)
  valid = t <= 10.0
  assert 0 < valid.sum() < valid.size  # the horizon is in view
  np.testing.assert_allclose(out["depth"][0], np.where(valid, t, 0), rtol=1e-6)
  np.testing.assert_array_equal(out["segmentation"][0], np.where(valid, 0, -1))
  up = _to_nyu(np.array([0.0, 0.0, 1.0]), rotation)
  np.testing.assert_allclose(up, [0, -math.cos(pitch), math.sin(pitch)], atol=1e-12)
  expected = np.where(valid[..., None], up, 0.0)
  np.testing.assert_allclose(out["normals"][0], expected, atol=1e-6)


def test_sphere_on_the_optical_axis():
  h, pitch, r, size = 1.7, math.radians(25.0), 0.5, 17  # odd: a centre pixel
  distance = (h - r) / math.sin(pitch)  # camera to the centre, along the axis
  centre = np.array([0.0, distance * math.cos(pitch), r])
  out = scenes.render(_scene(h, pitch, [(SPHERE - 1, centre[:2], (r, r, 2 * r), 0.3)]),
                      size, size)
  mid = size // 2
  assert out["segmentation"][0, mid, mid] == SPHERE
  np.testing.assert_allclose(out["depth"][0, mid, mid], distance - r, rtol=1e-6)
  np.testing.assert_allclose(out["normals"][0, mid, mid], [0, 0, 1], atol=1e-6)
  # Every pixel: the nearer root of |o + t d - c| = r.
  rotation = _camera_to_world(pitch)
  d = _camera_rays(size, size) @ rotation.T
  oc = np.array([0.0, 0.0, h]) - centre
  a, b = np.sum(d * d, -1), 2 * d @ oc
  disc = b * b - 4 * a * (oc @ oc - r * r)
  hit = disc >= 0
  t = (-b - np.sqrt(np.where(hit, disc, 0))) / (2 * a)
  np.testing.assert_array_equal(out["segmentation"][0] == SPHERE, hit)
  np.testing.assert_allclose(out["depth"][0][hit], t[hit], rtol=1e-6)
  normal = _to_nyu((oc + t[..., None] * d) / r, rotation)
  np.testing.assert_allclose(out["normals"][0][hit], normal[hit], atol=1e-5)


def _hit(kind, origin, direction, centre, dims, angle):
  t, n = scenes.intersect(kind, np.array([origin], float),
                          np.array([direction], float), np.array([centre], float),
                          np.array([dims], float), np.array([angle], float))
  return t[0], n[0]


@pytest.mark.parametrize("angle", [0.0, 0.7, 2.5])
def test_box_face_hit_along_its_own_axis(angle):
  centre, (rx, ry, h), far = np.array([1.0, 4.0]), (0.4, 0.3, 1.0), 3.0
  axis = np.array([math.cos(angle), math.sin(angle)])
  for along, half in ((axis, rx), (np.array([-axis[1], axis[0]]), ry)):
    origin = np.append(centre + far * along, 0.6)
    t, n = _hit(0, origin, np.append(-along, 0.0), centre, (rx, ry, h), angle)
    np.testing.assert_allclose(t, far - half, rtol=1e-9)
    np.testing.assert_allclose(n, np.append(along, 0.0), atol=1e-9)
  # Straight down onto the top face; and a ray passing above the box.
  t, n = _hit(0, np.append(centre, 3.0), (0, 0, -1), centre, (rx, ry, h), angle)
  np.testing.assert_allclose([t, *n], [2.0, 0, 0, 1], atol=1e-9)
  t, _ = _hit(0, np.append(centre + far * axis, 1.2), np.append(-axis, 0.0),
              centre, (rx, ry, h), angle)
  assert t == np.inf


def test_cylinder_side_and_top():
  centre, r, h = np.array([-0.5, 3.0]), 0.5, 1.2
  kind = scenes.SHAPES.index("cylinder")
  dims = (r, r, h)
  t, n = _hit(kind, (-0.5 - 4.0, 3.0, 0.7), (2.0, 0, 0), centre, dims, 1.1)
  np.testing.assert_allclose([t, *n], [(4.0 - r) / 2, -1, 0, 0], atol=1e-9)
  t, n = _hit(kind, (-0.5 + 0.3, 3.0, 2.0), (0, 0, -1), centre, dims, 1.1)
  np.testing.assert_allclose([t, *n], [2.0 - h, 0, 0, 1], atol=1e-9)
  t, _ = _hit(kind, (-0.5 - 4.0, 3.0, h + 0.01), (1.0, 0, 0), centre, dims, 0.0)
  assert t == np.inf


def test_cone_side_slope():
  centre, r, h, z = np.array([0.0, 5.0]), 0.6, 1.5, 0.5
  kind = scenes.SHAPES.index("cone")
  t, n = _hit(kind, (0.0, 1.0, z), (0, 1.0, 0), centre, (r, r, h), 0.4)
  np.testing.assert_allclose(t, 4.0 - r * (1 - z / h), rtol=1e-9)
  # The side's outward normal is perpendicular to the slant (r, -h).
  np.testing.assert_allclose(n, np.array([0, -h, r]) / math.hypot(h, r), atol=1e-9)
  t, _ = _hit(kind, (0.0, 1.0, h + 0.01), (0, 1.0, 0), centre, (r, r, h), 0.4)
  assert t == np.inf


def test_shadow_darkens_the_ground_behind_a_box():
  pitch, h, size = math.radians(25.0), 1.7, 48
  box = (0, (0.0, 4.5), (0.3, 0.3, 1.2), 0.0)
  scene = _scene(h, pitch, [box])
  light = np.array([0.3, 0.8, 0.6]) / np.linalg.norm([0.3, 0.8, 0.6])
  scene = scene._replace(light=light[None])
  image = scenes.render(scene, size, size)["image"][0].astype(float).sum(-1)
  # The shadow of the top centre, and a ground point beside it (same depth).
  shadow = np.array([0.0, 4.5, 1.2]) - 1.2 / light[2] * light
  rotation = _camera_to_world(pitch)
  f = (size / 2) / math.tan(math.radians(25.0))

  def pixel(point):
    x, y, z = (point - np.array([0.0, 0.0, h])) @ rotation
    return int(f * y / z + size / 2), int(f * x / z + size / 2)

  assert image[pixel(shadow)] < 0.6 * image[pixel(shadow + [1.5, 0, 0])]


# --- Generated splits -----------------------------------------------------------


def test_generation_is_deterministic(train):
  again = scenes.generate(OPTIONS, "train")
  for key in train:
    np.testing.assert_array_equal(train[key], again[key])
  other_seed = scenes.generate(dict(OPTIONS, seed=1), "train")
  assert not np.array_equal(train["image"], other_seed["image"])
  other_split = scenes.generate(dict(OPTIONS, num_validation=16), "validation")
  assert not np.array_equal(train["depth"], other_split["depth"])


def test_record_shapes_and_dtypes(train):
  assert train["image"].shape == (16, 24, 24, 3) and train["image"].dtype == np.uint8
  assert train["segmentation"].shape == (16, 24, 24)
  assert train["segmentation"].dtype == np.int32
  assert train["depth"].shape == (16, 24, 24) and train["depth"].dtype == np.float32
  assert train["normals"].shape == (16, 24, 24, 3)
  assert train["normals"].dtype == np.float32
  wide = scenes.generate(dict(OPTIONS, image_size=12, image_width=20,
                              num_test=2), "test")
  assert wide["image"].shape == wide["normals"].shape == (2, 12, 20, 3)
  assert wide["segmentation"].shape == wide["depth"].shape == (2, 12, 20)


def test_missing_pixels_agree_across_tasks(train):
  missing = train["segmentation"] == -1
  assert missing.any() and not missing.all()
  np.testing.assert_array_equal(train["depth"] == 0, missing)
  np.testing.assert_array_equal(np.all(train["normals"] == 0, -1), missing)
  assert train["depth"].max() <= 10.0
  length = np.linalg.norm(train["normals"].astype(np.float64), axis=-1)
  np.testing.assert_allclose(length[~missing], 1.0, atol=1e-5)


def test_every_class_occurs(train):
  counts = np.bincount(train["segmentation"].ravel() + 1)
  assert counts.shape == (1 + len(scenes.SHAPES) + 1,) and np.all(counts > 0)
  two = scenes.generate(dict(OPTIONS, num_shapes=2), "train")
  assert set(np.unique(two["segmentation"])) == {-1, 0, 1, 2}
  assert scenes.tasks(dict(OPTIONS, num_shapes=2))["segmentation"]["num_classes"] == 3


def test_normals_face_the_camera(train):
  rays = _camera_rays(24, 24)
  opencv = train["normals"].astype(np.float64) * np.array([1.0, 1.0, -1.0])
  facing = np.sum(opencv * rays, -1)
  valid = train["segmentation"] >= 0
  assert np.all(facing[valid] < 0)


def test_ground_points_lie_on_the_plane_of_their_normal(train):
  """Back-projected ground pixels X = depth * ray satisfy n . X = -h, one
  normal n and one camera height h in [1.4, 2] per image."""
  rays = _camera_rays(24, 24)
  for i in range(len(train["depth"])):
    ground = train["segmentation"][i] == 0
    points = train["depth"][i][ground].astype(np.float64)[:, None] * rays[ground]
    normals = train["normals"][i][ground].astype(np.float64) * [1.0, 1.0, -1.0]
    np.testing.assert_allclose(normals, np.broadcast_to(normals[0], normals.shape),
                               atol=1e-6)
    offset = points @ normals[0]
    np.testing.assert_allclose(offset, offset[0], atol=1e-4)
    assert 1.4 <= -offset[0] <= 2.0


def test_images_depict_the_scene(train):
  image = train["image"].astype(np.float64)
  assert image.std() > 20
  # Objects are coloured independently of their class: their mean colours
  # vary widely, and the sky (missing, above the horizon) is bright.
  objects = train["segmentation"] >= 1
  assert image[objects].std(0).min() > 20


def test_bad_options_raise():
  for key, value in (("image_size", 4), ("image_width", 4), ("num_shapes", 5),
                     ("num_shapes", 0), ("min_objects", 0), ("num_test", 0)):
    with pytest.raises(ValueError, match=key):
      scenes.generate(dict(OPTIONS, **{key: value}), "test")
  with pytest.raises(ValueError, match="max_objects"):
    scenes.generate(dict(OPTIONS, min_objects=3, max_objects=2), "test")
  with pytest.raises(ValueError, match="image_width"):
    data.input_shape({"name": "scenes", "image_width": 4})


# --- The builder and the pipeline ---------------------------------------------


@pytest.fixture(scope="module")
def scenes_config(data_dir):
  return {"name": "scenes", "data_dir": data_dir, "image_size": 16,
          "num_train": 8, "num_validation": 6, "num_test": 5}


def test_build_gives_dense_batches(scenes_config):
  assert data.input_shape(scenes_config) == (16, 16, 3)
  assert sorted(data.dataset_tasks(scenes_config)) == ["depth", "normals",
                                                       "segmentation"]
  sizes = {s: data.num_examples(scenes_config, s)
           for s in ("train", "validation", "test")}
  assert sizes == {"train": 8, "validation": 6, "test": 5}
  batch = next(data.build(scenes_config, "validation", batch_size=4, seed=0,
                          shuffle=False, drop_remainder=True))
  assert batch["inputs"].shape == (4, 16, 16, 3)
  assert batch["inputs"].dtype == np.float32 and batch["inputs"].max() <= 1
  targets = batch["targets"]
  assert targets["segmentation"].shape == (4, 16, 16)
  assert targets["segmentation"].dtype == np.int32
  assert targets["depth"].shape == (4, 16, 16)
  assert targets["normals"].shape == (4, 16, 16, 3)
  assert all(m.all() for m in batch["mask"].values())
  options = data.base.resolve_options(data.get_spec("scenes"), scenes_config)
  expected = scenes.generate(options, "validation")
  np.testing.assert_array_equal(targets["depth"], expected["depth"][:4])
  np.testing.assert_allclose(batch["inputs"],
                             expected["image"][:4] / 255, rtol=1e-6)


def _record_files(root):
  found = {}
  for folder, _, files in os.walk(root):
    for name in files:
      if ".array_record" in name:
        with open(os.path.join(folder, name), "rb") as handle:
          found[name] = handle.read()
  return found


def test_same_options_give_byte_identical_records(tmp_path):
  config = {"name": "scenes", "image_size": 12, "image_width": 16,
            "num_train": 4, "num_validation": 2, "num_test": 2}
  for folder in ("a", "b"):
    data.num_examples(dict(config, data_dir=str(tmp_path / folder)), "train")
  first, second = _record_files(tmp_path / "a"), _record_files(tmp_path / "b")
  assert len(first) == 3 and first == second
