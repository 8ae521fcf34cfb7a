"""The training objectives: NT-Xent against a hand computation, its symmetries, the projector, the schedule."""

from __future__ import annotations

import math

import pytest
import torch

from training.objectives import SimCLRNet, lr_at, nt_xent

# rows i and i + 2 are two views of one image
Z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])


@pytest.mark.parametrize("t", [1.0, 0.5, 0.1])
def test_nt_xent_of_four_unit_vectors_by_hand(t):
    """Cosine similarities: row 0 is 1 with its positive (row 2), 0 with row 1, -1 with row 3; row 1 is 0 with
    everything; row 2 as row 0; row 3 is 0 with its positive (row 1) and -1 with rows 0 and 2."""
    e = math.exp
    losses = [
        math.log(e(1 / t) + e(0) + e(-1 / t)) - 1 / t,
        math.log(3.0),
        math.log(e(1 / t) + e(0) + e(-1 / t)) - 1 / t,
        math.log(e(0) + 2 * e(-1 / t)),
    ]
    assert float(nt_xent(Z, t)) == pytest.approx(sum(losses) / 4, rel=1e-6)


def test_nt_xent_ignores_the_length_of_the_projections():
    z = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    scales = torch.rand(12, 1, generator=torch.Generator().manual_seed(1)) * 10 + 0.1
    assert float(nt_xent(z * scales, 0.5)) == pytest.approx(float(nt_xent(z, 0.5)), rel=1e-5)


def test_nt_xent_is_symmetric_in_the_two_views_and_in_the_order_of_images():
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(2))
    first, second = z[:8], z[8:]
    loss = float(nt_xent(z, 0.2))
    assert float(nt_xent(torch.cat([second, first]), 0.2)) == pytest.approx(loss, rel=1e-5)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    assert float(nt_xent(torch.cat([first[order], second[order]]), 0.2)) == pytest.approx(loss, rel=1e-5)


def test_nt_xent_computes_in_float32_from_half_precision_inputs():
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(4))
    loss = nt_xent(z.bfloat16(), 0.5)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(nt_xent(z.bfloat16().float(), 0.5)), rel=1e-6)


def test_the_simclr_net_projects_backbone_features_through_a_4x_wide_hidden_layer():
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6))
    net = SimCLRNet(backbone, feature_dim=6, out_dim=3).eval()
    assert net.backbone is backbone
    assert net.projector[0].weight.shape == (24, 6) and net.projector[-1].weight.shape == (3, 24)
    x = torch.randn(5, 3, 2, 2)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.projector(backbone(x)))
        assert net(x).shape == (5, 3)


def test_the_schedule_is_half_the_peak_halfway_through_the_cosine():
    assert lr_at(10 + 45, 100, 10, 0.4) == pytest.approx(0.2)
    assert lr_at(10, 100, 10, 0.4) == pytest.approx(0.4)  # the cosine starts at the peak


def test_the_schedule_without_warmup_or_decay_steps_does_not_divide_by_zero():
    assert lr_at(0, 10, 0, 1.0) == pytest.approx(1.0)
    assert lr_at(5, 5, 5, 1.0) == pytest.approx(1.0)  # warm-up fills the run: the first step after it is the peak
