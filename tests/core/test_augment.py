"""core.augment: colour ops against torchvision, seeded per-image randomness, and exact pixel copies."""

from __future__ import annotations

import itertools

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from core.augment import (
    SimCLRAugment,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    crop_flip,
    simclr_views,
)


def images(n: int = 8, size: int = 10, seed: int = 0) -> torch.Tensor:
    """Float images in [0, 1] with the hard cases of the HSV maths: grey pixels (r = g = b), two-way
    ties for the largest channel, black, white, and values on the uint8 grid (many exact ties)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (max(n, 8), 3, size, size), generator=g).float() / 255
    x[0] = x[0, :1]  # a grey image
    x[1, :, 0, :] = 0.0  # black row
    x[1, :, 1, :] = 1.0  # white row
    x[2, 1] = x[2, 0]  # red == green everywhere
    x[3, 2] = x[3, 1]  # green == blue
    x[4, 0] = x[4, 2]  # red == blue
    x[5, :, :, :5] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)  # pure red (hue 0, the wrap-around)
    return x[:n]


def per_image_reference(op, x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return torch.stack([op(img, float(f)) for img, f in zip(x, factors, strict=True)])


@pytest.mark.parametrize(
    ("ours", "theirs", "factors"),
    [
        (adjust_brightness, TF.adjust_brightness, [0.0, 0.6, 1.0, 1.4, 2.5, 0.9, 1.1, 0.75]),
        (adjust_contrast, TF.adjust_contrast, [0.0, 0.6, 1.0, 1.4, 2.5, 0.9, 1.1, 0.75]),
        (adjust_saturation, TF.adjust_saturation, [0.0, 0.6, 1.0, 1.4, 2.5, 0.9, 1.1, 0.75]),
        (adjust_hue, TF.adjust_hue, [-0.5, -0.1, 0.0, 0.05, 0.1, 0.25, 0.5, -0.33]),
    ],
    ids=["brightness", "contrast", "saturation", "hue"],
)
def test_colour_ops_match_torchvision_per_image(ours, theirs, factors):
    x = images()
    f = torch.tensor(factors)
    got = ours(x, f)
    want = per_image_reference(theirs, x, f)
    assert got.shape == x.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # the factors really are per image: image 3 with image 4's factor gives something else
    other = ours(x[3:4], f[4:5])
    assert not torch.allclose(other, got[3:4], atol=1e-3)


def test_hue_shift_on_random_continuous_colours_matches_torchvision():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 12, 12, generator=g)
    shifts = torch.rand(6, generator=g) - 0.5
    torch.testing.assert_close(adjust_hue(x, shifts), per_image_reference(TF.adjust_hue, x, shifts), atol=1e-5, rtol=0)


def test_neutral_factors_are_identities():
    x = images()
    ones, zeros = torch.ones(len(x)), torch.zeros(len(x))
    for op in (adjust_brightness, adjust_contrast, adjust_saturation):
        torch.testing.assert_close(op(x, ones), x, atol=1e-6, rtol=0)
    torch.testing.assert_close(adjust_hue(x, zeros), x, atol=1e-5, rtol=0)


def test_simclr_views_are_reproducible_and_seed_dependent():
    x = images(16, 16)
    a = simclr_views(x, torch.Generator().manual_seed(123))
    b = simclr_views(x, torch.Generator().manual_seed(123))
    c = simclr_views(x, torch.Generator().manual_seed(124))
    assert torch.equal(a, b)
    assert (a - c).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every image differs, not just one


def test_simclr_views_shape_dtype_and_range():
    x = images(16, 16)
    for inp in (x, (x * 255).round().to(torch.uint8)):
        out = simclr_views(inp, torch.Generator().manual_seed(5))
        assert out.shape == x.shape and out.dtype == torch.float32
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_uint8_and_float_inputs_give_the_same_views():
    u8 = torch.randint(0, 256, (6, 3, 16, 16), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    a = simclr_views(u8, torch.Generator().manual_seed(9))
    b = simclr_views(u8.float() / 255, torch.Generator().manual_seed(9))
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_each_image_in_a_batch_gets_its_own_parameters():
    one = images(8, 16, seed=3)[6:7]  # an ordinary colour image
    batch = one.expand(8, -1, -1, -1).contiguous()
    out = simclr_views(batch, torch.Generator().manual_seed(0))
    for i, j in itertools.combinations(range(8), 2):
        assert (out[i] - out[j]).abs().max() > 1e-3, f"copies {i} and {j} got the same view"
    flipped = crop_flip(batch, torch.Generator().manual_seed(0))
    distinct = {tuple(v.flatten().tolist()) for v in flipped}
    assert len(distinct) > 4


def test_identity_settings_return_the_input():
    aug = SimCLRAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    x = images(4, 16)
    torch.testing.assert_close(simclr_views(x, torch.Generator().manual_seed(0), aug), x, atol=1e-5, rtol=0)
    flip = SimCLRAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=1.0, jitter_p=0.0, grayscale_p=0.0)
    flipped = simclr_views(x, torch.Generator().manual_seed(0), flip)
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-5, rtol=0)


def test_grayscale_probability_one_gives_equal_channels():
    aug = SimCLRAugment(grayscale_p=1.0)
    out = simclr_views(images(6, 16), torch.Generator().manual_seed(4), aug)
    torch.testing.assert_close(out[:, 0], out[:, 1], atol=0, rtol=0)
    torch.testing.assert_close(out[:, 0], out[:, 2], atol=0, rtol=0)


def test_brightness_only_jitter_scales_each_image_within_range():
    aug = SimCLRAugment(
        crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=1.0,
        brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0, grayscale_p=0.0,
    )  # fmt: skip
    x = images(8, 16) * 0.5 + 0.1  # in [0.1, 0.6]: never clipped by a factor <= 1.4
    out = simclr_views(x, torch.Generator().manual_seed(6), aug)
    ratio = out / x
    factors = ratio.mean(dim=(1, 2, 3))
    torch.testing.assert_close(ratio, factors.view(-1, 1, 1, 1).expand_as(ratio), atol=1e-4, rtol=0)
    assert factors.min() >= 0.6 - 1e-4 and factors.max() <= 1.4 + 1e-4
    assert factors.std() > 0.05  # drawn per image


def candidates(img: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every integer shift (zero-filled) of the image and of its mirror image."""
    _, h, w = img.shape
    padded = torch.nn.functional.pad(img, (pad, pad, pad, pad))
    out = []
    for src in (padded, padded.flip(-1)):
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                out.append(src[:, dy : dy + h, dx : dx + w])
    return out


@pytest.mark.parametrize("pad", [0, 4])
def test_crop_flip_copies_pixels_exactly(pad):
    u8 = torch.randint(0, 256, (32, 3, 12, 12), generator=torch.Generator().manual_seed(7), dtype=torch.uint8)
    out = crop_flip(u8, torch.Generator().manual_seed(8), pad=pad)
    assert out.shape == u8.shape and out.dtype == torch.float32
    scaled = out * 255
    assert (scaled - scaled.round()).abs().max() < 1e-3  # copied values, never blends of neighbours
    matched = set()
    for i in range(len(u8)):
        options = candidates(u8[i].float() / 255, pad)
        errors = torch.stack([(out[i] - c).abs().max() for c in options])
        assert errors.min() < 1e-5, f"image {i} is not an integer shift/flip of its input"
        matched.add(int(errors.argmin()))
    assert len(matched) > (1 if pad == 0 else 8)  # both flips (and several shifts) occur
    if pad == 0:  # no shift: either the image or its mirror image
        assert matched == {0, 1}


def test_crop_flip_is_reproducible():
    x = images(8, 12)
    a = crop_flip(x, torch.Generator().manual_seed(11))
    assert torch.equal(a, crop_flip(x, torch.Generator().manual_seed(11)))
    assert not torch.equal(a, crop_flip(x, torch.Generator().manual_seed(12)))
