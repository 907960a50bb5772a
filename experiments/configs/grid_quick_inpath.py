"""README command 1 (quick.py: 15 epochs, width-16 ResNet-50, BreastMNIST, about 3 minutes a run on
2 cores) over 10 seeds with the default hybrid whose circuit is in the prediction path: what a new
user gets from the first command, run to run, against its parameter-matched classical twin and the
plain ResNet-50 (linear head) under the same recipe. The twin's block trains at the circuit's rate
(`block_learning_rate`, role-routed). grid_quick.py's grid with today's default models: its
resnet50 rows are the same runs.

  python -m experiments.grid --config=experiments/configs/grid_quick_inpath.py \
      --workdir=runs/grid_quick_inpath --records=results/grid_quick_inpath/runs
"""

import ml_collections

from experiments.configs import grid_quick


def get_config() -> ml_collections.ConfigDict:
  c = grid_quick.get_config()
  c.name = "README command 1 (quick.py) over seeds, circuit in the prediction path: BreastMNIST, width-16 ResNet-50"
  c.models = ml_collections.ConfigDict({
      "resnet50_qcnn": {"width": 16}, "resnet50_mlp": {"width": 16}, "resnet50": {"width": 16}})
  c.comparisons = (("resnet50_qcnn", "resnet50_mlp"), ("resnet50_qcnn", "resnet50"), ("resnet50_mlp", "resnet50"))
  return c
