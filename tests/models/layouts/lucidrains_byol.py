"""Layout fixture for lucidrains/byol-pytorch (facts and sources in lucidrains_byol.md).

The library wraps the user's own network; what users save (README: torch.save(resnet.state_dict(),
'./improved-net.pt'); BYOLTrainer: torch.save(self.net.state_dict(), 'checkpoints/checkpoint.<n>.pt'))
is that network's plain state_dict. The online projector/predictor and the EMA target encoder
live only in the BYOL wrapper and are not in the file. With a torchvision ResNet, as in the README,
the file is indistinguishable from a torchvision classifier: same keys, ImageNet stem, and an `fc`
(1000 classes by default) that BYOL never trained (the hidden layer is 'avgpool').
Written from scratch; only names, shapes and constants follow the codebase.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from tests.models.layouts.spec import Layout, randomise_bn, to_bytes

REPO = "https://github.com/lucidrains/byol-pytorch"
AT = f"{REPO}/blob/2993126"


def build() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(60)
        net = torchvision.models.resnet18()  # the README uses resnet50(pretrained=True); resnet18 for size
    return randomise_bn(net, seed=60)


def save(module: nn.Module) -> bytes:
    return to_bytes(module.state_dict())


def reference(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        h = module.maxpool(module.relu(module.bn1(module.conv1(x))))
        h = module.layer4(module.layer3(module.layer2(module.layer1(h))))
        return torch.flatten(module.avgpool(h), 1)  # BYOL's hidden_layer='avgpool' output, 512-d


LAYOUTS: list[Layout] = [
    Layout(
        name="lucidrains-byol-torchvision-resnet18",
        codebase="lucidrains/byol-pytorch",
        filename="improved-net.pt",
        arch="resnet18",
        build=build,
        save=save,
        reference=reference,
        output="features",
        method="unknown",
        stem="imagenet",
        stem_padding=3,
        dropped=("fc",),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        notes=(
            "Trained with BYOL, but the file is the user's bare torchvision state_dict: nothing in it names a "
            "method, so 'unknown' is the only honest answer (it is byte-for-byte the layout of a supervised "
            "torchvision checkpoint). fc.weight is 1000x512 (torchvision default) and was never trained by "
            "BYOL (hidden_layer='avgpool'); it is not a CIFAR-10 head. The default augmentation inside BYOL "
            "ends with Normalize(ImageNet mean/std), so that is the normalisation the backbone saw. "
            "BYOLTrainer writes the same thing as checkpoints/checkpoint.<n>.pt."
        ),
        source_urls=(f"{AT}/README.md", f"{AT}/byol_pytorch/byol_pytorch.py", f"{AT}/byol_pytorch/trainer.py"),
    ),
]
