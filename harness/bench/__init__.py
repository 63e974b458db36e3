"""Benchmarks that print tables and write JSON (``streamrec bench NAME``); numbers, not tests."""
