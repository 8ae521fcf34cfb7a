"""The command line: `python -m cli compare | train | list | publish` (also `compare` under torchrun)."""
