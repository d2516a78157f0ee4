"""Settings of the method ``diffusion``, saved in each diffusion constraint's constraint.json."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from lctk.util.config import Range

BIG = 10 ** 9


@dataclasses.dataclass
class DiffusionConfig:
    """How the denoiser is built, trained and sampled (defaults measured in docs/results.md).

    Network: ``depth`` residual blocks of ``width`` units; time and condition embeddings of ``embed_dim``.
    Training: ``steps`` steps of Adam at ``lr`` (linear warm-up over ``warmup`` steps, then a cosine decay to a
    tenth), batches of ``batch_size`` latents; sampling uses an exponential moving average of the weights
    (decay ``ema``). The condition of a whole batch row is dropped (null) with probability ``cond_drop``; with
    more than one target, a fraction ``target_drop`` of the rows keeps a random subset of them (half of those one
    target alone), so one network samples unconditionally, conditionally and on any subset of its targets. The training latents are the encodings'
    means, plus ``encoding_noise`` times their posterior spread (0: the means, which reconstructions decode).
    Rules are labelled by decoding the training latents (at most ``rule_rows`` of them; 0: all).
    Sampling: ``sample_steps`` steps of ``solver`` (heun or euler) from noise, classifier-free guidance weight
    ``sample_guidance`` (``--guidance``); edits (SDEdit) noise the encoding to t = ``edit_strength``
    (``--strength``) and integrate back under the condition.
    """

    LIMITS: ClassVar[dict[str, Range]] = {
        "width": Range(1, 16384), "depth": Range(0, 64), "embed_dim": Range(2, 4096), "batch_size": Range(1, 65536),
        "steps": Range(1, BIG), "lr": Range(0, 1, low_open=True), "warmup": Range(0, BIG), "ema": Range(0, 0.99999),
        "cond_drop": Range(0, 1), "target_drop": Range(0, 1), "encoding_noise": Range(0, 10),
        "rule_rows": Range(0, BIG), "sample_steps": Range(1, 10000), "sample_guidance": Range(0, 50),
        "edit_strength": Range(0, 1, low_open=True), "seed": Range(0, 2 ** 63 - 1), "checkpoint_every": Range(0, BIG),
    }

    width: int = 512
    depth: int = 4
    embed_dim: int = 64
    batch_size: int = 256
    steps: int = 6000
    lr: float = 1e-3
    warmup: int = 200
    ema: float = 0.999
    cond_drop: float = 0.15
    target_drop: float = 0.5
    encoding_noise: float = 0.0
    rule_rows: int = 0
    sample_steps: int = 25
    solver: str = "heun"
    sample_guidance: float = 4.0
    edit_strength: float = 0.8
    seed: int = 0
    checkpoint_every: int = 0

    def __post_init__(self):
        if self.solver not in ("heun", "euler"):
            from lctk.util.errors import LctkError

            raise LctkError(f"constraint setting solver={self.solver!r} is unknown; use heun or euler")
