"""Networks for CKA Lens: architectures, checkpoint loading from every source, the registry.

    load_model("bundled:simclr-resnet18-w16")
    load_model("hub:edadaltocg/resnet50_simclr_cifar10")     # optional @REVISION and :FILENAME
    load_model("file:/path/to/checkpoint.ckpt")
    load_uploaded(data, "weights.pth")                        # bytes from an upload, never written to disk
    load_model("file:ckpt.pth#pool=yes,norm=imagenet")       # what the weights cannot say, chosen by a person

What the weights cannot say (a max-pool after a 3x3 stem, the stem's padding, the input normalisation) is
measured on CIFAR-10 test images where the source does not say it (models.calibration).

Every failure is a CheckpointError whose message says what was wrong and what would work.
"""

from models.errors import CheckpointError
from models.loaded import LoadedModel, ModelInfo
from models.loader import load_uploaded, with_choices
from models.registry import (
    DEFAULT_PAIR,
    HUB_ENTRIES,
    RegistryEntry,
    Siblings,
    choose_sibling,
    list_bundled,
    registry_entries,
    siblings,
)
from models.resnet import ArchConfig, build_resnet, resnet_layers
from models.specs import load_model, split_choices, weights_version

__all__ = [
    "DEFAULT_PAIR",
    "HUB_ENTRIES",
    "ArchConfig",
    "CheckpointError",
    "LoadedModel",
    "ModelInfo",
    "RegistryEntry",
    "Siblings",
    "build_resnet",
    "choose_sibling",
    "list_bundled",
    "load_model",
    "load_uploaded",
    "registry_entries",
    "resnet_layers",
    "siblings",
    "split_choices",
    "weights_version",
    "with_choices",
]
