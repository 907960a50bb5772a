r"""Runs a grid of trainings (datasets × models × seeds) and writes its results report.

  python -m experiments.grid --config=experiments/configs/grid_medmnist.py --workdir=runs/grid_medmnist
  python -m experiments.grid --config=... --workdir=... --datasets=breastmnist --seeds=0,1
  python -m experiments.grid --config=... --workdir=... --only_report

Finished runs (those with summary.json) are skipped and a partial run resumes from its
checkpoint, so rerunning the same command continues a killed grid. The subset flags choose what
to train; `{workdir}/results.md` and `results.csv` always list every run of the grid.

Runs that survive a new machine: with `--records=results/<grid>/runs` every run that finishes is
copied (config, summary, metrics, val/test predictions; no checkpoints) to
`{records}/{dataset}/{model}/seed{k}/`; commit that folder. On a fresh clone the same command
counts recorded runs (made with the same config) as finished, trains only the others and builds
the report from records and workdirs alike. `--record_finished` records the finished runs of an
existing grid directory without training. `--dry_run` prints the runs left to train and their
estimated hours on this machine. A run whose committed record (a git-tracked file) it would replace
is refused unless `--overwrite_records` is given.
"""

import os

from absl import flags, logging
from ml_collections import config_flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.studies import grid

config_flags.DEFINE_config_file("config", None, "Grid config (experiments/configs/grid_*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Grid directory: one workdir per run, results.md, results.csv.", required=True)
flags.DEFINE_bool("only_report", False, "Rebuild the report from finished runs without training.")
flags.DEFINE_list("datasets", None, "Train only these datasets of the grid (default: all); with --only_report, "
                  "report only these.")
flags.DEFINE_list("models", None, "Train only these models of the grid (default: all).")
flags.DEFINE_list("seeds", None, "Train only these seeds of the grid (default: all).")
flags.DEFINE_string("records", None, "Folder of committed run records (e.g. results/grid_hassan_cpu/runs): "
                    "finished runs are copied there and recorded runs count as finished.")
flags.DEFINE_bool("record_finished", False, "Copy every finished run of --workdir into --records and exit.")
flags.DEFINE_bool("dry_run", False, "Print the runs left to train with their estimated hours (this machine's "
                  "speed, measured) and exit without training.")
flags.DEFINE_bool("overwrite_records", False, "Let trained runs replace committed (git-tracked) records in --records.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  failures = {}
  seeds = [int(s) for s in FLAGS.seeds] if FLAGS.seeds else None
  config = grid.config_for_report(FLAGS.config, FLAGS.workdir, FLAGS.records) if FLAGS.only_report else FLAGS.config
  runs = grid.expand(config, FLAGS.workdir, datasets=FLAGS.datasets, models=FLAGS.models, seeds=seeds,
                     records=FLAGS.records)
  if FLAGS.dry_run:
    print(grid.format_plan(runs, grid.plan(runs)))
    return
  if FLAGS.record_finished:
    if not FLAGS.records:
      raise cli.UsageError("--record_finished needs --records=<folder>")
    cli.refuse_overwriting_records([r.record_dir for r in runs if os.path.exists(r.summary_path)],
                                   FLAGS.overwrite_records)
    for run in runs:
      if os.path.exists(run.summary_path):
        print(f"recorded {grid.record_run(run)}")
  elif not FLAGS.only_report:
    cli.refuse_overwriting_records([r.record_dir for r in runs if r.status() != grid.FINISHED], FLAGS.overwrite_records)
    failures = grid.train_runs(config, FLAGS.workdir, runs, records=FLAGS.records)
  csv_path, md_path = grid.write_report(config, FLAGS.workdir, failures=failures, records=FLAGS.records,
                                       datasets=FLAGS.datasets if FLAGS.only_report else None)
  print(f"Report: {md_path}  {csv_path}")
  if failures:
    for run, error in failures.items():
      logging.error("failed: %s %s seed %d: %s", run.dataset, run.model, run.seed, error)
    raise SystemExit(f"{len(failures)} run(s) failed; rerun the same command to retry them.")

if __name__ == "__main__":
  cli.run(main)
