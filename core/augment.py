"""Seeded, batched image augmentations with per-image random parameters, on any device.

torchvision's transforms draw one set of parameters per call, so augmenting a batch with them
means a Python loop over images. Here every image gets its own crop, flip and colour jitter in a
handful of batched tensor operations, which is what lets SimCLR training and the invariance
analysis keep the data on the GPU. The colour operations follow torchvision's definitions (tested
against `torchvision.transforms.v2.functional`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


@dataclass(frozen=True)
class SimCLRAugment:
    """SimCLR's CIFAR-10 augmentation (Chen et al. 2020, appendix B.9), per-image parameters."""

    crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction of the random resized crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range of the crop
    flip_p: float = 0.5  # horizontal flip probability
    jitter_p: float = 0.8  # probability of colour jitter
    brightness: float = 0.4  # jitter factors drawn from [1 - x, 1 + x]
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1  # hue shift drawn from [-x, x] (fraction of a turn)
    grayscale_p: float = 0.2  # probability of converting to grayscale


def _uniform(n: int, low: float, high: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _per_image(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (x * _per_image(factor)).clamp(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    f = _per_image(factor)
    return (f * x + (1 - f) * mean).clamp(0, 1)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_image(factor)
    return (f * x + (1 - f) * _gray(x)).clamp(0, 1)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-12)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return h, s, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack([v, q, p, p, t, v, t, v, v, q, p, p, p, p, t, v, v, q]).view(3, 6, *h.shape)
    return table.gather(1, i.unsqueeze(0).unsqueeze(0).expand(3, 1, *h.shape)).squeeze(1).transpose(0, 1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    h, s, v = _rgb_to_hsv(x)
    return _hsv_to_rgb((h + shift.view(-1, 1, 1)) % 1.0, s, v)


def resized_crop_flip(x: torch.Tensor, aug: SimCLRAugment, g: torch.Generator) -> torch.Tensor:
    """Random resized crop and horizontal flip for every image, as one batched bilinear resample."""
    n, device = x.shape[0], x.device
    area = _uniform(n, *aug.crop_scale, g, device)
    log_ratio = _uniform(n, *(torch.tensor(aug.crop_ratio).log().tolist()), g, device)
    w = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    h = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=g, device=device) * (1 - w) + w / 2) * 2 - 1
    cy = (torch.rand(n, generator=g, device=device) * (1 - h) + h / 2) * 2 - 1
    flip = torch.where(torch.rand(n, generator=g, device=device) < aug.flip_p, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x: torch.Tensor, aug: SimCLRAugment, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter in a random order; each image applies it with
    probability `jitter_p` (the others get neutral factors)."""
    n, device = x.shape[0], x.device
    on = torch.rand(n, generator=g, device=device) < aug.jitter_p

    def factor(strength: float, neutral: float, low: float, high: float) -> torch.Tensor:
        drawn = _uniform(n, low, high, g, device) if strength else torch.full((n,), neutral, device=device)
        return torch.where(on, drawn, torch.full_like(drawn, neutral))

    ops = [
        (adjust_brightness, factor(aug.brightness, 1.0, 1 - aug.brightness, 1 + aug.brightness)),
        (adjust_contrast, factor(aug.contrast, 1.0, 1 - aug.contrast, 1 + aug.contrast)),
        (adjust_saturation, factor(aug.saturation, 1.0, 1 - aug.saturation, 1 + aug.saturation)),
        (adjust_hue, factor(aug.hue, 0.0, -aug.hue, aug.hue)),
    ]
    for k in torch.randperm(4, generator=g, device=device).tolist():
        op, f = ops[k]
        x = op(x, f.to(x.dtype))
    return x


def simclr_views(images: torch.Tensor, g: torch.Generator, aug: SimCLRAugment = SimCLRAugment()) -> torch.Tensor:
    """One augmented view of each image: float [0, 1], same shape and device as `images`.

    `images` are uint8 or [0, 1] floats (N x 3 x H x W). The generator `g` (on the images' device)
    makes the views reproducible.
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    x = color_jitter(resized_crop_flip(x, aug, g), aug, g)
    gray = torch.rand(x.shape[0], generator=g, device=x.device) < aug.grayscale_p
    return torch.where(_per_image(gray), _gray(x).expand_as(x), x)


def crop_flip(images: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The supervised recipe's augmentation: a random crop from a zero-padded image, and a flip.

    Integer shifts resampled bilinearly at exact pixel positions, so pixels are copied, not blended.
    """
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    n, _, height, width = x.shape
    device = x.device
    dx = torch.randint(-pad, pad + 1, (n,), generator=g, device=device).to(x.dtype) * 2 / width
    dy = torch.randint(-pad, pad + 1, (n,), generator=g, device=device).to(x.dtype) * 2 / height
    flip = torch.where(torch.rand(n, generator=g, device=device) < 0.5, -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(n, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = flip, dx
    theta[:, 1, 1], theta[:, 1, 2] = 1.0, dy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
