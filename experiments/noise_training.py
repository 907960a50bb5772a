r"""Does training under a device's calibrated noise change what the model scores on that device?
Compares runs trained under `model_options.noise` with exact-trained runs of the same seeds, both
evaluated by `experiments.device_eval` in the same settings (qcnn_jax/studies/noise_training.py).

The study of README command 1's hybrid on fake_sherbrooke (its exact-trained runs' device outputs
are results/robustness/quick_inpath/device/seed<k>):

  python -m experiments.device_eval --workdir=runs/quick_s0 --backends=fake_sherbrooke --layout_seeds=0 \
      --noise_model_out=results/robustness/quick_inpath/noise_training/noise_fake_sherbrooke.json
  python -m experiments.train --config=experiments/configs/quick.py --workdir=runs/quick_noisy_s0 --config.seed=0 \
      --config.model_options.noise=results/robustness/quick_inpath/noise_training/noise_fake_sherbrooke.json
  python -m experiments.device_eval --workdir=runs/quick_noisy_s0 --backends=fake_sherbrooke,fake_torino \
      --layout_seeds=0 --unscheduled_layouts=0 --noise=device --shots=0,1000,4000 \
      --out=results/robustness/quick_inpath/noise_training/seed0
  (the same for seeds 1 and 2, copying each run's config.json and summary.json beside its outputs), then
  python -m experiments.noise_training --noisy=results/robustness/quick_inpath/noise_training/seed0,...seed2 \
      --exact=results/robustness/quick_inpath/device/seed0,...seed2 --out=results/robustness/quick_inpath/noise_training/report
"""

import json
import os

from absl import flags

from experiments import cli
from qcnn_jax.studies import noise_training
from qcnn_jax.training import train

flags.DEFINE_list("noisy", None, "device_eval output folders of the noise-trained runs (with their config.json).",
                  required=True)
flags.DEFINE_list("exact", None, "device_eval output folders of the exact-trained runs, in the same seed order.",
                  required=True)
flags.DEFINE_string("out", None, "Output path prefix (<out>.md, <out>.csv).", required=True)
flags.DEFINE_string("title", "Training under a device's calibrated noise", "Report title.")
flags.DEFINE_integer("num_resamples", 10_000, "Bootstrap resamples of the test examples.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  try:
    with open(os.path.join(FLAGS.noisy[0], "config.json"), encoding="utf-8") as f:
      noise_file = json.load(f)["model_options"]["noise"]
    rows = noise_training.comparison_rows(FLAGS.noisy, FLAGS.exact, FLAGS.num_resamples)
  except (OSError, KeyError, ValueError) as e:
    raise train.ConfigError(f"{e}: give device_eval output folders holding device_eval.csv, "
                            "device_eval_readouts.npz and the run's config.json") from e
  for sentence in noise_training.in_short(rows):
    print(sentence)
  print("wrote", *noise_training.write(FLAGS.out, FLAGS.title, rows, FLAGS.noisy, FLAGS.exact, noise_file))


if __name__ == "__main__":
  cli.run(main)
