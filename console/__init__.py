"""`homeport console`: a web console that sees and steers every region from a browser.

It talks to the gateways (gRPC, with the operator's bearer tokens) and to etcd (routes,
health votes, failover history, promotion and failback), exactly as the CLI does, and never
to Redis or PostgreSQL: what the console shows is what the public API and the control
store say. Pages are server-rendered HTML with a small script for live refresh; nothing is
loaded from the internet. See docs/console.md.
"""
