"""The weights' digest: a sha256 of the tensors a network is built from, whatever file held them.

The same network as a bare `.pth`, inside a Lightning checkpoint, as safetensors or in a Hub repo is one network:
its digest is taken after the loader has read the file, dropped heads and wrappers' prefixes and cast the weights
to float32, so all of those wrappings get one digest, and the result store (keyed by it) reuses their results.
It covers every tensor's name, dtype, shape and bytes, in the order of the names; BatchNorm's
`num_batches_tracked` counters are left out, since they do not change what the network computes and some
exporters omit them (the loader then fills them in).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import torch

from core.spill import bytes_of

_FORMAT = b"cka-lens weights digest 1\n"  # names this way of digesting, so another could never collide with it
_LEFT_OUT = "num_batches_tracked"


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """The sha256 (hex) of `tensors`: for each name in sorted order, one line of JSON with its name, dtype and shape,
    then its bytes in row-major order (the line and the shape fix where each tensor's bytes end)."""
    digest = hashlib.sha256(_FORMAT)
    for name in sorted(tensors):
        if name.rsplit(".", 1)[-1] == _LEFT_OUT:
            continue
        tensor = tensors[name].detach().cpu().contiguous()
        head = [name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)]
        digest.update(json.dumps(head).encode() + b"\n")
        digest.update(bytes_of(tensor))
    return digest.hexdigest()
