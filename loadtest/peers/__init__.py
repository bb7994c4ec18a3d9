"""The peer benchmark (`homeport bench peers`): homeport beside the Python task queues a
user would pick instead, on the same Redis, with the same no-op workload.

One module per contender (`celery_peer.py`, `rq_peer.py`, ...) holds both sides: what
its worker process imports (the app and the no-op task) and a `Contender` that enqueues
and names the worker command. `marker.py` is the measuring point every no-op handler
calls; `bench.py` drives the runs; `report.py` renders the table and the plot.
"""
