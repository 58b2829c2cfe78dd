"""Benchmarks: bounded scripts that print a table and write a JSON result (docs/benchmarks.md)."""
