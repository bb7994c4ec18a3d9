"""Generated gRPC modules; see router/codegen.py."""
