"""CIFAR and ImageNet-stem ResNets on torchvision's blocks, with the layer list the study reads."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

BLOCKS_PER_STAGE = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


@dataclass(frozen=True)
class ArchConfig:
    """Everything needed to rebuild a network before its weights are loaded."""

    depth: int = 18  # 18, 34 or 50
    width: int = 64  # channels of the first stage; 64 is the standard ResNet
    stem: str = "cifar"  # "cifar": 3x3 stride-1 conv1, no max-pool; "imagenet": 7x7 stride-2 + max-pool
    stem_padding: int = 1  # conv1 padding of the CIFAR stem (solo-learn uses 2)
    stem_pool: bool = False  # a 3x3 stride-2 max-pool after the CIFAR stem (some codebases keep torchvision's)
    num_classes: int = 10  # 0: no classifier, the network returns pooled features

    def __post_init__(self) -> None:
        if self.depth not in BLOCKS_PER_STAGE:
            raise ValueError(f"depth must be one of {sorted(BLOCKS_PER_STAGE)}, not {self.depth}")
        if self.stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', not {self.stem!r}")
        if self.width < 1 or self.num_classes < 0:
            raise ValueError("width must be >= 1 and num_classes >= 0")

    @property
    def bottleneck(self) -> bool:
        return self.depth >= 50

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features (the classifier's input)."""
        return self.width * 8 * (4 if self.bottleneck else 1)

    @property
    def stem_kind(self) -> str:
        """'cifar' (3x3 stride 1), 'cifar-maxpool' (the same, then a max-pool) or 'imagenet' (7x7 stride 2 + pool)."""
        return "cifar-maxpool" if self.stem == "cifar" and self.stem_pool else self.stem

    @property
    def name(self) -> str:
        return f"resnet{self.depth}" + ("" if self.width == 64 else f"-w{self.width}")


class CifarResNet(ResNet):
    """torchvision's ResNet with a configurable width and stem.

    Built on torchvision's own blocks and `_make_layer`, so parameter names match torchvision and
    timm (`conv1.weight`, `layer1.0.conv1.weight`, `fc.weight`) and public checkpoints load as they
    are. The constructor skips ResNet.__init__ because that hard-codes 64 channels and the
    ImageNet stem.
    """

    def __init__(self, config: ArchConfig) -> None:
        nn.Module.__init__(self)
        self.config = config
        block = Bottleneck if config.bottleneck else BasicBlock
        self._norm_layer = nn.BatchNorm2d
        self.dilation, self.groups, self.base_width = 1, 1, 64
        self.inplanes = config.width
        if config.stem == "cifar":
            self.conv1 = nn.Conv2d(3, config.width, 3, 1, config.stem_padding, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1) if config.stem_pool else nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, config.width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(config.width)
        self.relu = nn.ReLU(inplace=True)
        blocks = BLOCKS_PER_STAGE[config.depth]
        self.layer1 = self._make_layer(block, config.width, blocks[0])
        self.layer2 = self._make_layer(block, config.width * 2, blocks[1], stride=2)
        self.layer3 = self._make_layer(block, config.width * 4, blocks[2], stride=2)
        self.layer4 = self._make_layer(block, config.width * 8, blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(config.feature_dim, config.num_classes) if config.num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def build_resnet(config: ArchConfig) -> CifarResNet:
    """A freshly initialised network for `config`."""
    return CifarResNet(config)


def resnet_layers(config: ArchConfig) -> list[tuple[str, str]]:
    """(readable name, torch.fx node name) for every representation the study reads, in depth order.

    Per block: the residual branch after its last BatchNorm, before the addition ("residual"), and the
    block output after the addition and ReLU ("output"). torchvision's blocks call one ReLU module
    several times, so fx names the last call `relu_1` (BasicBlock) or `relu_2` (Bottleneck); reading
    those nodes instead of hooking the module avoids the overwritten-hook bug.
    """
    last_bn, last_relu = ("bn3", "relu_2") if config.bottleneck else ("bn2", "relu_1")
    layers = [("stem", "maxpool" if config.stem == "imagenet" or config.stem_pool else "relu")]
    for stage, count in enumerate(BLOCKS_PER_STAGE[config.depth], start=1):
        for index in range(count):
            block = f"layer{stage}.{index}"
            layers.append((f"{block} residual", f"{block}.{last_bn}"))
            layers.append((f"{block} output", f"{block}.{last_relu}"))
    layers.append(("pooled", "flatten"))
    if config.num_classes:
        layers.append(("logits", "fc"))
    return layers
