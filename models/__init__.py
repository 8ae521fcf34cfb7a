"""Networks for CKA Lens: architectures, checkpoint loading from every source, the registry.

    spec = ModelSpec.parse("hub:edadaltocg/resnet50_simclr_cifar10")  # parsed once, where a spec enters
    load_model(spec)
    load_model(ModelSpec.parse("bundled:simclr-resnet18-w16"))
    load_model(ModelSpec.parse("file:ckpt.pth#pool=yes,norm=imagenet"))  # what the weights cannot say, chosen
    load_uploaded(data, "weights.pth")                        # bytes from an upload, never written to disk

What the weights cannot say (a max-pool after a 3x3 stem, the stem's padding, the input normalisation) is
measured on CIFAR-10 test images where the source does not say it (models.calibration).

Every failure is a CheckpointError whose message says what was wrong and what would work. The faces (the app,
the command line, training) import from here, not from the modules behind it.
"""

from models.calibration import NORMALISATIONS, normalisation_name
from models.checkpoint import load_uploaded, with_choices
from models.errors import CheckpointError
from models.folder_format import SNAPSHOT_DIR, save_folder, save_snapshot, save_snapshot_config
from models.formats import SUPPORTED_SUFFIXES
from models.loaded import LoadedModel, ModelInfo, NamedArch
from models.named import build_named, input_config, load_named
from models.registry import (
    AUTO,
    DEFAULT_PAIR,
    HUB_ENTRIES,
    NO_SIBLING,
    RegistryEntry,
    Siblings,
    choose_sibling,
    list_bundled,
    registry_entries,
    siblings,
)
from models.resnet import ArchConfig, build_resnet, resnet_layers
from models.snapshots import bundled_series
from models.spec import ModelSpec, SpecChoices
from models.specs import load_model, series_of_specs, weights_version


def __getattr__(name: str):
    """`publish_folder` is imported when first asked for: huggingface_hub is imported only when the Hub is used."""
    if name == "publish_folder":
        from models.hub import publish_folder

        return publish_folder
    raise AttributeError(f"module 'models' has no attribute {name!r}")


__all__ = [
    "AUTO",
    "DEFAULT_PAIR",
    "HUB_ENTRIES",
    "NORMALISATIONS",
    "NO_SIBLING",
    "SNAPSHOT_DIR",
    "SUPPORTED_SUFFIXES",
    "ArchConfig",
    "CheckpointError",
    "LoadedModel",
    "ModelInfo",
    "ModelSpec",
    "NamedArch",
    "RegistryEntry",
    "Siblings",
    "SpecChoices",
    "build_named",
    "build_resnet",
    "bundled_series",
    "choose_sibling",
    "list_bundled",
    "input_config",
    "load_model",
    "load_named",
    "load_uploaded",
    "normalisation_name",
    "publish_folder",
    "registry_entries",
    "resnet_layers",
    "save_folder",
    "save_snapshot",
    "save_snapshot_config",
    "series_of_specs",
    "siblings",
    "weights_version",
    "with_choices",
]
