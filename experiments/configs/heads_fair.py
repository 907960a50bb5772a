"""A fair fight on frozen features: in-path quantum heads, their parameter-matched twins, the
unentangled ablation and the linear head, every design at the learning rates its own validation
AUC chose from the same grid.

  python -m experiments.train_heads --config=experiments/configs/heads_fair.py --workdir=runs/heads_fair
  python -m experiments.train_heads --config=experiments/configs/heads_fair.py --workdir=runs/heads_fair \
      --config.features.breastmnist=features/breastmnist.npz --only_report

This is the width-16 protocol recorded in results/frozen_heads_fair/ and stays unchanged as that
record; new studies use heads_families.py (issue 44: every family chooses from the same menu,
entanglement-free control, full-rank twins, extended rate grids, two-level intervals).

What differs from heads.py (the old protocol, kept in results/frozen_heads/):
  * Roles, not names, route learning rates: the block a quantum head and its twin differ in
    (circuit, unentangled product block or Dense-tanh-Dense twin) trains at `block_learning_rate`,
    everything else at `learning_rate` (`train.param_role`).
  * Each design's (block, head) rates are chosen by mean validation AUC over `lr_search.seeds` on the
    5 x 5 grid below (a linear head, which has no block, on the 5 head rates), then all `seeds` train
    at the chosen rates. The same grid and seeds for every design; never selected on test.
  * Features standardised with the training split's mean and std (`FeatureSet.standardized`).
  * A residual head's gated branch has no prior bias (g scales only what the block computes).

Designs (FeatureHead options; see qcnn_jax/models/heads.py). "In path": the circuit's readout is
the only route to the logits.
  inpath            Dense(D -> 8) -> LayerNorm -> tanh·π/2 -> QCNN -> a<Z> + b (b from the prior).
  inpath_pi         the same with tanh·π (RY encoding: ±π fold onto the same state).
  inpath_ln_before  LayerNorm on the features before the bottleneck instead of after it.
  residual          linear(features) + g · (LayerNorm -> Dense -> tanh·π -> QCNN -> a<Z>), g from 0.
  residual_g01      the same with g from 0.1 (the circuit has a gradient from the first step).
  product           inpath's bottleneck into unentangled qubits (RY(x), RZ, RY; all <Z>s -> Dense).
  linear            Dense(K) on the features.
  inpath_pi_raw, linear_raw   inpath_pi and linear on the raw (unstandardised) features.
Every quantum design gets its "<name>_twin".

Feature sets: "<dataset>" and, for more backbones of one set, "<dataset>@<backbone>"; sets whose
file is missing are reported as such. `lr_search.on` makes a set reuse another's choice (the
learning rates of the BreastMNIST backbones are chosen once, on the first backbone's validation).
"""

import math

import ml_collections

from experiments.configs import heads

BACKBONES = tuple(f"b16s{s}" for s in range(1, 5))  # quick-protocol width-16 ResNet-50 seeds 1-4
IN_PATH = {"norm": False, "bottleneck_norm": True, "angle_scale": math.pi / 2, "calibrate": True}
RESIDUAL = {"norm": True, "angle_scale": math.pi, "calibrate": True, "residual": True}
RATES = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
# The in-path design with the highest mean validation AUC over the BreastMNIST backbones: the head of
# the end-to-end default (heads.HEAD_DEFAULTS) and of the data-efficiency study.
DEFAULT_IN_PATH = "inpath_pi"


def get_config() -> ml_collections.ConfigDict:
  c = heads.get_config()
  c.name = "Heads on frozen features, a fair fight: in-path quantum heads vs twins and linear, rates chosen by validation"
  c.features = ml_collections.ConfigDict({
      "breastmnist": "features/b16/breastmnist_seed0.npz",
      **{f"breastmnist@{b}": f"features/b16/breastmnist_seed{b[-1]}.npz" for b in BACKBONES},
      "pneumoniamnist": "features/b16/pneumoniamnist_seed0.npz",
      "retinamnist": "features/b16/retinamnist_seed0.npz",
      "medical_mnist": "features/b16/medical_mnist_seed0.npz",
  })
  c.base.head.bottleneck_norm = False
  c.base.standardize = True
  c.base.block_learning_rate = None
  c.designs = ml_collections.ConfigDict({
      "inpath": {"head": IN_PATH},
      "inpath_pi": {"head": {**IN_PATH, "angle_scale": math.pi}},
      "inpath_ln_before": {"head": {**IN_PATH, "norm": True, "bottleneck_norm": False}},
      "residual": {"head": RESIDUAL},
      "residual_g01": {"head": {**RESIDUAL, "gate_init": 0.1}},
      "product": {"head": {**IN_PATH, "kind": "product"}},
      "linear": {"head": {"kind": "linear", "calibrate": True}},
      # Feature scale, measured: the same heads on the raw (unstandardised) features.
      "inpath_pi_raw": {"head": {**IN_PATH, "angle_scale": math.pi}, "overrides": {"standardize": False}},
      "linear_raw": {"head": {"kind": "linear", "calibrate": True}, "overrides": {"standardize": False}},
  })
  c.lr_search = ml_collections.ConfigDict({
      "block": RATES, "head": RATES, "seeds": (0, 1, 2),
      "on": {f"breastmnist@{b}": "breastmnist" for b in BACKBONES},
  })
  c.seeds = tuple(range(10))
  return c
