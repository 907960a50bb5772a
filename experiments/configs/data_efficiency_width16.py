"""The protocol of the committed width-16 record (results/data_efficiency): the best in-path quantum
head (by validation in the fair head study), its twin, the unentangled product ablation and the
linear head on the width-16 backbones' features, trained on stratified 1%, 5%, 10%, 25%, 50% and
100% of the training split, 10 seeds (seed k: subset k and initialisation k for every head), for a
fixed number of epochs at the learning rates each design's validation search chose on the full
split, with the full split's statistics. The protocol of new studies is data_efficiency.py.

  python -m experiments.data_efficiency --config=experiments/configs/data_efficiency_width16.py \
      --workdir=runs/data_efficiency_width16

(the committed report in results/data_efficiency is refreshed with --out=results/data_efficiency
--overwrite_records: docs/reproducibility.md).
"""

import ml_collections

from experiments.configs import heads_fair


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "Data efficiency on frozen features: in-path quantum head vs twin, product and linear heads"
  c.study = heads_fair.get_config()
  c.study.features = ml_collections.ConfigDict({k: v for k, v in c.study.features.items() if "@" not in k})
  c.study.progress = False
  c.fractions = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
  c.designs = (heads_fair.DEFAULT_IN_PATH, heads_fair.DEFAULT_IN_PATH + "_twin", "product", "linear")
  c.comparisons = ((heads_fair.DEFAULT_IN_PATH, heads_fair.DEFAULT_IN_PATH + "_twin"),
                   (heads_fair.DEFAULT_IN_PATH, "linear"), (heads_fair.DEFAULT_IN_PATH, "product"))
  c.rates_root = "results/frozen_heads_fair/runs"
  c.same_steps = False
  return c
