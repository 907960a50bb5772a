"""MedMNIST grid: the ResNet-50 baseline, the QCNN alone, and the hybrid ResNet-50 + QCNN with its matched MLP
control, full MedMNIST v2 protocol (medmnist.py), 3 seeds.

  python -m experiments.grid --config=experiments/configs/grid_medmnist.py --workdir=runs/grid_medmnist

Override any key, e.g. `--config.base.num_epochs=10` or `--config.seeds=0,1`.
"""

import ml_collections

from experiments.configs import medmnist


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "MedMNIST v2 (28 px), hybrid vs classical"
  c.base = medmnist.get_config()
  c.datasets = ("breastmnist", "pneumoniamnist", "retinamnist")
  c.models = ml_collections.ConfigDict({
      "resnet50": {},
      "qcnn": {},         # the QCNN alone (16x16 amplitudes on 8 qubits): Hassan et al.'s "QCNN" row
      "resnet50_qcnn": {},
      "resnet50_mlp": {},  # classical control of resnet50_qcnn (matched parameter count)
  })
  c.seeds = (0, 1, 2)
  c.comparisons = (("resnet50_qcnn", "resnet50_mlp"), ("resnet50_qcnn", "resnet50"))
  c.dataset_overrides = ml_collections.ConfigDict()
  c.bootstrap = ml_collections.ConfigDict({"num_resamples": 10_000, "confidence": 0.95, "seed": 0})
  return c
