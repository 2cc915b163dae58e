"""Janitor service: deletes stored results on a Redis-backed schedule and sweeps temp files."""
