"""The one feature-extraction path: named layers of a network, read in a single forward pass."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor


class FeatureExtractor:
    """Returns the outputs of chosen layers, in the order given, for a batch of normalised images.

    Layers are torch.fx graph nodes (`create_feature_extractor`), so a module called twice in one
    forward pass (torchvision's blocks reuse one ReLU) gives each call its own node, and nothing is
    left registered on the network. Networks that fx cannot trace fall back to forward hooks on
    module names; the hooks live only for the duration of one call.
    """

    def __init__(self, module: nn.Module, layers: Sequence[tuple[str, str]], device: torch.device):
        if not layers:
            raise ValueError("choose at least one layer")
        self.names = [name for name, _ in layers]
        self.nodes = [node for _, node in layers]
        self.device = device
        module = module.eval().to(device, memory_format=torch.channels_last)
        try:
            self._graph: nn.Module | None = create_feature_extractor(module, {n: n for n in self.nodes}).eval()
            self._module = module
        except Exception:  # noqa: BLE001 - any tracing failure means: use hooks instead
            self._graph, self._module = None, module
            missing = set(self.nodes) - dict(module.named_modules()).keys()
            if missing:
                raise ValueError(f"layers not found in the network: {sorted(missing)}") from None

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Features per layer for `images` (normalised, N x 3 x H x W), each [N, ...]."""
        x = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        with autocast:
            if self._graph is not None:
                out = self._graph(x)
                return [out[n] for n in self.nodes]
            return self._hooked(x)

    def _hooked(self, x: torch.Tensor) -> list[torch.Tensor]:
        captured: dict[str, torch.Tensor] = {}
        modules = dict(self._module.named_modules())
        handles = [
            modules[n].register_forward_hook(lambda _m, _i, out, n=n: captured.__setitem__(n, out)) for n in self.nodes
        ]
        try:
            self._module(x)
        finally:
            for h in handles:
                h.remove()
        return [captured[n] for n in self.nodes]
