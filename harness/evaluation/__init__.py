"""Evaluation: prequential replay against baselines, metrics, reports (issue 5)."""
