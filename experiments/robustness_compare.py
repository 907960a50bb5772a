r"""Several runs' MedMNIST-C robustness side by side: `<out>.md` and `<out>.csv`.

Each run must have been evaluated with `experiments.robustness --corruptions=...` on the same
settings. Pairs compare mean drops (A minus B) with a paired bootstrap over test examples. A name
given several times pools that model's runs (training seeds): its numbers are means over them, and
pairs also get a bootstrap over runs, paired in the order given (list the seeds in the same order).

  python -m experiments.robustness_compare \
      --runs=resnet50=runs/breast16/resnet50,resnet50_qcnn=runs/breast16/resnet50_qcnn,resnet50_mlp=runs/breast16/resnet50_mlp \
      --pairs=resnet50_qcnn:resnet50_mlp,resnet50_qcnn:resnet50 --out=results/robustness/medmnistc_breastmnist
  # three seeds each: resnet50=<seed 0 run>,resnet50=<seed 1 run>,resnet50=<seed 2 run>,resnet50_qcnn=...
"""

from absl import flags

from experiments import cli
from qcnn_jax.studies import robustness_report
from qcnn_jax.training import train

flags.DEFINE_list("runs", None, "name=workdir of each run (a repeated name pools its runs).", required=True)
flags.DEFINE_list("pairs", [], "A:B pairs of run names to compare.")
flags.DEFINE_string("out", None, "Output path prefix (.md and .csv are added).", required=True)
flags.DEFINE_string("title", "MedMNIST-C robustness", "Report title.")
flags.DEFINE_integer("num_resamples", 2000, "Bootstrap resamples of the test examples.")
FLAGS = flags.FLAGS


def parse(items: list[str], sep: str, what: str) -> list[tuple[str, str]]:
  parsed = [tuple(item.split(sep, 1)) for item in items]
  bad = [item for item, p in zip(items, parsed) if len(p) != 2 or not all(p)]
  if bad:
    raise train.ConfigError(f"{what} must look like x{sep}y, got {bad}")
  return parsed


def main(argv):
  del argv
  runs: dict[str, list[str]] = {}
  for name, workdir in parse(FLAGS.runs, "=", "--runs"):
    runs.setdefault(name, []).append(workdir)
  pairs = parse(FLAGS.pairs, ":", "--pairs")
  unknown = sorted({n for p in pairs for n in p} - set(runs))
  if unknown:
    raise train.ConfigError(f"--pairs names {unknown} that --runs does not define ({sorted(runs)})")
  try:
    loaded = robustness_report.load(runs)
    rows = robustness_report.run_rows(loaded)
    detail, drops = robustness_report.detail_rows(rows), robustness_report.run_drops(rows)
    summary = robustness_report.summary_rows(detail, drops)
    intervals = {(a, b): robustness_report.compare(loaded, drops, a, b, num_resamples=FLAGS.num_resamples)
                 for a, b in pairs}
  except ValueError as e:
    raise train.ConfigError(str(e)) from e
  paths = robustness_report.write(FLAGS.out, FLAGS.title, detail, summary, intervals)
  for r in summary:
    print(f"{r['model']:>16}  clean AUC {r['clean_auc']:.4f}  corrupted {r['corrupted_auc']:.4f}  "
          f"mean drop {r['auc_drop']:+.4f}")
  for (a, b), iv in intervals.items():
    by_runs = f"  (runs: AUC drop {iv['seed_auc'].format(4)})" if "seed_auc" in iv else ""
    print(f"{a} - {b}: AUC drop {iv['auc'].format(4)}  ACC drop {iv['acc'].format(4)}{by_runs}")
  print("wrote", *paths)


if __name__ == "__main__":
  cli.run(main)
