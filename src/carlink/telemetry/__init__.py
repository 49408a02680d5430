"""Telemetry ingest and the last known state of each car, every value with its timestamp (RMT-2)."""
