"""The conditional VAE baseline of the benchmarks: shapes, the label matters, one step changes the weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lctk_conv.cvae import ConditionalConvVAE
from lctk_conv.model import ConvVAE, ConvVAEConfig


def _model(seed: int = 0) -> ConditionalConvVAE:
    torch.manual_seed(seed)
    return ConditionalConvVAE(ConvVAEConfig(input_shape=(1, 8, 8), latent_dim=4, width=4, hidden=16), n_classes=3)


def test_shapes_and_same_blocks_as_convvae():
    model = _model()
    x, y = torch.rand(5, 1, 8, 8), F.one_hot(torch.tensor([0, 1, 2, 0, 1]), 3).float()
    mu, sigma = model.encode(x, y)
    assert mu.shape == sigma.shape == (5, 4) and (sigma > 0).all()
    assert model.decode(mu, y).shape == (5, 1, 8, 8)
    assert model.sample(y, torch.Generator().manual_seed(0)).shape == (5, 1, 8, 8)
    plain = ConvVAE(model.config)
    ours = {k: v.shape for k, v in model.state_dict().items()}
    theirs = {k: v.shape for k, v in plain.state_dict().items()}
    assert ours.keys() == theirs.keys()  # the same layers; only the two label-fed inputs are wider
    wider = {k for k in ours if ours[k] != theirs[k]}
    assert wider == {"encoder.fc.0.weight", "decoder.fc.0.weight"}


def test_label_changes_the_output():
    model = _model()
    z = torch.randn(2, 4)
    a = model.decode(z, F.one_hot(torch.tensor([0, 0]), 3).float())
    b = model.decode(z, F.one_hot(torch.tensor([2, 2]), 3).float())
    assert not torch.allclose(a, b)


def test_one_training_step_changes_weights_and_lowers_loss():
    model = _model()
    x, y = torch.rand(16, 1, 8, 8), F.one_hot(torch.arange(16) % 3, 3).float()
    eps = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.elbo_terms(x, y, eps)["loss"]
    for _ in range(5):
        loss = model.elbo_terms(x, y, eps)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.elbo_terms(x, y, eps)["loss"] < first
