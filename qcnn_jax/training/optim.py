"""Optimiser routing by role: one learning rate (and schedule) for the compared block (a circuit or its
classical twin) and one for every other parameter, so a quantum model and its twin get the same treatment."""

import jax
import ml_collections
import optax

from qcnn_jax.models import heads
from qcnn_jax.training.diagnostics import is_quantum_path


def learning_rate_schedule(config: ml_collections.ConfigDict, base_lr: float, total_steps: int) -> optax.Schedule:
  """Learning rate per step: "constant", "multistep" (×decay at fractions of training) or
  "warmup_cosine" (linear warm-up over `warmup_epochs` then cosine decay to 0)."""
  if config.schedule == "constant":
    return optax.constant_schedule(base_lr)
  if config.schedule == "multistep":
    boundaries = {int(f * total_steps): config.lr_decay for f in config.lr_milestones}
    return optax.piecewise_constant_schedule(base_lr, boundaries)
  if config.schedule == "warmup_cosine":
    warmup = min(int(config.warmup_fraction * total_steps), total_steps - 1)
    return optax.warmup_cosine_decay_schedule(0.0, base_lr, warmup, total_steps)
  raise ValueError(f"Unknown schedule {config.schedule!r}; choose constant, multistep or warmup_cosine.")


ROLES = ("block", "rest")  # optimiser roles: the compared block (circuit or its twin) and all other parameters


# Each role's key in the optimizer state: the names of the circuit / everything-else groups the
# roles replaced, so that checkpoints of models without a twin block written before still restore.
OPT_STATE_KEYS = {"block": "quantum", "rest": "classical"}


def param_role(path: tuple) -> str:
  """"block" for a parameter of the block a quantum head and its twin differ in (a module named
  ``heads.BLOCK_PREFIXES``: circuit, unentangled ablation or classical twin) or of any other circuit
  (`is_quantum_path`); "rest" otherwise. A quantum model and its twin route the same parameters to
  the same learning rate."""
  names = [str(getattr(entry, "key", entry)) for entry in path]
  return "block" if is_quantum_path(path) or any(n.startswith(heads.BLOCK_PREFIXES) for n in names) else "rest"


def role_labels(params):
  """The params pytree with each leaf replaced by its `param_role`."""
  return jax.tree_util.tree_map_with_path(lambda p, _: param_role(p), params)


def base_rates(config: ml_collections.ConfigDict) -> dict[str, float]:
  """Base learning rate per role: "rest" `learning_rate`; "block" `block_learning_rate`, or
  `learning_rate` when None (0 freezes the block)."""
  block = config.learning_rate if config.block_learning_rate is None else config.block_learning_rate
  return {"block": block, "rest": config.learning_rate}


def create_optimizer(config: ml_collections.ConfigDict, params, total_steps: int,
                     rates: dict[str, float] | None = None) -> optax.GradientTransformation:
  """optax optimizer with one learning rate per role (`param_role`).

  `config.optimizer`: "adam", "adamw" or "sgd" (momentum `config.momentum`); `config.schedule`
  shapes every role's rate; optional global-norm gradient clipping `config.grad_clip_norm`.
  `rates` (role -> base rate) overrides `base_rates(config)`; every update is linear in its base
  rate, so rates of 1 followed by `scale_by_role` give the same steps (how `training.frozen` vmaps a
  learning-rate search).
  """
  def make(lr: float) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(config, lr, total_steps)
    if config.optimizer == "adam":
      return optax.adam(schedule)
    if config.optimizer == "adamw":
      return optax.adamw(schedule, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
      return optax.sgd(schedule, momentum=config.momentum)
    raise ValueError(f"Unknown optimizer {config.optimizer!r}; choose adam, adamw or sgd.")

  rates = rates or base_rates(config)
  labels = jax.tree.map(OPT_STATE_KEYS.get, role_labels(params))
  tx = optax.multi_transform({OPT_STATE_KEYS[role]: make(rates[role]) for role in ROLES}, labels)
  if config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  return tx


def scale_by_role(updates, labels, rates: dict[str, jax.Array]):
  """`updates` with each leaf multiplied by the rate of its role (`labels` from `role_labels`)."""
  return jax.tree.map(lambda u, role: u * rates[role], updates, labels)
