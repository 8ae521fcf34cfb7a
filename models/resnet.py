"""The ResNets CKA Lens rebuilds, described by one ArchConfig, with the layer list the study reads.

Post-activation ResNets (torchvision, timm, kuangliu, the 3-stage CIFAR ResNet-20/32/44/56/110) are
built on torchvision's own blocks, so parameter names match torchvision's and public checkpoints load
as they are; pre-activation ResNets and Wide ResNets live in `models.preact_resnet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from models.errors import ArchitectureError

# torchvision's blocks per stage for each depth; other layouts give `stages` themselves
BLOCKS_PER_STAGE = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
SHORTCUTS = ("conv", "pad")
SHORTCUT_INPUTS = ("pre", "raw")


@dataclass(frozen=True)
class ArchConfig:
    """Everything needed to rebuild a network before its weights are loaded."""

    depth: int = 18  # layers with weights on the main path: 2 per basic block, 3 per bottleneck, + stem + head
    width: int = 64  # channels of the first stage; stage k has width * 2**k (times 4 in bottlenecks)
    stem: str = "cifar"  # "cifar": 3x3 stride-1 conv1, no max-pool; "imagenet": 7x7 stride-2 + max-pool
    stem_padding: int = 1  # conv1 padding of the CIFAR stem (solo-learn uses 2)
    stem_pool: bool = False  # a 3x3 stride-2 max-pool after the CIFAR stem (some codebases keep torchvision's)
    num_classes: int = 10  # 0: no classifier, the network returns pooled features
    stages: tuple[int, ...] = ()  # blocks per stage; () means torchvision's for `depth`
    stem_width: int = 0  # conv1's output channels; 0 means `width` (Wide ResNets: 16)
    stem_relu: bool = True  # False: the stem's ReLU is skipped (lightly's nn.Sequential backbone)
    shortcut: str = "conv"  # downsampling shortcut: 1x1 conv ("conv") or subsample + zero channels ("pad")
    preact: bool = False  # pre-activation blocks (BN-ReLU-conv); see models.preact_resnet
    shortcut_input: str = "pre"  # pre-activation only: the projection reads the "pre"-activated or "raw" input
    final_norm: bool = False  # pre-activation only: BN + ReLU after the last stage
    conv_bias: bool = False  # pre-activation only: convolutions with a bias (meliketoy's Wide ResNet)
    stride_on_second: bool = False  # pre-activation only: the block's second conv strides, not its first
    # which checkpoints' forward pass the pre-activation options copy, for notes
    dialect: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        stages = tuple(int(n) for n in self.stages) or BLOCKS_PER_STAGE.get(self.depth, ())
        object.__setattr__(self, "stages", stages)
        if not stages:
            raise ArchitectureError(f"depth must be one of {sorted(BLOCKS_PER_STAGE)} unless stages are given")
        if not (3 <= len(stages) <= 4 and all(n >= 1 for n in stages)):
            raise ArchitectureError(f"stages must be 3 or 4 positive block counts, not {stages}")
        if self.depth not in (2 * sum(stages) + 2, 3 * sum(stages) + 2):
            raise ArchitectureError(f"depth {self.depth} does not match {stages} blocks per stage")
        if self.stem not in ("cifar", "imagenet"):
            raise ArchitectureError(f"stem must be 'cifar' or 'imagenet', not {self.stem!r}")
        if self.width < 1 or self.num_classes < 0 or self.stem_width < 0:
            raise ArchitectureError("width must be >= 1, stem_width and num_classes >= 0")
        if self.shortcut not in SHORTCUTS or self.shortcut_input not in SHORTCUT_INPUTS:
            raise ArchitectureError(f"shortcut must be one of {SHORTCUTS} and shortcut_input one of {SHORTCUT_INPUTS}")
        if self.preact and self.bottleneck:
            raise ArchitectureError("pre-activation bottleneck ResNets are not supported")

    @property
    def bottleneck(self) -> bool:
        return self.depth == 3 * sum(self.stages) + 2

    @property
    def expansion(self) -> int:
        return 4 if self.bottleneck else 1

    @property
    def stage_widths(self) -> tuple[int, ...]:
        return tuple(self.width * 2**k for k in range(len(self.stages)))

    @property
    def stem_channels(self) -> int:
        return self.stem_width or self.width

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features (the classifier's input)."""
        return self.stage_widths[-1] * self.expansion

    @property
    def stem_kind(self) -> str:
        """'cifar' (3x3 stride 1), 'cifar-maxpool' (the same, then a max-pool) or 'imagenet' (7x7 stride 2 + pool)."""
        return "cifar-maxpool" if self.stem == "cifar" and self.stem_pool else self.stem

    @property
    def name(self) -> str:
        """resnet18, resnet18-w16, resnet20, preact-resnet18, wrn-16-8 ..."""
        if self.preact and self.stem_width and self.width != self.stem_width:
            return f"wrn-{self.depth + 2}-{self.width // self.stem_width}"
        base = ("preact-" if self.preact else "") + f"resnet{self.depth}"
        standard = 16 if len(self.stages) == 3 else 64
        return base + ("" if self.width == standard else f"-w{self.width}")


class PadShortcut(nn.Module):
    """A parameter-free downsampling shortcut: every other row and column, zero channels added on both sides."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class CifarResNet(ResNet):
    """torchvision's ResNet with a configurable width, stem and number of stages.

    Built on torchvision's own blocks, so parameter names match torchvision and timm (`conv1.weight`,
    `layer1.0.conv1.weight`, `fc.weight`). The constructor skips ResNet.__init__ because that hard-codes
    64 channels, four stages and the ImageNet stem; a 3-stage network has an identity `layer4`.
    """

    def __init__(self, config: ArchConfig) -> None:
        nn.Module.__init__(self)
        self.config = config
        block = Bottleneck if config.bottleneck else BasicBlock
        self._norm_layer = nn.BatchNorm2d
        self.dilation, self.groups, self.base_width = 1, 1, 64
        self.inplanes = config.stem_channels
        if config.stem == "cifar":
            self.conv1 = nn.Conv2d(3, self.inplanes, 3, 1, config.stem_padding, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1) if config.stem_pool else nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True) if config.stem_relu else nn.Identity()
        for index, (count, planes) in enumerate(zip(config.stages, config.stage_widths, strict=True)):
            stride = 1 if index == 0 else 2
            self.add_module(f"layer{index + 1}", self._stage(block, planes, count, stride))
        if len(config.stages) == 3:
            self.layer4 = nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(config.feature_dim, config.num_classes) if config.num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, block: type[BasicBlock | Bottleneck], planes: int, count: int, stride: int) -> nn.Sequential:
        out = planes * block.expansion
        if self.config.shortcut == "pad" and (stride != 1 or self.inplanes != out):
            first = block(self.inplanes, planes, stride, PadShortcut(self.inplanes, out, stride))
            self.inplanes = out
            return nn.Sequential(first, *(block(out, planes) for _ in range(count - 1)))
        return self._make_layer(block, planes, count, stride=stride)


def build_resnet(config: ArchConfig) -> nn.Module:
    """A freshly initialised network for `config`."""
    if config.preact:
        from models.preact_resnet import PreActResNet

        return PreActResNet(config)
    return CifarResNet(config)


def resnet_layers(config: ArchConfig) -> list[tuple[str, str]]:
    """(readable name, torch.fx node name) for every representation the study reads, in depth order.

    Per block: the residual branch just before the addition ("residual"), and the block output ("output":
    after the addition and, in post-activation blocks, the ReLU). torchvision's blocks call one ReLU module
    several times, so fx names the last call `relu_1` (BasicBlock) or `relu_2` (Bottleneck); reading those
    nodes instead of hooking the module avoids the overwritten-hook bug.
    """
    if config.preact:
        residual, output, stem = "conv2", "out", "conv1"
    else:
        residual, output = ("bn3", "relu_2") if config.bottleneck else ("bn2", "relu_1")
        stem = "maxpool" if config.stem == "imagenet" or config.stem_pool else "relu"
    layers = [("stem", stem)]
    for stage, count in enumerate(config.stages, start=1):
        for index in range(count):
            block = f"layer{stage}.{index}"
            layers.append((f"{block} residual", f"{block}.{residual}"))
            layers.append((f"{block} output", f"{block}.{output}"))
    if config.preact and config.final_norm:
        layers.append(("final norm", "relu"))
    layers.append(("pooled", "flatten"))
    if config.num_classes:
        layers.append(("logits", "fc"))
    return layers
