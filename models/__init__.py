"""Networks for CKA Lens: architectures, checkpoint loading from every source, the registry.

    load_model("bundled:simclr-resnet18-w16")
    load_model("hub:edadaltocg/resnet50_simclr_cifar10")     # optional @REVISION and :FILENAME
    load_model("file:/path/to/checkpoint.ckpt")
    load_uploaded(data, "weights.pth")                        # bytes from an upload, never written to disk

Every failure is a CheckpointError whose message says what was wrong and what would work.
"""

from models.errors import CheckpointError
from models.loader import LoadedModel, ModelInfo, load_uploaded
from models.registry import HUB_ENTRIES, RegistryEntry, list_bundled, registry_entries
from models.resnet import ArchConfig, build_resnet, resnet_layers
from models.sources import load_model

__all__ = [
    "HUB_ENTRIES",
    "ArchConfig",
    "CheckpointError",
    "LoadedModel",
    "ModelInfo",
    "RegistryEntry",
    "build_resnet",
    "list_bundled",
    "load_model",
    "load_uploaded",
    "registry_entries",
    "resnet_layers",
]
