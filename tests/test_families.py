"""Families chosen the same way (pure selection over run records) and learning-rate grids that extend."""

import math

import pytest

from qcnn_jax.studies import families

RATES = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def runs(val_auc, val_loss=None, seeds=3):
  """Per-seed summaries with these validation metrics (the same for every seed)."""
  return [{"val_auc": val_auc, **({} if val_loss is None else {"val_loss": val_loss})} for _ in range(seeds)]


# The old study's asymmetric shape: quantum best of several by validation, "twin" = that design's own
# twin, "linear" always the standardised one. Here the twin family's best is another design's twin and
# the linear family's best is the raw-feature head, so the old pairing would pick other rows.
OLD_SHAPE = {
    "inpath_pi": runs(0.84), "inpath_pi_twin": runs(0.86), "inpath_pi_raw": runs(0.87), "inpath_pi_raw_twin": runs(0.83),
    "inpath_pi_control": runs(0.80), "inpath_pi_raw_control": runs(0.81), "residual": runs(0.95),
    "linear": runs(0.82), "linear_raw": runs(0.85)}
HEADS = {"inpath_pi": {"kind": "quantum"}, "inpath_pi_twin": {"kind": "classical"},
         "inpath_pi_raw": {"kind": "quantum"}, "inpath_pi_raw_twin": {"kind": "classical"},
         "inpath_pi_control": {"kind": "unentangled"}, "inpath_pi_raw_control": {"kind": "unentangled"},
         "residual": {"kind": "quantum", "residual": True}, "linear": {"kind": "linear"},
         "linear_raw": {"kind": "linear"}}
FAMILY = {d: families.family(h) for d, h in HEADS.items()}


def test_every_family_picks_its_own_best_by_validation_and_the_headline_pairs_family_bests():
  assert FAMILY["residual"] is None and FAMILY["inpath_pi_control"] == "control"
  assert families.family({"kind": "product"}) == "control"
  choices = families.select(OLD_SHAPE, FAMILY)
  assert {f: c.design for f, c in choices.items()} == {
      "quantum": "inpath_pi_raw", "twin": "inpath_pi_twin", "control": "inpath_pi_raw_control", "linear": "linear_raw"}
  assert all(c.rule == "val_auc" for c in choices.values())
  assert choices["linear"].scores == pytest.approx({"linear": 0.82, "linear_raw": 0.85})
  # Old behaviour: quantum best vs its own twin and the standardised linear head. Not what is compared now.
  assert families.headline_pairs(choices) == [("inpath_pi_raw", "inpath_pi_twin"),
                                              ("inpath_pi_raw", "inpath_pi_raw_control"),
                                              ("inpath_pi_raw", "linear_raw")]
  assert ("inpath_pi_raw", "inpath_pi_raw_twin") not in families.headline_pairs(choices)
  # The residual design (highest validation AUC of all) is in no family and never chosen.
  assert "residual" not in {c.design for c in choices.values()}
  assert families.own_pairs(list(OLD_SHAPE)) == [
      ("inpath_pi", "inpath_pi_twin"), ("inpath_pi", "inpath_pi_control"),
      ("inpath_pi_raw", "inpath_pi_raw_twin"), ("inpath_pi_raw", "inpath_pi_raw_control")]


def test_a_saturated_set_chooses_by_validation_loss_and_ties_go_to_menu_order():
  records = {"q_a": runs(0.999, 0.20), "q_b": runs(0.995, 0.05), "t_a": runs(0.997, 0.10), "t_b": runs(0.997, 0.10),
             "lin": runs(0.992, 0.30), "lin_raw": runs(0.999, 0.40)}
  fam = {"q_a": "quantum", "q_b": "quantum", "t_a": "twin", "t_b": "twin", "lin": "linear", "lin_raw": "linear"}
  assert families.saturated(records)
  choices = families.select(records, fam)
  assert {f: (c.design, c.rule) for f, c in choices.items()} == {
      "quantum": ("q_b", "val_loss"), "twin": ("t_a", "val_loss"), "linear": ("lin", "val_loss")}
  # One head below 0.99: not saturated, AUC chooses (the linear head's higher loss does not matter).
  records["lin"] = runs(0.98, 0.30)
  assert not families.saturated(records)
  assert families.select(records, fam)["quantum"].design == "q_a"
  # Saturated but a family without recorded validation loss: AUC chooses there, and says so.
  records["lin"], records["lin_raw"] = runs(0.992), runs(0.999)
  assert families.select(records, fam)["linear"] == families.Choice(
      "linear", "lin_raw", "val_auc", {"lin": 0.992, "lin_raw": 0.999})
  assert families.select(records, fam)["quantum"].rule == "val_loss"


def surface(best_block: float, best_head: float):
  """Mean validation AUC as a smooth bump in log rates with its peak at (best_block, best_head);
  also returns the list of every point asked for."""
  asked = []

  def evaluate(points):
    asked.extend(points)
    return [[0.9 - 0.01 * ((math.log10(p["block"] / best_block)) ** 2 + (math.log10(p["rest"] / best_head)) ** 2)] * 2
            for p in points]
  return evaluate, asked


def test_next_rate_continues_a_1_3_ladder():
  assert families.next_rate(RATES, up=True) == 0.1 and families.next_rate(RATES, up=False) == 1e-4
  assert families.next_rate((1e-4, *RATES), up=False) == 3e-5 and families.next_rate((*RATES, 0.1), up=True) == 0.3
  assert families.next_rate((1e-3, 1e-2), up=True) == 0.1


def test_the_rate_search_extends_past_edges_until_interior_or_at_the_bound():
  evaluate, asked = surface(best_block=0.3, best_head=2e-5)  # both outside the 5 x 5 grid
  search = families.search_rates(evaluate, RATES, RATES, bounds=(3e-5, 1.0))
  assert search["chosen"] == {"block": 0.3, "rest": 3e-5}
  assert search["edges"] == {"block": "interior", "head": "at bound"}  # 1e-5 would pass the bound 3e-5
  assert search["axes"]["block"] == [*RATES, 0.1, 0.3, 1.0] and search["axes"]["head"] == [3e-5, 1e-4, *RATES]
  keys = [(p["block"], p["rest"]) for p in asked]
  assert len(keys) == len(set(keys)) == len(search["grid"]) == 8 * 7  # every point of the final grid, once
  assert all(3e-5 <= r <= 1.0 for k in keys for r in k)
  assert [p["rates"] for p in search["grid"][:25]] == [{"block": b, "rest": h} for b in RATES for h in RATES]
  assert max(p["round"] for p in search["grid"]) == 3 and search["bounds"] == [3e-5, 1.0]
  best = max(search["grid"], key=lambda p: p["val_auc_mean"])
  assert best["rates"] == search["chosen"] and best["val_auc"] == [best["val_auc_mean"]] * 2


def test_an_interior_choice_searches_the_grid_once_and_a_linear_head_has_one_axis():
  evaluate, asked = surface(best_block=3e-3, best_head=1e-3)
  search = families.search_rates(evaluate, RATES, RATES, bounds=(1e-5, 1.0))
  assert len(asked) == 25 and search["chosen"] == {"block": 3e-3, "rest": 1e-3}
  assert search["edges"] == {"block": "interior", "head": "interior"}
  evaluate, asked = surface(best_block=1.0, best_head=0.2)  # block = head rate: peak of the sum at ~0.45
  linear = families.search_rates(evaluate, None, RATES, bounds=(1e-5, 1.0))
  assert linear["chosen"] == {"block": 0.3, "rest": 0.3} and linear["edges"] == {"head": "interior"}
  assert len(asked) == 8 and all(p["block"] == p["rest"] for p in asked)  # 5 + 0.1, 0.3, 1.0
  evaluate, asked = surface(best_block=0.3, best_head=0.3)  # without bounds: the grid as given
  fixed = families.search_rates(evaluate, RATES, RATES)
  assert len(asked) == 25 and fixed["chosen"] == {"block": 3e-2, "rest": 3e-2}
  assert fixed["edges"] == {"block": "grid edge", "head": "grid edge"} and fixed["bounds"] is None
