r"""Test metrics of a trained run under finite shots, depolarizing and amplitude-damping noise,
readout error, and MedMNIST-C image corruptions: `<workdir>/robustness.csv`,
`<workdir>/robustness_predictions.npz` (every setting's test logits, for
`experiments.robustness_compare`) and plots under `<workdir>/plots/`.

  python -m experiments.robustness --workdir=runs/quick
  python -m experiments.robustness --workdir=runs/quick --shots=100,1000 --shot_seeds=5 --noise_p=1e-3,1e-2
  python -m experiments.robustness --workdir=runs/breast_resnet50 --corruptions=medmnistc
  python -m experiments.robustness --workdir=runs/quick --corruptions=pixelate,contrast_down --severities=1,5 \
      --nocircuit

Circuit settings need a quantum run; corruptions work for any run (they need the optional
`medmnistc` package: see qcnn_jax/data/corruptions.py).
"""

import time

from absl import flags, logging

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.studies import robustness
from qcnn_jax.training import train

flags.DEFINE_string("workdir", None, "A run trained by experiments.train.", required=True)
cli.require_existing_workdir()
flags.DEFINE_bool("circuit", True, "Evaluate the circuit under shots, noise and readout error (quantum runs).")
flags.DEFINE_list("shots", ["100", "1000", "10000"], "Shots per example.")
flags.DEFINE_integer("shot_seeds", 3, "Sampling seeds per shot count.")
flags.DEFINE_list("noise_p", ["1e-4", "1e-3", "1e-2", "5e-2"], "Noise probabilities (both channels).")
flags.DEFINE_list("readout_eps", ["1e-3", "1e-2", "5e-2"], "Readout bit-flip probabilities.")
flags.DEFINE_list("corruptions", [], "MedMNIST-C corruptions of the test images: 'medmnistc' for every one "
                  "of the run's dataset, or registry names (e.g. pixelate,motion_blur); empty: none.")
flags.DEFINE_list("severities", ["1", "2", "3", "4", "5"], "MedMNIST-C severities.")
flags.DEFINE_integer("corruption_seeds", 1, "Seeds per corruption and severity (random corruptions differ).")
flags.DEFINE_integer("corruption_size", 224, "Side (px) the images are corrupted at (MedMNIST-C's design "
                     "size), then resized back; 0: at the stored size.")
flags.DEFINE_string("split", "test", "Split to evaluate.")
FLAGS = flags.FLAGS


def settings_for(trainer: train.Trainer) -> tuple[list[robustness.Setting], dict[str, str]]:
  """The settings the flags ask for, and the corruptions skipped (name: why)."""
  settings = [robustness.Setting("exact")]
  if trainer.has_circuit and FLAGS.circuit:
    settings += robustness.default_settings([int(n) for n in FLAGS.shots], FLAGS.shot_seeds,
                                            [float(p) for p in FLAGS.noise_p],
                                            [float(e) for e in FLAGS.readout_eps])[1:]
  elif FLAGS.circuit and not FLAGS.corruptions:
    raise train.ConfigError(f"{FLAGS.workdir} is a {trainer.config.model} run: it has no circuit; pass "
                            "--corruptions=medmnistc to evaluate it on corrupted images")
  skipped = {}
  if FLAGS.corruptions:
    names = None if FLAGS.corruptions == ["medmnistc"] else FLAGS.corruptions
    try:
      corrupted, skipped = robustness.corruption_settings(trainer.config.dataset, names,
                                                          [int(s) for s in FLAGS.severities], FLAGS.corruption_seeds)
    except ValueError as e:
      raise train.ConfigError(str(e)) from e
    settings += corrupted
    for name, why in skipped.items():
      logging.warning("skipping corruption %s: %s", name, why)
  return settings, skipped


def main(argv):
  del argv
  runtime.quiet_library_logs()
  trainer, state, _, _ = train.load_run(FLAGS.workdir)
  settings, skipped = settings_for(trainer)
  results, outputs = [], []
  with runtime.progress_bar(len(settings), unit="setting", desc="robustness") as bar:
    for setting in settings:
      start = time.time()
      report, out = robustness.evaluate(trainer, state, setting, FLAGS.split, FLAGS.corruption_size or None)
      results.append((setting, report, time.time() - start))
      outputs.append(out)
      logging.info("%s %s seed %d: AUC %.4f ACC %.4f (%.1f s)", setting.kind, setting.label, setting.seed,
                   report["auc"], report["acc"], time.time() - start)
      bar.update()
  rows = robustness.aggregate(results, skipped)
  csv_path = robustness.write_csv(rows, f"{FLAGS.workdir}/robustness.csv")
  robustness.write_predictions(settings, outputs, trainer.dataset.task, f"{FLAGS.workdir}/robustness_predictions.npz")
  if any(s.kind in robustness.CIRCUIT_KINDS for s in settings):
    robustness.plot(rows, f"{FLAGS.workdir}/plots/robustness.png")
  if any(s.kind == "corruption" for s in settings):
    robustness.plot_corruptions(rows, f"{FLAGS.workdir}/plots/corruptions.png")
  for row in rows:
    metrics = f"AUC {row['test_auc']:.4f}  ACC {row['test_acc']:.4f}" if row["n_seeds"] else row["note"]
    print(f"{row['kind']:>18} {row['setting']:>22}  {metrics}")
  print(f"wrote {csv_path}")


if __name__ == "__main__":
  cli.run(main)
