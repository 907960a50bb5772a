"""One process of the two-process localhost test in test_parallel.py (not collected by pytest).

Usage: python multihost_worker.py PROCESS_ID PORT
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from qcnn_jax import parallel


def main(process_id: int, port: int) -> None:
  parallel.initialize_distributed(f"localhost:{port}", 2, process_id)
  mesh = parallel.data_mesh()
  batch = parallel.put_batch({"x": np.arange(8 * 3, dtype=np.float32).reshape(8, 3)}, mesh)
  weights = parallel.put_replicated(jnp.asarray([1.0, 10.0, 100.0]), mesh)
  total = jax.jit(lambda b, w: (b["x"] @ w).sum())(batch, weights)
  print(f"RESULT {process_id} {jax.process_count()} {jax.device_count()} {float(total)}", flush=True)


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]))
