"""Data efficiency on frozen features of the ResNet-50 backbones (MedMNIST v2 recipe): heads trained on
stratified, nested 1%, 5%, 10%, 25%, 50% and 100% of the training split, 10 seeds (seed k: subset k
and initialisation k for every head); at every fraction the same optimiser steps as the whole split,
learning rates searched on validation with the families study's grid and extension
(heads_families.py), standardisation, prior and class weights fitted on the subset.

  python -m experiments.data_efficiency --workdir=runs/data_efficiency

Designs: on each feature set, the design every family (quantum, twin, control, linear) chose by
validation in the families study whose report is in `families_from` (train that study first); with
`--config.families_from=''` the `designs` below instead (the quantum family's default menu entry,
its twin, its control and the standardised linear head).
"""

import ml_collections

from experiments.configs import heads_families

QUANTUM = "q_std_after_pi2"


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "Data efficiency on frozen ResNet-50 features: quantum head vs twin, unentangled control and linear"
  c.study = heads_families.get_config()
  c.study.features = ml_collections.ConfigDict({k: v for k, v in c.study.features.items()
                                                if "@" not in k and k != "medical_mnist"})
  c.study.progress = False
  c.fractions = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
  c.designs = (QUANTUM, QUANTUM + "_twin", QUANTUM + "_control", "linear_std")
  c.comparisons = tuple((QUANTUM, other) for other in c.designs[1:])
  c.families_from = "results/frozen_heads_families"
  c.rates_root = ""
  c.same_steps = True
  return c
