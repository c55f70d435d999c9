"""The modules behind `make bench` (entry point and documentation: scripts/bench.py)."""
