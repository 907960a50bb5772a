"""Backbones for the frozen-feature head studies (heads_families.py, data_efficiency.py): full-width
ResNet-50 with the MedMNIST v2 recipe (28 px, Adam 1e-3 ×0.1 at 50% and 75% of 100 epochs, batch 128,
best-validation-AUC checkpoint). Seeds 0-2 of BreastMNIST and RetinaMNIST train all 100 epochs: their
best epochs come late (42-56 for BreastMNIST in grid_medmnist.py, around the rate drop at epoch 50),
so early stopping would cut them short. PneumoniaMNIST (8 h a run here) stops when validation AUC
has not improved for 20 epochs (`early_stopping_patience`; `epochs_trained` in summary.json), seed 0
first (`--seeds=0`), the others as time allows. The report puts each backbone's own test AUC/ACC
beside the published ResNet-50 (28) row.

  python -m experiments.grid --config=experiments/configs/grid_backbones.py --workdir=runs/grid_backbones \
      --records=results/grid_backbones/runs --datasets=breastmnist --dry_run
  python -m experiments.extract_features --workdir=runs/grid_backbones/breastmnist/resnet50/seed0 \
      --out=features/r50/breastmnist_seed0.npz

RetinaMNIST and PneumoniaMNIST run every convolution through oneDNN (`ONEDNN_SETS`: conv_impl
"onednn", a 1.4-1.6x faster step on this CPU, the same results to float32 rounding; it needs the
`onednn` extra on a CPU and is XLA's convolution on other platforms); BreastMNIST, trained first,
keeps XLA's. Each record's config.json says which. The report
(results/grid_backbones/results.md: each run's test AUC/ACC with its interval over test examples,
beside the published rows) is rebuilt from the records:

  python -m experiments.grid --config=experiments/configs/grid_backbones.py --workdir=/tmp/backbones_report \
      --records=results/grid_backbones/runs --only_report

A feature file names its backbone run by config hash and commit (`studies.features`), so the
committed record under results/grid_backbones/runs regenerates it. On a lent GPU the whole grid and
its features are one call of experiments/gpu/grid_medmnist.sh with CONFIG=experiments/configs/grid_backbones.py
RECORDS=results/grid_backbones/runs MODELS=resnet50 FEATURES=1 (see its header).
"""

import ml_collections

from experiments.configs import medmnist

PATIENCE = 20  # PneumoniaMNIST: epochs without a better validation AUC before a run stops
ONEDNN_SETS = ("retinamnist", "pneumoniamnist")  # trained with conv_impl "onednn" (see above)


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "Full-width ResNet-50 backbones (MedMNIST v2 recipe, 28 px) for the frozen-feature head studies"
  c.base = medmnist.get_config()
  # A killed run resumes from its last checkpoint: every 2 epochs loses at most ~2 min here (10 lost 9
  # epochs, 26 min, when a session ended); a save (~280 MB with Adam's moments) did not show in the
  # epoch times (RetinaMNIST: 44 s for an epoch with a save, 45 s without).
  c.base.checkpoint_every_epochs = 2
  c.datasets = ("breastmnist", "retinamnist", "pneumoniamnist")
  c.models = ml_collections.ConfigDict({"resnet50": {}})
  c.seeds = (0, 1, 2)
  c.comparisons = ()
  c.dataset_overrides = ml_collections.ConfigDict({d: {"model_options": {"conv_impl": "onednn"}} for d in ONEDNN_SETS})
  c.dataset_overrides.pneumoniamnist.early_stopping_patience = PATIENCE
  c.bootstrap = ml_collections.ConfigDict({"num_resamples": 10_000, "confidence": 0.95, "seed": 0})
  return c
