"""Fuzzing at the system's edges: the HTTP API against its OpenAPI document (issue 9, point 3)."""
