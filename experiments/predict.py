r"""Predictions of a trained run for image files: one CSV row per file with every class's probability
and the predicted label (binary tasks: p > 0.5, the threshold of the run's ACC).

  python -m experiments.predict --workdir=runs/my_images --inputs=new_scans/ 'more/*.png' --out=predictions.csv

Inputs are files, folders (every file below them) or quoted glob patterns: PNG, JPEG, TIFF, BMP, .npy
or DICOM. Images of another size or channel count than the run's are converted, with a warning; a
file that cannot be read gets a row with its error and the others go on.
"""

import sys

from absl import flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.evaluation import reports
from qcnn_jax.serving import predict

flags.DEFINE_string("workdir", None, "A run trained by experiments.train.", required=True)
flags.DEFINE_multi_string("inputs", None, "Image files, folders or glob patterns (several: repeat the flag, or "
                          "list them after --inputs).", required=True)
flags.DEFINE_string("out", "predictions.csv", "CSV file to write.")
FLAGS = flags.FLAGS


def main(argv):
  runtime.quiet_library_logs()
  runtime.enable_compilation_cache()  # the run's own compiled evaluation step is reused
  rows, columns, notes = predict.predict_files(FLAGS.workdir, FLAGS.inputs + argv[1:])
  for note in notes:
    print(f"warning: {note}", file=sys.stderr)
  reports.write_text_atomic(FLAGS.out, reports.csv_text(rows, columns))
  failed = [row for row in rows if row["error"]]
  for row in failed:
    print(f"warning: {row['path']} cannot be read ({row['error']}): its row holds the error", file=sys.stderr)
  print(f"{FLAGS.out}: {len(rows) - len(failed)} image(s) predicted, {len(failed)} unreadable")


if __name__ == "__main__":
  cli.run(main)
