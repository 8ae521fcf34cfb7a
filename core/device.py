"""The compute device: which one to use, and how to wait for its queued work."""

from __future__ import annotations

import torch

from core.errors import OptionsError


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU; a clear error when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionsError("--device cuda was asked for, but no CUDA device is available; use auto or cpu")
    if name not in ("cpu", "cuda"):
        raise OptionsError(f"device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so a timer around it measures the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
