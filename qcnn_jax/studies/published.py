"""Published results to compare against, stored once in ``published_results.json``.

The file holds ``sources`` (citation, DOI/URL, which table, how the numbers were checked) and
``rows``: one published method on one dataset with its test AUC and ACC as fractions in [0, 1]
(``None`` where the source reports no value or the value could not be verified).
"""

import dataclasses
import functools
from importlib import resources
import json
from typing import Any

DATA_FILE = "published_results.json"


@dataclasses.dataclass(frozen=True)
class PublishedResult:
  """One published number pair.

  Attributes:
    dataset: MedMNIST flag (e.g. "breastmnist") or "medical_mnist".
    method: the method as the source names it, e.g. "ResNet-18 (28)".
    test_auc: test AUC in [0, 1], or None.
    test_acc: test accuracy in [0, 1], or None.
    source: key into `sources()`.
  """
  dataset: str
  method: str
  test_auc: float | None
  test_acc: float | None
  source: str


@functools.cache
def _load() -> dict[str, Any]:
  text = resources.files("qcnn_jax.studies").joinpath(DATA_FILE).read_text(encoding="utf-8")
  return json.loads(text)


def sources() -> dict[str, dict[str, str]]:
  """Source key → {"citation", "table", "verification", and "doi"/"url" where known}."""
  return _load()["sources"]


def all_results() -> list[PublishedResult]:
  """Every stored row, in file order."""
  return [PublishedResult(**row) for row in _load()["rows"]]


def published(dataset: str) -> list[PublishedResult]:
  """Rows for one dataset in file order (empty when nothing is stored for it)."""
  return [row for row in all_results() if row.dataset == dataset]
