"""An LSTM VAE for fixed-length token sequences (MusicVAE's 2-bar melody model, smaller).

Encoder: token embeddings -> one bidirectional LSTM layer -> the last states of both directions -> mu and
sigma (softplus). Decoder: z sets the initial states of a stacked LSTM through a tanh layer and is concatenated
to every input step (the embedding of the previous token, a start token first); logits over the vocabulary
come out. Training uses teacher forcing; `LSTMDecoder.generate` decodes autoregressively.

Against posterior collapse the ELBO uses free bits (MusicVAE): the KL term costs nothing until it exceeds
``free_bits`` nats per example, so the decoder is never pushed to ignore z, and ``beta`` < 1 weights what
lies above.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from lctk.plugin_api import Backbone, BackboneConfig, Decoder, Encoder, LctkError, Range

SIGMA_FLOOR = 1e-5


@dataclasses.dataclass
class LSTMConfig(BackboneConfig):
    """Sizes and loss settings of the LSTM VAE. ``seq_len`` and ``vocab_size`` come from the dataset's spec.

    The defaults were measured on Essen 2-bar melodies on 2 shared CPU cores (docs/melodies.md). MusicVAE's
    cat-mel_2bar_small has an encoder of 512, a decoder of 2 x 256, z of 256 and 48 free bits; here the
    encoder is 256 (half the cost of a training step goes to it), z is 64 (critics and actors work on it;
    only ~18 dimensions end up active) and 32 free bits: 48 gave no better reconstruction in the same time
    and worse prior samples, 24 reconstructed held-out windows ~3 points worse. Trained with
    ``--batch-size 32`` (lr 1e-3) for 12 epochs (about 1 minute per epoch alone on 2 cores, 2 when they are
    shared) it reconstructs ~91 % of held-out tokens; batches of 128 learn about half as fast per epoch.
    """

    LIMITS: ClassVar[dict[str, Range]] = {
        **BackboneConfig.LIMITS, "seq_len": Range(1, 4096), "vocab_size": Range(1, 65536), "free_bits": Range(0, 1e6),
        "embed_dim": Range(1, 4096), "encoder_hidden": Range(1, 16384), "decoder_hidden": Range(1, 16384),
        "decoder_layers": Range(1, 64)}
    seq_len: int = 32
    vocab_size: int = 90
    latent_dim: int = 64
    beta: float = 0.5
    free_bits: float = 32.0
    embed_dim: int = 32
    encoder_hidden: int = 256
    decoder_hidden: int = 256
    decoder_layers: int = 2

    def __post_init__(self):
        for name in ("seq_len", "vocab_size", "latent_dim", "embed_dim", "encoder_hidden", "decoder_hidden",
                     "decoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.free_bits < 0 or self.beta < 0:
            raise ValueError("free_bits and beta must not be negative")


def _check_tokens(x: Tensor, vocab_size: int) -> None:
    if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or x.dim() != 2:
        raise LctkError(f"the lstm backbone takes (B, T) integer tokens, got {tuple(x.shape)} {x.dtype}")
    if len(x) and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise LctkError(f"tokens lie in {int(x.min())}..{int(x.max())} but this model's vocab_size is {vocab_size}; "
                        "train it on this data (or --set vocab_size=N)")


class LSTMEncoder(Encoder):
    """``(B, T)`` tokens -> mu, sigma ``(B, D)`` through a bidirectional LSTM."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.vocab_size = config.vocab_size
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.encoder_hidden, batch_first=True, bidirectional=True)
        self.mu = nn.Linear(2 * config.encoder_hidden, config.latent_dim)
        self.sigma = nn.Linear(2 * config.encoder_hidden, config.latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_tokens(x, self.vocab_size)
        _, (h, _) = self.lstm(self.embed(x.long()))  # h: (2, B, H), forward and backward final states
        h = rearrange(h, "dir b h -> b (dir h)")  # (B, 2H)
        return self.mu(h), F.softplus(self.sigma(h)) + SIGMA_FLOOR  # (B, D) each


class LSTMDecoder(Decoder):
    """z ``(B, D)`` -> logits ``(B, T, V)`` over the next token, autoregressive."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.seq_len, self.vocab_size = config.seq_len, config.vocab_size
        self.layers, self.hidden = config.decoder_layers, config.decoder_hidden
        self.embed = nn.Embedding(config.vocab_size + 1, config.embed_dim)  # last index: the start token
        self.init = nn.Linear(config.latent_dim, 2 * self.layers * self.hidden)
        self.lstm = nn.LSTM(config.embed_dim + config.latent_dim, self.hidden, num_layers=self.layers,
                            batch_first=True)
        self.out = nn.Linear(self.hidden, config.vocab_size)

    def initial_state(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """LSTM (h, c), each ``(layers, B, H)``, from z."""
        hc = torch.tanh(self.init(z))  # (B, 2 * L * H)
        h, c = rearrange(hc, "b (two l h) -> two l b h", two=2, l=self.layers)  # (L, B, H) each
        return h.contiguous(), c.contiguous()

    def _start(self, z: Tensor) -> Tensor:
        return torch.full((len(z), 1), self.vocab_size, dtype=torch.long, device=z.device)  # (B, 1)

    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        """Teacher-forced logits ``(B, T, V)`` for targets ``x (B, T)``; without ``x``, the logits along the
        greedy decoding."""
        if x is None:
            x = self.generate(z)
        _check_tokens(x, self.vocab_size)
        inputs = torch.cat([self._start(z), x[:, :-1].long()], dim=1)  # (B, T)
        steps = torch.cat([self.embed(inputs), repeat(z, "b d -> b t d", t=inputs.shape[1])], dim=-1)  # (B, T, E+D)
        out, _ = self.lstm(steps, self.initial_state(z))  # (B, T, H)
        return self.out(out)  # (B, T, V)

    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        """``(B,)`` sum over steps of log p(x_t | x_<t, z) for logits ``params (B, T, V)``."""
        logp = F.log_softmax(params, dim=-1)  # (B, T, V)
        return logp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1).sum(dim=1)  # (B,)

    def generate(self, z: Tensor, *, temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """``(B, T)`` int64 tokens decoded one step at a time: argmax at temperature 0, else sampled from the
        softmax of logits / temperature (with ``generator``)."""
        state = self.initial_state(z)
        token = self._start(z)  # (B, 1)
        z_step = rearrange(z, "b d -> b 1 d")
        tokens = []
        for _ in range(self.seq_len):
            out, state = self.lstm(torch.cat([self.embed(token), z_step], dim=-1), state)  # (B, 1, H)
            logits = self.out(out[:, 0])  # (B, V)
            if temperature <= 0:
                token = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:
                probs = F.softmax(logits / temperature, dim=-1)  # (B, V)
                token = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            tokens.append(token)
        return torch.cat(tokens, dim=1)  # (B, T)


class LSTMVAE(Backbone):
    """LSTM VAE over ``(B, seq_len)`` tokens in ``0..vocab_size-1`` with a free-bits ELBO."""

    config_class = LSTMConfig
    #: Small batches learn about twice as fast per epoch on this model (docs/melodies.md).
    training_defaults = {"batch_size": 32}

    def __init__(self, config: LSTMConfig):
        super().__init__(config)
        self.encoder = LSTMEncoder(config)
        self.decoder = LSTMDecoder(config)

    def elbo_terms(self, x: Tensor, eps: Tensor | None = None, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Per-example ``reconstruction`` (-log p(x|z)) and true ``kl``, each ``(B,)``; the batch-mean ``loss`` =
        reconstruction + beta * max(kl - free_bits, 0)."""
        mu, sigma = self.encode(x)  # (B, D) each
        if eps is None:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + sigma * eps  # (B, D)
        reconstruction = -self.decoder.log_likelihood(x, self.decoder(z, x))  # (B,)
        kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(dim=1)  # (B,)
        kl_cost = (kl - self.config.free_bits).clamp(min=0.0)  # (B,)
        loss = (reconstruction + self.config.beta * kl_cost).mean()
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl}
