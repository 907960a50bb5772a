"""Head study on frozen ResNet-50 features (issue "The hybrid must not lose"): every head design
with its parameter-matched classical twin, the linear head as reference, 10 seeds each.

  python -m experiments.extract_features --workdir=<finished resnet50 run> --out=features/<dataset>.npz
  python -m experiments.train_heads --config=experiments/configs/heads.py --workdir=runs/frozen_heads \
      --config.features.breastmnist=features/breastmnist.npz

Designs (FeatureHead options; see qcnn_jax/models/heads.py):
  legacy            today's resnet50_qcnn head: Dense(2048 -> 8) -> tanh·π/2 -> QCNN, angles uniform in
                    [0, 2π), readout bias 0 (a = 3), probabilities as log p; circuit at the classical lr.
  legacy_qlr        the same with the circuit at the quantum learning rate (1e-2).
  calibrated        LayerNorm before the bottleneck, tanh·π (whole Bloch circle), readout bias at the
                    prior's logits, learnt temperature for probabilities (circuit angles uniform).
  small_init        calibrated with circuit angles ~ N(0, 0.1²) (near the identity). Measured end to end
                    (README command 1): the readout qubit then sees almost only its own input angle.
  expvals           calibrated, <Z> of 3 qubits read out (pooling stops at 3) -> Dense.
  blocks4           calibrated, 4 circuits on 4 chunks of the bottleneck (Dense(2048 -> 32)).
  reupload          calibrated, features re-uploaded before the second conv layer.
  residual          linear(features) + g · calibrated head, g starting at 0 (starts as linear).
  product           calibrated bottleneck into unentangled qubits (RY(x), RZ, RY; all <Z>s read out):
                    the no-entanglement ablation (no twin: compare with calibrated).
  linear            Dense(K) on the features: the plain ResNet-50's own head, retrained.
Quantum designs get a "<name>_twin" (Dense -> tanh -> Dense block of matched size, same everything else).
"""

import math

import ml_collections
from ml_collections import config_dict

from experiments.configs import medmnist

CALIBRATED = {"norm": True, "angle_scale": math.pi, "calibrate": True}


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "Heads on frozen ResNet-50 features: quantum designs vs parameter-matched classical twins"
  # dataset -> feature file; sets whose file is missing are reported as such (train them with --datasets).
  c.features = ml_collections.ConfigDict({name: f"features/{name}.npz" for name in (
      "breastmnist", "pneumoniamnist", "retinamnist", "medical_mnist")})
  base = medmnist.get_config()
  base.head = ml_collections.ConfigDict({
      "kind": "quantum", "n_qubits": 8, "conv_unit": "su4", "encoding": "angle_y", "readout": "auto",
      "n_readout": config_dict.placeholder(int), "reuploading": 1, "execution": "statevector", "n_blocks": 1, "norm": False, "angle_scale": math.pi / 2,
      "angle_init_std": config_dict.placeholder(float), "calibrate": False, "residual": False,
      "gate_init": config_dict.placeholder(float),
  })
  base.block_learning_rate = 1e-2
  base.design = ""
  c.base = base
  c.designs = ml_collections.ConfigDict({
      "legacy": {"overrides": {"block_learning_rate": None}},
      "legacy_qlr": {},
      "calibrated": {"head": CALIBRATED},
      "small_init": {"head": {**CALIBRATED, "angle_init_std": 0.1}},
      "expvals": {"head": {**CALIBRATED, "readout": "expvals", "n_readout": 3}},
      "blocks4": {"head": {**CALIBRATED, "n_blocks": 4}},
      "reupload": {"head": {**CALIBRATED, "reuploading": 2}},
      "residual": {"head": {**CALIBRATED, "residual": True}},
      "product": {"head": {**CALIBRATED, "kind": "product"}},
      "linear": {"head": {"kind": "linear", "calibrate": True}},
  })
  c.seeds = tuple(range(10))
  # Medical MNIST has 47,163 training examples (86x BreastMNIST): 3 epochs are ~1,100 steps, against
  # 400 for BreastMNIST's 100 epochs.
  # PneumoniaMNIST has 4,708 (8.6x BreastMNIST): 30 epochs are ~1,100 steps.
  c.dataset_overrides = ml_collections.ConfigDict({"medical_mnist": {"num_epochs": 3},
                                                   "pneumoniamnist": {"num_epochs": 30}})
  # The test-example bootstrap of 16 comparisons x 20 runs over Medical MNIST's 5,896 test images runs
  # for over 10 minutes on 2 cores: above max_test_examples only the seed bootstrap is computed.
  c.bootstrap = ml_collections.ConfigDict({"num_resamples": 10_000, "confidence": 0.95, "seed": 0,
                                           "max_test_examples": 1_000})
  return c
