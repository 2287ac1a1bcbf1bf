"""Evaluation outputs for people: the HTML / JSON / Markdown report of an eval run."""
