r"""Gradient variance of the QCNN at random initialisation versus qubit count (barren-plateau check).

  python -m experiments.gradient_variance --n_qubits=4,6,8,10,12 --conv_unit=su4 --out=gradvar.json

One row per qubit count: var_first_conv (mean over the first conv layer's angles, the farthest
from the readout), var_last_conv, var_pool and var_all (mean over every angle) of dC/dtheta,
C = <Z> of the readout qubit, angles uniform in [0, 2 pi), inputs uniform in [0, pi) (angle_y).
"""

import time

import numpy as np
from absl import app, flags

from experiments import benchmarks
from qcnn_jax import runtime
from qcnn_jax.models.quantum import QCNNSpec, gradient_variance

flags.DEFINE_list("n_qubits", ["4", "6", "8", "10", "12"], "Circuit widths.")
flags.DEFINE_string("conv_unit", "su4", "Convolution unit.")
flags.DEFINE_string("encoding", "angle_y", "Encoding.")
flags.DEFINE_integer("num_samples", 256, "Random circuits per width.")
flags.DEFINE_integer("seed", 0, "PRNG seed.")
flags.DEFINE_string("out", None, "JSON-lines file for the rows.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.enable_compilation_cache()
  for n in map(int, FLAGS.n_qubits):
    start = time.perf_counter()
    var = gradient_variance(QCNNSpec(n, FLAGS.conv_unit, FLAGS.encoding), FLAGS.num_samples, FLAGS.seed)
    row = {"n_qubits": n, "conv_unit": FLAGS.conv_unit, "encoding": FLAGS.encoding, "num_samples": FLAGS.num_samples,
           "var_first_conv": float(var["conv"][0].mean()), "var_last_conv": float(var["conv"][-1].mean()),
           "var_pool": float(var["pool"].mean()),
           "var_all": float(np.concatenate([v.ravel() for v in var.values()]).mean()),
           "seconds": time.perf_counter() - start}
    print(f"n={n:2d}: Var[dC/dθ] first conv {row['var_first_conv']:.4f}, last conv {row['var_last_conv']:.4f}, "
          f"pool {row['var_pool']:.4f}, all {row['var_all']:.4f}  ({row['seconds']:.0f} s)", flush=True)
    benchmarks.write_rows(FLAGS.out, [row])


if __name__ == "__main__":
  app.run(main)
