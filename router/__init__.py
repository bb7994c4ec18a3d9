"""The API: protobuf definitions, the gRPC gateway servicer, and the region-aware client SDK.

The gateway validates, routes and enqueues; the SDK caches the routing table and follows
WRONG_REGION redirects. Imports `regions` (topology, routing table) and `core`.
"""
