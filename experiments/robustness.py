r"""Test metrics of a trained run under finite shots, depolarizing and amplitude-damping noise and
readout error: `<workdir>/robustness.csv` and `<workdir>/plots/robustness.png`.

  python -m experiments.robustness --workdir=runs/quick
  python -m experiments.robustness --workdir=runs/quick --shots=100,1000 --shot_seeds=5 --noise_p=1e-3,1e-2
"""

import time

from absl import flags, logging

from experiments import cli
from qcnn_jax import robustness, runtime, train

flags.DEFINE_string("workdir", None, "A quantum run trained by experiments.train.", required=True)
flags.DEFINE_list("shots", ["100", "1000", "10000"], "Shots per example.")
flags.DEFINE_integer("shot_seeds", 3, "Sampling seeds per shot count.")
flags.DEFINE_list("noise_p", ["1e-4", "1e-3", "1e-2", "5e-2"], "Noise probabilities (both channels).")
flags.DEFINE_list("readout_eps", ["1e-3", "1e-2", "5e-2"], "Readout bit-flip probabilities.")
flags.DEFINE_string("split", "test", "Split to evaluate.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  trainer, state, _, _ = train.load_run(FLAGS.workdir)
  if not trainer.has_circuit:
    raise train.ConfigError(f"{FLAGS.workdir} is a {trainer.config.model} run: it has no circuit")
  settings = robustness.default_settings([int(n) for n in FLAGS.shots], FLAGS.shot_seeds,
                                         [float(p) for p in FLAGS.noise_p], [float(e) for e in FLAGS.readout_eps])
  results = []
  with runtime.progress_bar(len(settings), unit="setting", desc="robustness") as bar:
    for setting in settings:
      start = time.time()
      report = robustness.evaluate(trainer, state, setting, FLAGS.split)
      results.append((setting, report, time.time() - start))
      logging.info("%s %s seed %d: AUC %.4f ACC %.4f (%.1f s)", setting.kind, setting.value, setting.seed,
                   report["auc"], report["acc"], time.time() - start)
      bar.update()
  rows = robustness.aggregate(results)
  csv_path = robustness.write_csv(rows, f"{FLAGS.workdir}/robustness.csv")
  robustness.plot(rows, f"{FLAGS.workdir}/plots/robustness.png")
  for row in rows:
    print(f"{row['kind']:>18} {row['setting']!s:>8}  AUC {row['test_auc']:.4f}  ACC {row['test_acc']:.4f}")
  print(f"wrote {csv_path}")


if __name__ == "__main__":
  cli.run(main)
