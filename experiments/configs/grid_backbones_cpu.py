"""Backbones for the frozen-feature head study on PneumoniaMNIST and RetinaMNIST (28 px), sized for
2 CPU cores: the width-16 ResNet-50 of grid_heads.py (the BreastMNIST backbone's architecture) with
the MedMNIST v2 recipe (Adam 1e-3, x0.1 at 50% and 75%, batch 128, best-validation-AUC checkpoint)
but fewer epochs than its 100: PneumoniaMNIST 20 (4,708 training images, 740 steps), RetinaMNIST 50
(1,080 training images, 450 steps; BreastMNIST's 100 epochs are 500 steps).

  python -m experiments.grid --config=experiments/configs/grid_backbones_cpu.py \
      --workdir=runs/grid_backbones_cpu --records=results/grid_backbones_cpu/runs
  python -m experiments.extract_features --workdir=runs/grid_backbones_cpu/pneumoniamnist/resnet50/seed0 \
      --out=features/pneumoniamnist.npz
"""

import ml_collections

from experiments.configs import grid_heads, medmnist


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = f"Width-{grid_heads.WIDTH} ResNet-50 backbones (28 px, CPU epochs) for the frozen-feature head study"
  c.base = medmnist.get_config()
  c.base.checkpoint_every_epochs = 10
  c.datasets = ("pneumoniamnist", "retinamnist")
  c.models = ml_collections.ConfigDict({"resnet50": {"width": grid_heads.WIDTH}})
  c.seeds = (0,)
  c.comparisons = ()
  c.dataset_overrides = ml_collections.ConfigDict({"pneumoniamnist": {"num_epochs": 20},
                                                   "retinamnist": {"num_epochs": 50}})
  c.bootstrap = ml_collections.ConfigDict({"num_resamples": 10_000, "confidence": 0.95, "seed": 0})
  return c
