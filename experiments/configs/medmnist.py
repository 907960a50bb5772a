"""MedMNIST v2 protocol (Yang et al. 2023): 100 epochs, batch 128, Adam 1e-3, ×0.1 at 50% and 75%.

Usage:
  python -m experiments.train --config=experiments/configs/medmnist.py \
      --config.dataset=breastmnist --config.model=resnet50_qcnn --workdir=runs/breast_hybrid

Every key can be overridden on the command line (`--config.<key>=<value>`).
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  """The default (full-protocol) configuration."""
  c = ml_collections.ConfigDict()
  # Data.
  c.dataset = "breastmnist"        # a MedMNIST 2D flag, "medical_mnist", or "folder" (your own images, docs/own_data.md)
  c.size = 28                      # stored image size in px (28, 64, 128, 224; Medical MNIST: 64; folder: any)
  c.data_dir = config_dict.placeholder(str)   # folder with source files (searched first)
  c.tfds_dir = config_dict.placeholder(str)   # prepared TFDS data (TFDS default when unset)
  c.allow_download = True
  c.split_scheme = "80_10_10"      # Medical MNIST and folder: "80_10_10" or "80_20"
  c.split_seed = 0                 # Medical MNIST and folder (unless its train/ val/ test/ folders give the split)
  # folder only: 1 (grayscale) or 3 (RGB) converts every image; unset keeps the files' own (they must agree)
  c.image_channels = config_dict.placeholder(int)
  # folder only: True leaves unreadable files out (counted, listed in the cache's files.json) instead of stopping
  c.skip_unreadable = config_dict.placeholder(bool)
  c.preprocess = ml_collections.ConfigDict({
      "mean": 0.5, "std": 0.5,
      "channels": config_dict.placeholder(int),   # 3: grayscale → RGB
      "resize": config_dict.placeholder(int),     # e.g. 224: "28 upsampled to 224"
      "resize_method": "nearest",
      "augment": False,
  })
  # Model (see qcnn_jax.models.get_model for the options).
  c.model = "resnet50_qcnn"
  # Unset options keep the model's defaults; set ones must be valid for the model (get_model
  # names the valid options otherwise), e.g. --config.model_options.n_qubits=12.
  c.model_options = ml_collections.ConfigDict({
      "width": config_dict.placeholder(int),         # ResNet base width (64)
      "stem": config_dict.placeholder(str),          # auto | cifar | imagenet
      "dtype": config_dict.placeholder(str),         # compute dtype, e.g. bfloat16 on accelerators
      "conv_impl": config_dict.placeholder(str),     # xla | onednn (CPU: pip install -e ".[onednn]")
      "zero_init_residual": config_dict.placeholder(bool),
      "n_qubits": config_dict.placeholder(int),      # QCNN qubits (8)
      "conv_unit": config_dict.placeholder(str),     # ttn u5 u6 u9 u13 u14 u15 so4 su4
      "encoding": config_dict.placeholder(str),      # angle_x angle_y angle_z dense_angle amplitude
      "readout": config_dict.placeholder(str),       # auto expval probs expvals
      "execution": config_dict.placeholder(str),     # how circuits run (see quantum.EXECUTIONS)
      "noise": config_dict.placeholder(str),         # circuit noise: "depolarizing:0.01" or a calibrated .json
      "qcnn_input": config_dict.placeholder(str),    # qcnn model: amplitude | pooled
      "quanv_trainable": config_dict.placeholder(bool),
      # Head of resnet50_qcnn / resnet50_mlp (qcnn_jax.models.heads.FeatureHead; unset = model default).
      "norm": config_dict.placeholder(bool),         # LayerNorm before the bottleneck
      "bottleneck_norm": config_dict.placeholder(bool),  # LayerNorm after the bottleneck Dense
      "angle_scale": config_dict.placeholder(float), # angles = tanh(.) * angle_scale (radians)
      "angle_init_std": config_dict.placeholder(float),  # circuit angles ~ N(0, std^2); unset: model default
      "calibrate": config_dict.placeholder(bool),    # readout bias at the prior, learnt temperature
      "residual": config_dict.placeholder(bool),     # logits = linear + g * head, g from 0
      "gate_init": config_dict.placeholder(float),   # residual head: g's starting value (unset: 0)
      "n_blocks": config_dict.placeholder(int),      # circuits on chunks of the bottleneck
      "reuploading": config_dict.placeholder(int),   # encodings before the first k conv layers
  })
  c.pretrained = ""                # optional torchvision/timm ResNet-50 .safetensors
  # optional workdir of a finished run: its backbone (and linear head) initialise this run's model, e.g. a
  # residual resnet50_qcnn fine-tuned end to end from a resnet50 run (starts as that run's model)
  c.init_from = config_dict.placeholder(str)
  # Optimisation.
  c.optimizer = "adam"             # adam | adamw | sgd
  c.learning_rate = 1e-3
  # the compared block (circuit, its unentangled ablation or its twin block; train.param_role); unset: learning_rate
  c.block_learning_rate = config_dict.placeholder(float)
  c.weight_decay = 0.0             # adamw only
  c.momentum = 0.9                 # sgd only
  c.schedule = "multistep"         # constant | multistep | warmup_cosine
  c.lr_milestones = (0.5, 0.75)    # fractions of training (multistep)
  c.lr_decay = 0.1
  c.warmup_fraction = 0.05         # warmup_cosine
  c.grad_clip_norm = config_dict.placeholder(float)
  # "balanced": each class's training examples weigh N / (C * N_class) in the loss (scikit-learn's
  # class_weight="balanced"); unset: the unweighted loss of the MedMNIST protocol.
  c.class_weights = config_dict.placeholder(str)
  c.num_epochs = 100
  # Stop after this many epochs without a better validation AUC (the best checkpoint is reported as
  # always); unset: every epoch runs, as the MedMNIST protocol does. The schedule keeps its milestones
  # at fractions of num_epochs, so a run that stops early has the same rates up to its stop.
  c.early_stopping_patience = config_dict.placeholder(int)
  c.batch_size = 128
  c.eval_batch_size = 256
  c.seed = 0
  # Running (not part of the result: a run may resume with other values).
  c.log_every_steps = 10
  c.progress = True  # progress bar with ETA on a terminal (never in logs); --config.progress=False hides it
  # Save the latest checkpoint every N epochs (and the last); a best-validation epoch in between is
  # kept on the device and saved with the next checkpoint. A kill loses at most N - 1 epochs. Raise it
  # on accelerators, where saving ResNet-50's state (~0.3 GB) takes longer than a small epoch.
  c.checkpoint_every_epochs = 1
  c.num_threads = 2
  c.compilation_cache = True
  return c
