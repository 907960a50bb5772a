"""A trained run for use beyond its workdir: predictions on image files, an exported model that runs
without this code, and its model card.

  predict.predict_files(workdir, inputs)    one row per file: every class's probability, the label
  export.export_run(workdir, out)           jax.export artefact + parameters + config + model card
  load_model(path)                          the exported model (`artifact.Model`: apply, probabilities)
"""

from qcnn_jax.serving.artifact import Model, load_model

# Decision threshold on a binary (or multi-label) probability: the one every run's ACC uses
# (`qcnn_jax.evaluation.metrics.predictions`).
THRESHOLD = 0.5


class ServingError(ValueError):
  """A prediction or export request that cannot run as given (no matching input, an existing output
  folder, a run without records); the message names the fix."""


__all__ = ["Model", "ServingError", "THRESHOLD", "load_model"]
