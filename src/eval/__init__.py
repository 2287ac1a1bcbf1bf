"""Evaluation outputs for people: the HTML / JSON / Markdown report of an eval run (report.py), the sample kinds a
system renders into it (items.py) and the page helpers they share (page.py)."""
