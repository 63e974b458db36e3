"""Evaluation: prequential replay against baselines, metrics, reports."""
