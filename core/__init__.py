"""The engine of one region.

Task model and validation, the partitioner, Redis key names and Lua scripts, enqueue,
the worker, the region manager's loops (assignment, delayed promoter, reclaimer), the
PostgreSQL record store and the metrics. `core` imports no other homeport package.
"""
