"""Chaos game days: scenario files, the Toxiproxy driver, the fault registry, the
history recorder, the history checker and the reports.
"""
