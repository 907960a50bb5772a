"""Choosing heads the same way for every family, and learning-rate grids that extend past an edge.

Families of frozen-feature heads (issue 44): "quantum" (in-path QCNN head), "twin" (its classical
twin), "control" (the circuit without entanglement: kind "unentangled", or the older "product"
block) and "linear". Residual heads are in no family: their circuit is not the prediction's only
path. Every family picks one design from its own menu (raw vs standardised features, LayerNorm
before or after the bottleneck, angle scale) by one rule (`select`), and the headline compares
family best with family best (`headline_pairs`); each design against its own twin and control is
the second table (`own_pairs`).

`search_rates` runs a (block, head) learning-rate search on one grid for every family and extends
an axis past any edge the choice sits on, until the choice is interior or the stated bound is reached.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

FAMILIES = ("quantum", "twin", "control", "linear")
OWN_SUFFIXES = {"twin": "_twin", "control": "_control"}  # "<design><suffix>": a design's own twin or control
SATURATED = 0.99  # every head's mean validation AUC at or above this: AUC can no longer choose
_KIND_FAMILY = {"quantum": "quantum", "classical": "twin", "unentangled": "control", "product": "control",
                "linear": "linear"}


def family(head: Mapping) -> str | None:
  """The family of a design from its FeatureHead options (`kind`, `residual`); None for residual heads."""
  return None if head.get("residual") else _KIND_FAMILY[head["kind"]]


@dataclasses.dataclass(frozen=True)
class Choice:
  """One family's design, chosen on validation.

  Attributes:
    family, design: the family and its chosen design.
    rule: "val_auc" (highest mean validation AUC) or "val_loss" (lowest mean validation loss, when
      the feature set is saturated).
    scores: design -> mean validation score under `rule`, for every candidate of the family.
  """
  family: str
  design: str
  rule: str
  scores: dict[str, float]


def saturated(records: Mapping[str, Sequence[Mapping]]) -> bool:
  """True when every design with runs has mean validation AUC ≥ SATURATED (records: design ->
  per-seed summaries with "val_auc")."""
  means = [np.mean([r["val_auc"] for r in runs]) for runs in records.values() if runs]
  return bool(means) and min(means) >= SATURATED


def select(records: Mapping[str, Sequence[Mapping]], families: Mapping[str, str | None]) -> dict[str, Choice]:
  """Each family's design by the same rule, from run records only (never test).

  Rule: the highest mean validation AUC over seeds; on a saturated feature set (`saturated`) the
  lowest mean validation loss instead, where every candidate's runs record "val_loss" (else AUC,
  rule "val_auc"). Ties go to the first design in `records` order (the config's menu order).

  Args:
    records: design -> per-seed summary dicts ("val_auc", optionally "val_loss"), one feature set.
    families: design -> family (`family`), None for designs in no family.

  Returns:
    family -> Choice, for each family with at least one design with runs.
  """
  by_loss = saturated(records)
  choices = {}
  for name in FAMILIES:
    candidates = {d: runs for d, runs in records.items() if runs and families.get(d) == name}
    if not candidates:
      continue
    use_loss = by_loss and all("val_loss" in r for runs in candidates.values() for r in runs)
    key, sign = ("val_loss", -1.0) if use_loss else ("val_auc", 1.0)
    scores = {d: float(np.mean([r[key] for r in runs])) for d, runs in candidates.items()}
    best = max(scores, key=lambda d: sign * scores[d])  # max keeps the first of equals
    choices[name] = Choice(name, best, key, scores)
  return choices


def headline_pairs(choices: Mapping[str, Choice]) -> list[tuple[str, str]]:
  """(quantum family's design, other family's design) for twin, control and linear: the headline rows."""
  if "quantum" not in choices:
    return []
  return [(choices["quantum"].design, choices[other].design) for other in FAMILIES[1:] if other in choices]


def own_pairs(designs: Sequence[str]) -> list[tuple[str, str]]:
  """(design, its own twin or control) for every design whose "<name>_twin" / "<name>_control" exists."""
  names = set(designs)
  return [(d, d + suffix) for d in designs for suffix in OWN_SUFFIXES.values() if d + suffix in names]


def next_rate(axis: Sequence[float], up: bool) -> float:
  """The rate one step past the end of an ascending `axis`, repeating the step two positions in
  (a 1-3 ladder 3e-4, 1e-3, …, 3e-2 continues 1e-1 and 1e-4), or the end step for a shorter axis;
  rounded to 2 significant digits."""
  axis = list(axis) if up else [1.0 / r for r in reversed(axis)]
  ratio = axis[-2] / axis[-3] if len(axis) >= 3 else axis[-1] / axis[-2] if len(axis) == 2 else 10.0
  rate = axis[-1] * ratio if up else 1.0 / (axis[-1] * ratio)
  return float(f"{rate:.2g}")


def grid_points(block: Sequence[float] | None, head: Sequence[float]) -> list[dict[str, float]]:
  """Grid points in order; a head without a block (block None) trains its block role at the head rate."""
  return [{"block": h if block is None else b, "rest": h} for b in (block or [None]) for h in head]


def _extend(axes: dict, chosen: dict[str, float], bounds: tuple[float, float] | None) -> tuple[dict, bool]:
  """Adds one rate past each edge the `chosen` point sits on, where `bounds` allow (`axes` changed in
  place); returns ({axis: "interior", "at bound" or "grid edge"} of the axes not extended, whether any was)."""
  edges, grew = {}, False
  for name, rate in (("block", chosen["block"]), ("head", chosen["rest"])):
    axis = axes[name]
    if axis is None:
      continue
    if len(axis) > 2 and axis[0] < rate < axis[-1]:
      edges[name] = "interior"
      continue
    step = next_rate(axis, rate == axis[-1])
    if bounds is not None and bounds[0] * (1 - 1e-9) <= step <= bounds[1] * (1 + 1e-9):
      axes[name] = sorted(axis + [step])
      grew = True
    else:
      edges[name] = "at bound" if bounds is not None else "grid edge"
  return edges, grew


def search_rates(evaluate: Callable[[list[dict[str, float]]], list[list[float]]], block: Sequence[float] | None,
                 head: Sequence[float], bounds: tuple[float, float] | None = None) -> dict:
  """A learning-rate search on the (block, head) grid, extended past edges.

  Every grid point is evaluated once (`evaluate(points) -> per-seed validation AUCs of each`);
  the choice is the highest mean validation AUC (first of equals in grid order, axes ascending).
  With `bounds` (low, high), while the chosen block or head rate is the lowest or highest of its
  axis, the axis gets one more rate in that direction (`next_rate`) if it lies within the bounds,
  and the new points are evaluated; the search stops when the choice is interior on both axes or
  every edge it sits on is at a bound. Without bounds the grid is searched as given.

  Args:
    evaluate: maps a list of rate points {"block", "rest"} to one list of per-seed validation AUCs each.
    block: block-rate axis (ascending), None for a head without a block (linear).
    head: head-rate axis (ascending).
    bounds: (lowest, highest) rate an extension may add; None: no extension.

  Returns:
    {"chosen": rates, "grid": [{"rates", "val_auc", "val_auc_mean", "round"}, …] every evaluated point
    in evaluation order, "axes": {"block", "head"} final axes, "bounds", "edges": {axis: "interior",
    "at bound" or "grid edge"} of the choice ("grid edge" only without bounds)}.
  """
  axes = {"block": None if block is None else sorted(block), "head": sorted(head)}
  points: dict[tuple, dict] = {}
  round_ = 0
  while True:
    grid = grid_points(axes["block"], axes["head"])
    new = [r for r in grid if (r["block"], r["rest"]) not in points]
    for rates, aucs in zip(new, evaluate(new) if new else []):
      points[(rates["block"], rates["rest"])] = {"rates": rates, "val_auc": [float(a) for a in aucs],
                                                 "val_auc_mean": float(np.mean(aucs)), "round": round_}
    chosen = max(grid, key=lambda r: points[(r["block"], r["rest"])]["val_auc_mean"])
    edges, grew = _extend(axes, chosen, bounds)
    if not grew:
      return {"chosen": chosen, "grid": list(points.values()), "axes": axes,
              "bounds": None if bounds is None else list(bounds), "edges": edges}
    round_ += 1
