"""A minutes-long CPU check of the grid machinery on the BreastMNIST copy shipped in the package:
tiny hybrid and control models, 1 epoch, 2 seeds, 1,000 bootstrap resamples.

  python -m experiments.grid --config=experiments/configs/grid_smoke.py --workdir=/tmp/grid_smoke
"""

import ml_collections

from experiments.configs import quick


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "smoke (BreastMNIST, 1 epoch)"
  c.base = quick.get_config()
  c.base.num_epochs = 1
  c.datasets = ("breastmnist",)
  tiny = {"width": 4, "n_qubits": 4, "stem": "cifar"}
  c.models = ml_collections.ConfigDict({"resnet50_qcnn": tiny, "resnet50_mlp": tiny})
  c.seeds = (0, 1)
  c.comparisons = (("resnet50_qcnn", "resnet50_mlp"),)
  c.dataset_overrides = ml_collections.ConfigDict()
  c.bootstrap = ml_collections.ConfigDict({"num_resamples": 1_000, "confidence": 0.95, "seed": 0})
  return c
