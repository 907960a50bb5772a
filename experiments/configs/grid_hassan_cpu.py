"""Medical MNIST grid of Hassan et al. (2024), CPU protocol: grid_hassan.py with 2 epochs.

On 2 CPU cores a ResNet-50 epoch over the 47,163 training images (64 px) takes 20-40 minutes, so
the 10-epoch protocol of hassan.py (kept for accelerators) does not fit a session. Medical MNIST is
easy (MONAI's MedNIST tutorial reaches ~99.5% test accuracy in 4 epochs), so this protocol trains
2 epochs with Adam 1e-3, 5% linear warm-up then cosine decay to 0, batch 64, from scratch, seeded
stratified 80/10/10 split (split seed 0), best-validation-AUC checkpoint. Everything else is
grid_hassan.py's.

  python -m experiments.grid --config=experiments/configs/grid_hassan_cpu.py \
      --workdir=runs/grid_hassan_cpu --config.base.data_dir=/path/to/medical_mnist
"""

import ml_collections

from experiments.configs import grid_hassan


def get_config() -> ml_collections.ConfigDict:
  c = grid_hassan.get_config()
  c.name = "Medical MNIST (Hassan et al. 2024 setting), CPU protocol: 2 epochs, Adam 1e-3 warm-up + cosine"
  c.base.num_epochs = 2
  c.base.learning_rate = 1e-3
  c.base.schedule = "warmup_cosine"
  c.base.warmup_fraction = 0.05
  # The QCNN alone is cheap (seconds to minutes per epoch) and learns slowly: rows exploring what it
  # can reach on these images (more epochs and a larger learning rate, 10 qubits = 32x32 amplitudes,
  # several readout qubits). At 2 epochs and 1e-3 the "qcnn_lr1e-3" row of grid_hassan.py is "qcnn".
  del c.models["qcnn_lr1e-3"]
  longer = {"num_epochs": 10, "learning_rate": 1e-2}
  c.models["qcnn_e10_lr1e-2"] = {"model": "qcnn", "overrides": longer}
  c.models["qcnn10_e10_lr1e-2"] = {"model": "qcnn", "n_qubits": 10, "overrides": longer}
  c.models["qcnn10_expvals_e10_lr1e-2"] = {"model": "qcnn", "n_qubits": 10, "readout": "expvals",
                                           "overrides": longer}
  # quanv_resnet50 keeps grid_hassan.py's auto stem (3x3 stride 1 on the quanvolution's 32 px maps:
  # 4x the ResNet FLOPs of the other rows, ~6 images/s here, 2+ h a run); this row gives its
  # ResNet-50 the ImageNet stem like the other rows (8 x 8 maps after stem and max-pool; ~9x faster).
  c.models["quanv_resnet50_stem_imagenet"] = {"model": "quanv_resnet50", "stem": "imagenet"}
  # Hassan et al.'s 80/20 train/test split (split seed 0: 47,163 / 11,791 images), no validation
  # split, so the last epoch is kept (never a test-set choice).
  for name in ("resnet50", "resnet50_qcnn"):
    c.models[f"{name}_80_20"] = {"model": name, "stem": "imagenet", "overrides": {"split_scheme": "80_20"}}
  c.comparisons += (("resnet50_qcnn_80_20", "resnet50_80_20"),)
  return c
