"""Pre-activation ResNets and Wide ResNets (BN-ReLU-conv blocks), in each common codebase's form.

What a state dict cannot show is set by ArchConfig: whether the projection shortcut reads the
pre-activated input (kuangliu's PreActResNet, xternalz's WideResNet) or the raw one (bearpaw's
PreResNet, meliketoy's Wide_ResNet), which conv of a block strides, and a final BN + ReLU. Dropout
is absent: it does nothing in eval mode. Canonical names: conv1, layerS.B.{bn1,conv1,bn2,conv2,shortcut},
bn (the final norm), fc.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from models.resnet import ArchConfig


class PreActBlock(nn.Module):
    """bn1-relu-conv1-bn2-relu-conv2 plus a shortcut; `out` marks the block output for torch.fx."""

    def __init__(self, cin: int, cout: int, stride: int, config: ArchConfig) -> None:
        super().__init__()
        first, second = (1, stride) if config.stride_on_second else (stride, 1)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, first, 1, bias=config.conv_bias)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, second, 1, bias=config.conv_bias)
        self.relu = nn.ReLU()
        project = stride != 1 or cin != cout
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=config.conv_bias) if project else None
        self.pre_shortcut = config.shortcut_input == "pre"
        self.out = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        y = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        if self.shortcut is None:
            skip = x
        else:
            skip = self.shortcut(pre if self.pre_shortcut else x)
        return self.out(y + skip)


class PreActResNet(nn.Module):
    """conv1 (no stem BN), 3 or 4 stages of PreActBlocks, [bn + ReLU], global average pool, fc."""

    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.config = config
        cin = config.stem_channels
        self.conv1 = nn.Conv2d(3, cin, 3, 1, config.stem_padding, bias=config.conv_bias)
        for index, (count, cout) in enumerate(zip(config.stages, config.stage_widths, strict=True)):
            blocks = []
            for b in range(count):
                blocks.append(PreActBlock(cin, cout, 2 if index and not b else 1, config))
                cin = cout
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(cin) if config.final_norm else None
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(cin, config.num_classes) if config.num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for index in range(len(self.config.stages)):
            x = getattr(self, f"layer{index + 1}")(x)
        if self.bn is not None:
            x = self.relu(self.bn(x))
        return self.fc(self.flatten(self.avgpool(x)))
