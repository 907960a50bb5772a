r"""What circuit noise costs a trained head over training seeds: `<out>.md`, `<out>_sweep.csv` and
`<out>_device.csv` from the runs' `experiments.robustness` and `experiments.device_eval` outputs
(see qcnn_jax/studies/noise_report.py).

  python -m experiments.noise_report --runs=runs/quick_s0,runs/quick_s1,runs/quick_s2 \
      --out=results/robustness/quick_inpath/noise --title="Noise on README command 1's hybrid"
  python -m experiments.noise_report --runs=runs/quick_s0,runs/quick_s1,runs/quick_s2 --sweep=false \
      --out=results/robustness/quick_inpath/device --title="README command 1's hybrid on simulated devices"
"""

from absl import flags

from experiments import cli
from qcnn_jax.studies import noise_report
from qcnn_jax.training import train

flags.DEFINE_list("runs", None, "Workdirs (training seeds of one model).", required=True)
flags.DEFINE_string("out", None, "Output path prefix.", required=True)
flags.DEFINE_string("title", "Circuit noise", "Report title.")
flags.DEFINE_float("tolerance", 0.01, "AUC distance from exact that counts as unchanged.")
flags.DEFINE_bool("sweep", True, "Include the runs' robustness.csv sweep.")
flags.DEFINE_bool("device", True, "Include the runs' device_eval outputs.")
flags.DEFINE_integer("num_resamples", 2000, "Bootstrap resamples of the test examples.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  try:
    sweep = noise_report.sweep_rows(FLAGS.runs) if FLAGS.sweep else []
    device = noise_report.device_rows(FLAGS.runs, FLAGS.num_resamples, tolerance=FLAGS.tolerance) if FLAGS.device else []
  except ValueError as e:
    raise train.ConfigError(str(e)) from e
  for kind, value in noise_report.tolerances(sweep, FLAGS.tolerance).items():
    print(f"{kind:>18}: within {FLAGS.tolerance:g} AUC of exact at {value}")
  for sentence in noise_report.device_claims(device, FLAGS.tolerance) if device else []:
    print(sentence)
  print("wrote", *noise_report.write(FLAGS.out, FLAGS.title, FLAGS.runs, sweep, device, FLAGS.tolerance))


if __name__ == "__main__":
  cli.run(main)
