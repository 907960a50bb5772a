"""End to end on BreastMNIST under the full MedMNIST v2 protocol (medmnist.py: full-width ResNet-50,
100 epochs), 3 seeds: the default hybrid, whose circuit is in the prediction path, against the plain
ResNet-50. grid_medmnist.py's grid restricted to BreastMNIST with today's default hybrid: its
resnet50 rows are the same runs (their records are copied from results/grid_medmnist/runs).

  python -m experiments.grid --config=experiments/configs/grid_medmnist_inpath.py \
      --workdir=runs/grid_medmnist_inpath --records=results/grid_medmnist_inpath/runs
"""

import ml_collections

from experiments.configs import grid_medmnist


def get_config() -> ml_collections.ConfigDict:
  c = grid_medmnist.get_config()
  c.name = "MedMNIST v2 (28 px) end to end, circuit in the prediction path: BreastMNIST, full-width ResNet-50"
  c.datasets = ("breastmnist",)
  c.models = ml_collections.ConfigDict({"resnet50": {}, "resnet50_qcnn": {}})
  c.comparisons = (("resnet50_qcnn", "resnet50"),)
  return c
