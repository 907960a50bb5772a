r"""A trained run's test AUC and ACC on simulated IBM devices: each test (and validation) example's
circuit transpiled for fake backends (their coupling map, basis and calibration snapshot) with
several transpiler seeds (layouts), scheduled as late as possible so idle qubits relax (the first
layout also unscheduled), its exact outcome distribution under the backend's noise model computed,
and shots drawn from it over several sampling seeds; each sampling run's readout scored raw and
recalibrated (scale and offset fitted on the validation images' readouts against the readouts the
model was trained on: exact ones, or under its model_options.noise; no labels), beside the model's
own circuits on the same examples. Needs the optional extra: pip install -e ".[hardware]".

  python -m experiments.device_eval --workdir=runs/quick
  python -m experiments.device_eval --workdir=runs/quick --backends=fake_manila --layout_seeds=0 --limit=32

Writes <out>/device_eval.csv (one row per backend, layout seed, scheduled, noise source, shots,
sampling seed and recalibrated: test AUC and ACC, exact ones on the same examples, drops, fitted
readout scale and offset, routed depth and two-qubit gates, scheduled duration and idle time),
device_eval.json (what ran, where from), device_eval_readouts.npz (exact logits and every row's
logits under its key) and device_eval.png; <out> is the workdir unless --out is given.

With --noise_model_out=<file>.json it only writes the engine's calibrated noise model of the run's
circuit on the first backend and layout seed (qcnn_jax.models.quantum.noise_model), which a training
config names as its model option noise=<file>.json:

  python -m experiments.device_eval --workdir=runs/quick --backends=fake_torino --layout_seeds=0 \
      --noise_model_out=runs/quick/noise_fake_torino.json
"""

import dataclasses
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
flags.DEFINE_list("backends", list(device_eval.Plan.backends), "Fake backends of qiskit_ibm_runtime.fake_provider.")
flags.DEFINE_list("layout_seeds", [str(s) for s in device_eval.Plan.layout_seeds], "Transpiler seeds, one layout each.")
flags.DEFINE_integer("unscheduled_layouts", 1, "How many of the first layouts also run unscheduled (no idle relaxation).")
flags.DEFINE_list("noise", list(device_eval.Plan.sources), "Noise sources, one row each: "
                  + "; ".join(f"{k}: {v}" for k, v in device_eval.NOISE_SOURCES.items()))
flags.DEFINE_list("shots", [str(s) for s in device_eval.Plan.shots], "Shots per example (0: exact distribution).")
flags.DEFINE_integer("sampling_seeds", 10, "Sampling runs per finite shot count.")
flags.DEFINE_integer("limit", 0, "Evaluate the first N test examples (0: all).")
flags.DEFINE_integer("val_limit", 0, "Fit the recalibration on the first N validation examples (0: all).")
flags.DEFINE_string("out", None, "Folder for the outputs (default: the workdir).")
flags.DEFINE_string("noise_model_out", None, "Only write the engine's calibrated noise model (JSON) of the run's "
                    "circuit on the first backend and layout seed to this path.")
FLAGS = flags.FLAGS


def plan_from_flags() -> device_eval.Plan:
  """The Plan the flags name; a flag mistake raises ConfigError."""
  try:
    shots, seeds = [int(s) for s in FLAGS.shots], [int(s) for s in FLAGS.layout_seeds]
  except ValueError as e:
    raise train.ConfigError(f"--shots and --layout_seeds take integers: {e}") from None
  if not shots or min(shots) < 0 or not seeds or FLAGS.sampling_seeds < 1:
    raise train.ConfigError("--shots needs counts >= 0, --layout_seeds at least one seed, --sampling_seeds >= 1")
  unknown = [s for s in FLAGS.noise if s not in device_eval.NOISE_SOURCES]
  if unknown or not FLAGS.noise:
    raise train.ConfigError(f"--noise {','.join(unknown) or '(empty)'}: choose from {','.join(device_eval.NOISE_SOURCES)}")
  return device_eval.Plan(tuple(FLAGS.backends), tuple(seeds), FLAGS.unscheduled_layouts, tuple(FLAGS.noise),
                          tuple(shots), FLAGS.sampling_seeds)


def write_noise_model(plan: device_eval.Plan) -> None:
  """Writes --noise_model_out for the run's circuit, the plan's first backend and layout seed."""
  trainer, state, _, _ = train.load_run(FLAGS.workdir)
  spec = device_eval.examples(trainer, state, "val", limit=1).spec
  path = device_eval.write_noise_model(FLAGS.noise_model_out, plan.backends[0], spec, plan.layout_seeds[0])
  print(f"wrote {path} ({plan.backends[0]}, layout seed {plan.layout_seeds[0]}, {spec.n_qubits} qubits)")


def main(argv):
  del argv
  runtime.quiet_library_logs()
  device_eval.require_hardware_extra()
  plan = plan_from_flags()
  if FLAGS.noise_model_out:
    write_noise_model(plan)
    return
  start = time.time()
  devices = {name: device_eval.backend(name) for name in plan.backends}
  trainer, state, meta, selected = train.load_run(FLAGS.workdir)
  test = device_eval.examples(trainer, state, "test", FLAGS.limit)
  val = device_eval.examples(trainer, state, "val", FLAGS.val_limit)
  rows, arrays = device_eval.evaluate(trainer, state, test, val, plan)
  out = FLAGS.out or FLAGS.workdir
  csv_path = device_eval.write_csv(rows, os.path.join(out, "device_eval.csv"))
  np.savez_compressed(os.path.join(out, "device_eval_readouts.npz"), index=test.index, labels=test.labels,
                      task=trainer.dataset.task, **arrays)
  device_eval.plot(rows, os.path.join(out, "device_eval.png"))
  exported = device_eval.model_readout(test.exported_readout, test.spec)
  reports.write_json_atomic(os.path.join(out, "device_eval.json"), {
      "run": train.config_run_name(trainer.config), "model": trainer.config.model,
      "checkpoint_epoch": int(meta["epoch"]) + 1, "selected_checkpoint": selected, "split": "test",
      "calibration_split": "val", "n_calibration_examples": len(val.labels), "plan": dataclasses.asdict(plan),
      "calibrations": {name: str(d.properties().last_update_date if d.properties() else None)
                       for name, d in devices.items()},
      "n_examples": len(test.labels), "noise_sources": {s: device_eval.NOISE_SOURCES[s] for s in plan.sources},
      "max_abs_exported_vs_engine_readout": float(np.abs(exported - test.engine_readout).max()),
      "wall_time_s": time.time() - start, "hardware_versions": device_eval.hardware_versions(),
      **provenance.provenance(trainer.config.to_dict(), train.NON_RESULT_KEYS)})
  for row in rows:
    if row["shots"] == 0:
      print(f"{row['backend']:>16} layout {row['layout_seed']} {'ALAP' if row['scheduled'] else 'unscheduled':>11} "
            f"{row['noise']:>7} {'recal' if row['recalibrated'] else 'raw':>5}  AUC {row['test_auc']:.4f} "
            f"(exact {row['exact_test_auc']:.4f})  ACC {row['test_acc']:.4f} (exact {row['exact_test_acc']:.4f})")
  print(f"{time.time() - start:.0f} s in all; wrote {csv_path}")


if __name__ == "__main__":
  cli.run(main)
