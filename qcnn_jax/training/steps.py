"""The train state, the loss, one jitted train step with its NaN guard, and the evaluation step."""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from sklearn.utils import class_weight as sklearn_class_weight

from qcnn_jax.evaluation import metrics
from qcnn_jax.models import heads
from qcnn_jax.training.diagnostics import grad_norms


class TrainState(train_state.TrainState):
  """Everything that changes during training: step, params, opt_state, batch_stats."""
  batch_stats: Any


def keep_if_finite(loss, grad_norm, update: Callable[[], Any], old, params: Callable[[Any], Any]):
  """NaN guard: `(update(), True)` when the loss, the gradient norm and the updated parameters
  (`params(new)`) are finite, else `(old, False)`.

  Two `lax.cond`s rather than a select between the new and the old state: a good step then makes no
  pass over the state beyond the update itself (the select took 12% of a ResNet-50 train step at
  64 px on CPU). Under `vmap` (frozen heads) the conds become selects again.
  """
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  new = jax.lax.cond(finite, update, lambda: old)
  finite &= jnp.isfinite(optax.global_norm(params(new)))
  return jax.lax.cond(finite, lambda: new, lambda: old), finite


def check_finite(finite, first_step: int) -> None:
  """Host side of the NaN guard (`keep_if_finite`): raises at the first of consecutive steps
  (`first_step`, first_step + 1, ...) whose `finite` flag is False."""
  finite = np.asarray(jax.device_get(finite)).reshape(-1)
  if not finite.all():
    raise FloatingPointError(
        f"Non-finite loss or gradient at step {first_step + int(np.argmin(finite))}: training stopped and the last "
        "good parameters were kept. Lower the learning rate, set grad_clip_norm, or check the inputs.")


CLASS_WEIGHTINGS = ("balanced",)


def class_weights(labels: np.ndarray, task: str, num_outputs: int, weighting: str | None) -> np.ndarray | None:
  """Loss weights per class from the training labels; None for `weighting` None (unweighted).

  "balanced" is scikit-learn's class_weight="balanced": a class's examples weigh N / (C * N_class),
  so each class adds the same total weight to the loss (C = 2 per output for sigmoid outputs).

  Args:
    labels: (N, L) integer training labels.
    task: MedMNIST task string.
    num_outputs: K.
    weighting: None or one of `CLASS_WEIGHTINGS`.

  Returns:
    (2, L) float32 [negative, positive] weights of each sigmoid output (binary, multi-label), else
    (K,) float32 weights of each class.
  """
  if weighting is None:
    return None
  if weighting not in CLASS_WEIGHTINGS:
    raise ValueError(f"class_weights {weighting!r} not in {CLASS_WEIGHTINGS}; leave it unset for an unweighted loss")
  labels = np.asarray(labels)
  balanced = functools.partial(sklearn_class_weight.compute_class_weight, "balanced")
  if task in (metrics.BINARY, metrics.MULTI_LABEL):
    return np.stack([balanced(classes=np.arange(2), y=column) for column in labels.T], axis=1).astype(np.float32)
  return balanced(classes=np.arange(num_outputs), y=labels[:, 0]).astype(np.float32)


def per_example_loss(logits: jax.Array, labels: jax.Array, task: str, weights: jax.Array | None = None) -> jax.Array:
  """(B,) loss: sigmoid BCE averaged over outputs (binary, multi-label), else softmax cross-entropy.

  Args:
    logits: (B, K) float.
    labels: (B, L) int: L = 1 class index (binary, multi-class, ordinal) or L = K 0/1 labels.
    task: MedMNIST task string.
    weights: optional `class_weights`: each output's (or example's) loss times its class's weight.
  """
  logits = logits.astype(jnp.float32)
  weights = None if weights is None else jnp.asarray(weights)
  if task in (metrics.BINARY, metrics.MULTI_LABEL):
    loss = optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32))
    if weights is not None:
      loss = loss * jnp.where(labels == 1, weights[1], weights[0])
    return loss.mean(axis=-1)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels[:, 0])
  return loss if weights is None else loss * weights[labels[:, 0]]


def train_loss(params, *, state: TrainState, batch: dict[str, jax.Array], model, task: str, class_weights=None):
  """(mean training loss (), BatchNorm updates) of `params` on `batch`, with `state`'s batch statistics."""
  logits, updates = model.apply({"params": params, "batch_stats": state.batch_stats}, batch["image"], train=True,
                                mutable=["batch_stats"])
  return per_example_loss(logits, batch["label"], task, class_weights).mean(), updates


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model, task: str, class_weights=None):
  """One optimisation step on a global batch (loss weighted by `class_weights` when given); a
  non-finite loss, gradient or update is skipped and flagged.

  Returns:
    (new state, {"loss": (), "finite": () bool, "grad_norm": (), "grad_norm_quantum": (),
    "grad_norm_classical": ()}).
  """
  loss_fn = functools.partial(train_loss, state=state, batch=batch, model=model, task=task, class_weights=class_weights)
  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grad_norm = optax.global_norm(grads)
  norms = grad_norms(grads)
  # NaN guard: keep the previous state when anything is non-finite; the host stops the run.
  new_state, finite = keep_if_finite(
      loss, grad_norm, lambda: state.apply_gradients(grads=grads, batch_stats=updates.get("batch_stats", state.batch_stats)),
      state, lambda s: s.params)
  return new_state, {"loss": loss, "finite": finite, "grad_norm": grad_norm, **norms}


def eval_step(state: TrainState, batch: dict[str, jax.Array], *, model) -> tuple[jax.Array, dict]:
  """(B, K) float32 logits in inference mode (BatchNorm running statistics) and the head's
  per-example diagnostics (`heads.probe_stats`; empty for models without a dressed head)."""
  logits, probe = heads.apply_probed(model, {"params": state.params, "batch_stats": state.batch_stats},
                                     batch["image"], train=False)
  return logits.astype(jnp.float32), probe
