"""Capacity planning: a SimPy model of homeport (regions, partitions, per-key order,
workers, failover), its calibration from measurements, and the planner.
"""
