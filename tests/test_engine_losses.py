"""The method's losses and networks on tiny hand-computed cases."""

from __future__ import annotations

import math

import torch

from lctk.engine.config import ConstraintConfig
from lctk.engine.constraint import LatentConstraint
from lctk.engine.losses import (distance_penalty, gradient_penalty, masked_sigmoid_ce, sigma_weighted_shift,
                                sigmoid_ce)
from lctk.engine.networks import GatedActor, LatentCritic
from lctk.engine.targets import Target
from lctk.engine.training import ConstraintTrainer, LatentSource


def test_distance_penalty_by_hand():
    z = torch.zeros(1, 2)
    z_new = torch.tensor([[1.0, 2.0]])
    sigma_bar = torch.tensor([1.0, 0.5])
    expected = (math.log(2) / 1.0 + math.log(5) / 0.25) / 2
    assert math.isclose(distance_penalty(z_new, z, sigma_bar).item(), expected, rel_tol=1e-6)
    assert distance_penalty(z, z, sigma_bar).item() == 0


def test_sigmoid_ce_by_hand():
    logits = torch.tensor([[0.0], [2.0]])
    assert math.isclose(sigmoid_ce(logits, 1.0).item(), (math.log(2) + math.log(1 + math.exp(-2))) / 2, rel_tol=1e-6)
    assert math.isclose(sigmoid_ce(logits, torch.tensor([[0.0], [1.0]])).item(),
                        (math.log(2) + math.log(1 + math.exp(-2))) / 2, rel_tol=1e-6)


def test_masked_ce_skips_masked_entries():
    logits = torch.tensor([[0.0, 100.0]])
    target = torch.tensor([[1.0, 0.0]])  # the second entry would cost 100 if counted
    assert math.isclose(masked_sigmoid_ce(logits, target, torch.tensor([[1.0, 0.0]])).item(), math.log(2), rel_tol=1e-6)
    assert masked_sigmoid_ce(logits, target, torch.zeros(1, 2)).item() == 0


def test_sigma_weighted_shift_by_hand():
    shift = sigma_weighted_shift(torch.tensor([[1.0, -1.0]]), torch.zeros(1, 2), torch.tensor([0.5, 1.0]))
    assert torch.allclose(shift, torch.tensor([1.5]))


def test_gradient_penalty_of_linear_critic():
    critic = LatentCritic(2, 0, 1, width=4, depth=0)  # a linear map: its gradient is the weight everywhere
    with torch.no_grad():
        critic.net[0].weight.copy_(torch.tensor([[3.0, 4.0]]))
    gp = gradient_penalty(critic, torch.randn(5, 2), torch.randn(5, 2))
    assert math.isclose(gp.item(), (5 - 1) ** 2, rel_tol=1e-5)


def test_actor_gate_mixes_z_and_proposal():
    actor = GatedActor(3, 0, width=8, depth=1)
    z = torch.randn(4, 3)
    with torch.no_grad():
        actor.net[-1].weight.zero_()
        actor.net[-1].bias.copy_(torch.tensor([5.0, 5.0, 5.0, -30.0, 30.0, 0.0]))  # dz = 5; gates 0, 1, 1/2
    out, gate = actor.gated(z)
    assert torch.allclose(gate[0], torch.tensor([0.0, 1.0, 0.5]), atol=1e-6)
    assert torch.allclose(out[:, 0], z[:, 0], atol=1e-5)  # gate closed: z kept
    assert torch.allclose(out[:, 1], torch.full((4,), 5.0), atol=1e-5)  # gate open: proposal
    assert torch.allclose(out[:, 2], (z[:, 2] + 5) / 2, atol=1e-5)


def test_actor_starts_near_identity():
    actor = GatedActor(8, 2)
    z = torch.randn(64, 8)
    moved = actor(z, torch.zeros(64, 2))
    assert (moved - z).abs().mean() < (z.abs().mean())


def test_critic_negatives_include_mismatched_labels(monkeypatch):
    """The realism critic sees real latents with another example's labels as fakes."""
    config = ConstraintConfig(width=16, depth=1, batch_size=32, steps=1, classifier_steps=1, gp_weight=0)
    targets = [Target("a", "attribute"), Target("b", "attribute")]
    model = LatentConstraint("t", targets, 4, config, torch.ones(4), "fp")
    labels = torch.tensor([[1, 0], [0, 1]]).repeat(50, 1)
    source = LatentSource(torch.randn(100, 4), torch.full((100, 4), 0.1), labels)
    trainer = ConstraintTrainer(model, source, config, "/nonexistent/ckpt")
    seen = []
    original = model.realism.forward

    def spy(z, y=None):
        seen.append((z.detach().clone(), y.detach().clone()))
        return original(z, y)

    monkeypatch.setattr(model.realism, "forward", spy)
    trainer.critic_step(torch.Generator().manual_seed(0))
    assert len(seen) == 3  # real, fake, mismatched
    (z_real, y_real), _, (z_mis, y_mis) = seen
    assert torch.equal(z_real, z_mis)  # the same real latents ...
    assert (y_real != y_mis).any(dim=1).float().mean() > 0.2  # ... with other examples' labels


def test_constraint_log_prob_prefers_matching_attribute():
    config = ConstraintConfig(width=8, depth=1)
    model = LatentConstraint("t", [Target("a", "attribute")], 2, config, torch.ones(2), "fp")
    with torch.no_grad():
        for p in model.realism.parameters():
            p.zero_()
        model.attr_critic.net[-1].weight.zero_()
        model.attr_critic.net[-1].bias.fill_(3.0)  # the critic is sure attribute a holds
    z = torch.zeros(1, 2)
    yes, no = model.log_prob(z, torch.ones(1, 1)), model.log_prob(z, torch.zeros(1, 1))
    assert math.isclose(yes.item(), math.log(0.5) - math.log(1 + math.exp(-3)), rel_tol=1e-5)
    assert yes > no
