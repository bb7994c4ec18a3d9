"""Regions: the topology, the routing table in etcd, the local multi-region cluster
launcher (`homeport dev`), cross-region mirroring and its lag, the failover controller
and failback. Imports only `core`.
"""
