"""Reads TensorBoard event files without TensorFlow or tensorboard.

Event files are TFRecord files: per record a little-endian uint64 length,
its masked CRC32C, the serialized ``Event`` proto and the data's masked
CRC32C. tensorboardX ships the proto classes and the CRC.
"""

import glob
import os
import struct

from tensorboardX.proto import event_pb2
from tensorboardX.record_writer import masked_crc32c


def records(path: str):
  """The serialized records of one TFRecord file, CRCs checked."""
  with open(path, "rb") as f:
    while True:
      header = f.read(8)
      if not header:
        return
      (length,) = struct.unpack("<Q", header)
      (header_crc,) = struct.unpack("<I", f.read(4))
      assert header_crc == masked_crc32c(header), f"bad length CRC in {path}"
      data = f.read(length)
      (data_crc,) = struct.unpack("<I", f.read(4))
      assert data_crc == masked_crc32c(data), f"bad data CRC in {path}"
      yield data


def event_files(logdir: str) -> list[str]:
  return sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*")))


def scalars(logdir: str) -> dict[str, dict[int, float]]:
  """``{tag: {step: value}}`` over all event files directly in ``logdir``."""
  out: dict = {}
  for path in event_files(logdir):
    for data in records(path):
      event = event_pb2.Event.FromString(data)
      for value in event.summary.value:
        if value.HasField("tensor"):
          tensor = value.tensor
          number = (list(tensor.float_val) or list(tensor.double_val))[0]
        else:
          number = value.simple_value
        out.setdefault(value.tag, {})[int(event.step)] = float(number)
  return out
