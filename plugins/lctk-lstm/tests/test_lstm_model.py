"""The LSTM VAE: shapes, decoding, the free-bits ELBO, a training step, configuration from a data spec."""

from __future__ import annotations

import pytest
import torch

from lctk.util.errors import LctkError
from lctk_lstm.model import LSTMConfig, LSTMVAE

TINY = dict(seq_len=12, vocab_size=10, latent_dim=4, embed_dim=4, encoder_hidden=8, decoder_hidden=8,
            decoder_layers=2, free_bits=0.0, beta=1.0)


def tiny(**changes) -> LSTMVAE:
    torch.manual_seed(0)
    return LSTMVAE(LSTMConfig(**{**TINY, **changes}))


def tokens(b: int = 6) -> torch.Tensor:
    return torch.randint(0, 10, (b, 12), generator=torch.Generator().manual_seed(1))


def test_shapes():
    model, x = tiny(), tokens()
    mu, sigma = model.encode(x)
    assert mu.shape == sigma.shape == (6, 4) and (sigma > 0).all()
    logits = model.decoder(mu, x)
    assert logits.shape == (6, 12, 10)
    assert model.decoder.log_likelihood(x, logits).shape == (6,)
    assert (model.decoder.log_likelihood(x, logits) < 0).all()
    out = model.decode(mu)
    assert out.shape == (6, 12) and out.dtype == torch.int64 and out.min() >= 0 and out.max() < 10
    assert model.sample(3).shape == (3, 12)
    assert model.decoder(mu).shape == (6, 12, 10)  # without targets: along the greedy decoding


def test_teacher_forcing_matches_autoregressive_decoding():
    model = tiny()
    z = torch.randn(5, 4)
    with torch.no_grad():
        greedy = model.decode(z)
        logits = model.decoder(z, greedy)
    assert torch.equal(logits.argmax(dim=-1), greedy)


def test_sampling_is_reproducible_with_a_generator():
    model = tiny()
    z = torch.randn(4, 4)
    a = model.decode(z, temperature=1.0, generator=torch.Generator().manual_seed(3))
    b = model.decode(z, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_elbo_terms_and_free_bits():
    model, x = tiny(), tokens()
    eps = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    terms = model.elbo_terms(x, eps=eps)
    assert set(terms) == {"loss", "reconstruction", "kl"}
    assert terms["reconstruction"].shape == terms["kl"].shape == (6,)
    assert torch.allclose(terms["loss"], (terms["reconstruction"] + terms["kl"]).mean())
    free = tiny(free_bits=1e6).elbo_terms(x, eps=eps)  # KL under the free bits costs nothing
    assert torch.allclose(free["loss"], free["reconstruction"].mean())
    assert torch.allclose(free["kl"], terms["kl"])


def test_a_training_step_changes_the_weights():
    model, x = tiny(), tokens()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss = model.elbo_terms(x, generator=torch.Generator().manual_seed(0))["loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in changed) and any(k.startswith("decoder.") for k in changed)


def test_configure_takes_seq_len_and_vocab_size_from_the_data_spec():
    config = LSTMVAE.configure({"seq_len": 32, "vocab_size": 90, "input_shape": [1, 2]}, {"latent_dim": "16"})
    assert (config.seq_len, config.vocab_size, config.latent_dim) == (32, 90, 16)
    with pytest.raises(LctkError, match="decoder_layers"):
        LSTMVAE.configure({}, {"decoder_layers": 0})


def test_out_of_vocabulary_tokens_are_a_one_line_error():
    with pytest.raises(LctkError, match="vocab_size"):
        tiny().encode(torch.full((2, 12), 10))
