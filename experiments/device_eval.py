r"""A trained run's test AUC and ACC on a simulated IBM device: each test example's circuit
transpiled for a fake backend (its coupling map, basis and calibration snapshot) and sampled with
the backend's noise model, all sources together and each alone, beside exact circuits on the same
examples. Needs the optional extra: pip install -e ".[hardware]".

  python -m experiments.device_eval --workdir=runs/quick --backend=fake_sherbrooke --shots=4000
  python -m experiments.device_eval --workdir=runs/quick --limit=32 --noise=device,ideal

Writes <out>/device_eval.csv (one row per noise source: backend, shots, n_examples, test_auc,
test_acc, exact_test_auc, exact_test_acc, drops, routed depth and two-qubit gate count, mean and
max, seconds), device_eval.json (what ran, where from), device_eval_readouts.npz (every example's
readout and logits per source, exact included) and device_eval.png; <out> is the workdir unless --out is given.
"""

import os
import time

import numpy as np
from absl import flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.evaluation import provenance, reports
from qcnn_jax.studies import device_eval
from qcnn_jax.training import train

flags.DEFINE_string("workdir", None, "A run trained by experiments.train.", required=True)
cli.require_existing_workdir()
flags.DEFINE_string("backend", "fake_sherbrooke", "Fake backend of qiskit_ibm_runtime.fake_provider.")
flags.DEFINE_integer("shots", 4000, "Shots per example.")
flags.DEFINE_integer("limit", 0, "Evaluate the first N examples of the split (0: all).")
flags.DEFINE_list("noise", list(device_eval.NOISE_SOURCES), "Noise sources, one row each: "
                  + "; ".join(f"{k}: {v}" for k, v in device_eval.NOISE_SOURCES.items()))
flags.DEFINE_string("split", "test", "Split to evaluate.")
flags.DEFINE_integer("seed", 0, "Seed of the transpiler and the simulator.")
flags.DEFINE_string("out", None, "Folder for the outputs (default: the workdir).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  device_eval.require_hardware_extra()
  if FLAGS.shots < 1:
    raise train.ConfigError(f"--shots must be at least 1, got {FLAGS.shots}")
  unknown = [s for s in FLAGS.noise if s not in device_eval.NOISE_SOURCES]
  if unknown or not FLAGS.noise:
    raise train.ConfigError(f"--noise {','.join(unknown) or '(empty)'}: choose from {','.join(device_eval.NOISE_SOURCES)}")
  start = time.time()
  device = device_eval.backend(FLAGS.backend)
  trainer, state, meta, selected = train.load_run(FLAGS.workdir)
  found = device_eval.examples(trainer, state, FLAGS.split, FLAGS.limit)
  rows, readouts = device_eval.evaluate(trainer, state, device, found, FLAGS.noise, FLAGS.shots, FLAGS.seed)
  out = FLAGS.out or FLAGS.workdir
  csv_path = device_eval.write_csv(rows, os.path.join(out, "device_eval.csv"))
  np.savez_compressed(os.path.join(out, "device_eval_readouts.npz"), index=found.index, labels=found.labels,
                      task=trainer.dataset.task, **readouts)
  device_eval.plot(rows, os.path.join(out, "device_eval.png"))
  calibration = device.properties().last_update_date if device.properties() else None
  reports.write_json_atomic(os.path.join(out, "device_eval.json"), {
      "run": train.config_run_name(trainer.config), "model": trainer.config.model,
      "checkpoint_epoch": int(meta["epoch"]) + 1, "selected_checkpoint": selected, "split": FLAGS.split,
      "backend": device.name, "calibration": str(calibration), "shots": FLAGS.shots, "seed": FLAGS.seed,
      "n_examples": len(found.labels), "noise_sources": {s: device_eval.NOISE_SOURCES[s] for s in FLAGS.noise},
      "max_abs_exported_vs_engine_readout": float(np.abs(readouts["exact"] - found.engine_readout).max()),
      "wall_time_s": time.time() - start, "hardware_versions": device_eval.hardware_versions(),
      **provenance.provenance(trainer.config.to_dict(), train.NON_RESULT_KEYS)})
  for row in rows:
    print(f"{row['noise']:>11}  AUC {row['test_auc']:.4f} (exact {row['exact_test_auc']:.4f})  "
          f"ACC {row['test_acc']:.4f} (exact {row['exact_test_acc']:.4f})  {row['sample_s']:.1f} s")
  print(f"routed on {device.name}: depth {rows[0]['depth_mean']:.0f} (max {rows[0]['depth_max']}), "
        f"{rows[0]['gates_2q_mean']:.0f} two-qubit gates (max {rows[0]['gates_2q_max']}); "
        f"{time.time() - start:.0f} s in all; wrote {csv_path}")


if __name__ == "__main__":
  cli.run(main)
