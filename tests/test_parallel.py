"""Data parallelism: batch placement on a mesh, and two JAX processes on localhost."""

import os
import pathlib
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qcnn_jax import parallel


def test_put_batch_splits_the_batch_over_all_devices():
  mesh = parallel.data_mesh()
  batch = parallel.put_batch({"x": np.arange(8, dtype=np.float32)}, mesh)
  assert len(batch["x"].addressable_shards) == jax.device_count() == 4
  assert [s.data.shape for s in batch["x"].addressable_shards] == [(2,)] * 4
  np.testing.assert_array_equal(np.asarray(batch["x"]), np.arange(8))
  with pytest.raises(ValueError, match="not divisible by the 4 devices"):
    parallel.check_batch_size(6, mesh)


def test_two_processes_on_localhost_share_one_global_batch():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
  worker = pathlib.Path(__file__).with_name("multihost_worker.py")
  procs = [subprocess.Popen([sys.executable, str(worker), str(i), str(port)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(2)]
  outputs = [p.communicate(timeout=240)[0] for p in procs]
  x = np.arange(24, dtype=np.float64).reshape(8, 3)
  expected = float((x @ np.array([1.0, 10.0, 100.0])).sum())
  for i, (proc, out) in enumerate(zip(procs, outputs)):
    assert proc.returncode == 0, out[-2000:]
    assert f"RESULT {i} 2 4 {expected}" in out, out[-2000:]
