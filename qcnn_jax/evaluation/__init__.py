"""Evaluation: MedMNIST metrics, paired bootstrap statistics, run files and plots (`reports`) and
run provenance. Imports no other part of the package."""
