"""The setting of Hassan et al. (2024, BSPC 87:105560) on Kaggle Medical MNIST.

ResNet-50 (ImageNet-pretrained when `--config.pretrained=<resnet50.safetensors>` is given,
which needs the ImageNet stem and RGB inputs: both are set here) fused with a QCNN head,
Adam with a small learning rate, seeded stratified 80/10/10 split (use
`--config.split_scheme=80_20` for the paper's 80/20 train/test). Medical MNIST is not
downloadable without a Kaggle login: pass `--config.data_dir=` the JPEG tree or the `.npz`.
"""

import ml_collections

from experiments.configs import medmnist


def get_config() -> ml_collections.ConfigDict:
  c = medmnist.get_config()
  c.dataset = "medical_mnist"
  c.size = 64
  c.model = "resnet50_qcnn"
  c.model_options.stem = "imagenet"
  c.preprocess.channels = 3
  c.optimizer = "adam"
  c.learning_rate = 1e-4
  c.schedule = "constant"
  c.num_epochs = 10
  c.batch_size = 64
  return c
