"""Multi-host start-up: ``jax.distributed.initialize`` from config or environment.

Every process runs the same command; each feeds its slice of the global batch
(the data pipeline shards by ``jax.process_index()``), and the step's arrays
span the devices of all processes. Settings, in order of precedence:

* ``config.distributed``: ``coordinator_address`` ("host:port"),
  ``num_processes``, ``process_id``, ``local_device_ids`` (optional);
* environment: ``MTL_JAX_COORDINATOR``, ``MTL_JAX_NUM_PROCESSES``,
  ``MTL_JAX_PROCESS_ID``;
* ``config.distributed.auto=True``: ``jax.distributed.initialize()`` with no
  arguments (cluster auto-detection on Cloud TPU, SLURM, Open MPI, ...).

On CPU, processes exchange data through gloo collectives.
"""

from __future__ import annotations

import os

import jax

_ENV = {"coordinator_address": "MTL_JAX_COORDINATOR",
        "num_processes": "MTL_JAX_NUM_PROCESSES",
        "process_id": "MTL_JAX_PROCESS_ID"}


def settings(config=None) -> dict:
  """The initialize() arguments requested by config or environment ({} = none)."""
  section = dict((config or {}).get("distributed", None) or {}) if config is not None else {}
  if section.get("auto"):
    return {"auto": True}
  found = {k: section.get(k) for k in _ENV if section.get(k) is not None}
  for key, env in _ENV.items():
    if key not in found and os.environ.get(env):
      found[key] = os.environ[env]
  if not found:
    return {}
  missing = [k for k in _ENV if k not in found]
  if missing:
    raise ValueError(f"Multi-host settings are incomplete: missing {missing} (set them in "
                     f"config.distributed or as {[_ENV[k] for k in missing]}).")
  out = {"coordinator_address": str(found["coordinator_address"]),
         "num_processes": int(found["num_processes"]),
         "process_id": int(found["process_id"])}
  if section.get("local_device_ids") is not None:
    out["local_device_ids"] = list(section["local_device_ids"])
  return out


def initialize(config=None) -> bool:
  """Starts the multi-process runtime if asked to; returns whether it did."""
  args = settings(config)
  if not args:
    return False
  # Only affects the CPU backend; must be set before any backend starts.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if args.pop("auto", False):
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(**args)
  return True
