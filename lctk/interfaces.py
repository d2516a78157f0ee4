"""The contracts between lctk's core and its plugins.

A backbone plugin implements `Encoder`, `Decoder` and a `Backbone` that composes them into a VAE (or a
generator-only `Generator`); a dataset plugin returns a `Dataset`; a modality plugin provides a `Writer`
(outputs to files), an `Evaluator` (independent quality measures) and optionally a `Labeler` (attributes of
a generator's outputs). Rules are plain functions on decoded outputs. The constraints engine
implements `Critic`, `Actor`, `Constraint` and `ConstraintSet` over latents only, so it works with any
backbone that honours these shapes:

- examples ``x``: whatever the dataset's ``fetch`` returns, batch first (images ``(B, C, H, W)`` floats in
  [0, 1]; token sequences ``(B, T)`` int64);
- latents ``z``: ``(B, D)`` float32 with ``D = backbone.latent_dim``;
- conditions ``y``: ``(B, K)`` float32 in [0, 1], one column per constrained attribute or rule (binary ones 0 or
  1, continuous ones scaled to [0, 1] over their observed range).
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import torch
from torch import Tensor, nn

from lctk.util.config import Range, from_dict
from lctk.util.errors import LctkError

from lctk.data import DataRequest, Dataset, InMemoryDataset  # noqa: F401  (part of the plugin contract)

if TYPE_CHECKING:
    from lctk.util.media import Media


# ----------------------------------------------------------------------------------------------------------
# Backbones
# ----------------------------------------------------------------------------------------------------------


class Encoder(nn.Module, ABC):
    """Maps examples to a diagonal Gaussian posterior q(z|x)."""

    @abstractmethod
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (B, ...)`` -> ``mu (B, D)``, ``sigma (B, D)`` with sigma > 0."""


class Decoder(nn.Module, ABC):
    """Maps latents to an output distribution p(x|z)."""

    @abstractmethod
    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        """Distribution parameters for ``z (B, D)``: pixel means, token logits, ... Sequence decoders use the
        target ``x`` for teacher forcing; others ignore it."""

    @abstractmethod
    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        """``(B,)`` log p(x|z), summed over every element of an example, for params from `forward`."""

    @abstractmethod
    def generate(self, z: Tensor, *, temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Outputs in data space for ``z (B, D)``: image means, or tokens decoded autoregressively
        (argmax at temperature 0, sampled otherwise)."""


@dataclasses.dataclass
class BackboneConfig:
    """Settings every backbone has; subclass it (as a dataclass) to add the backbone's own, and extend `LIMITS`
    (the allowed range of each numeric field, checked before anything is built) with theirs."""

    LIMITS: ClassVar[dict[str, Range]] = {"latent_dim": Range(1, 65536), "beta": Range(0, 1e6)}
    latent_dim: int = 32
    beta: float = 1.0


class Backbone(nn.Module, ABC):
    """A VAE: encoder, decoder and a standard normal prior over ``latent_dim`` dimensions.

    Subclasses set `config_class` and build ``self.encoder`` and ``self.decoder`` in ``__init__(config)``.
    Everything else (ELBO, sampling, encoding) is provided here.
    """

    config_class: ClassVar[type[BackboneConfig]] = BackboneConfig
    #: Training settings this backbone works best with (e.g. ``{"batch_size": 32}``); `lctk train-vae` uses
    #: them where the user gives no flag.
    training_defaults: ClassVar[dict[str, Any]] = {}
    #: False for generator-only backbones (`Generator`): no q(z|x), hence no latent store and no realism critic.
    has_encoder: ClassVar[bool] = True
    encoder: Encoder
    decoder: Decoder

    def __init__(self, config: BackboneConfig):
        super().__init__()
        self.config = config

    @classmethod
    def configure(cls, data_spec: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> BackboneConfig:
        """A config for data described by ``data_spec`` (keys matching config fields), then ``overrides``."""
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        values = {k: v for k, v in data_spec.items() if k in names}
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return from_dict(cls.config_class, values, what=f"{cls.__name__} config")

    @property
    def latent_dim(self) -> int:
        """Number of latent dimensions D."""
        return self.config.latent_dim

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x (B, ...)`` -> posterior ``mu (B, D)``, ``sigma (B, D)``."""
        return self.encoder(x)

    def decode(self, z: Tensor, *, temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """``z (B, D)`` -> outputs in data space."""
        return self.decoder.generate(z, temperature=temperature, generator=generator)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, D)`` draws from the prior N(0, I)."""
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator, device=device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` unconditional outputs decoded from prior draws."""
        return self.decode(self.prior_sample(n, generator))

    def reconstruct(self, x: Tensor) -> Tensor:
        """Outputs decoded from the posterior means of ``x``."""
        return self.decode(self.encode(x)[0])

    def elbo_terms(self, x: Tensor, eps: Tensor | None = None, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Per-example ``reconstruction`` (-log p(x|z)) and ``kl`` (KL(q || N(0, I))), each ``(B,)``, and the
        batch-mean ``loss`` = reconstruction + beta * kl, with z = mu + sigma * eps (``eps (B, D)`` drawn
        from ``generator`` unless given)."""
        mu, sigma = self.encode(x)  # (B, D) each
        if eps is None:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + sigma * eps
        reconstruction = -self.decoder.log_likelihood(x, self.decoder(z, x))  # (B,)
        kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(dim=1)  # (B,)
        loss = (reconstruction + self.config.beta * kl).mean()
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl}


class Importer(ABC):
    """Reads a model trained elsewhere (a pythae folder, a diffusers folder, ...) into a `Backbone`, without
    training it, changing its files, or unpickling anything (safetensors and JSON; ``.pt`` files only through
    ``torch.load(..., weights_only=True)``). Registered by `register_importers`; used by ``lctk import-backbone``.
    """

    @abstractmethod
    def detect(self, path: Path) -> bool:
        """Whether ``path`` looks like this format. Cheap: file names and JSON fields, never the weights."""

    @abstractmethod
    def load(self, path: Path, data_spec: Mapping[str, Any]) -> Backbone:
        """The model at ``path`` as a backbone (eval mode) for data described by ``data_spec`` (the dataset's
        `Dataset.spec`, e.g. ``{"input_shape": [1, 28, 28]}``). Refusals (pickles, shapes that do not fit the
        config or the data) are one-line `lctk.util.errors.LctkError` errors naming the file and the remedy."""

    def files(self, path: Path) -> list[Path]:
        """The files `load` reads; their hashes are recorded so a run notices when they change. Default:
        ``path`` itself if it is a file, else every file under it."""
        if path.is_file():
            return [path]
        return sorted(p for p in path.rglob("*") if p.is_file())


class Generator(Backbone):
    """A generator-only backbone (e.g. a GAN's generator): the prior N(0, I) and a network from latents to
    outputs, no encoder. There is no latent store of real data for it: its constraints learn from prior
    samples labelled on their decoded outputs (by rules or by a `Labeler`), with no realism critic, since
    its prior samples are already its model of the data. Subclasses implement `generate`."""

    has_encoder = False

    @abstractmethod
    def generate(self, z: Tensor) -> Tensor:
        """``z (B, D)`` -> outputs in data space (images ``(B, C, H, W)`` in [0, 1], ...)."""

    def decode(self, z: Tensor, *, temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        return self.generate(z)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise LctkError(f"backbone {type(self).__name__} is generator-only: it has no encoder, so examples cannot "
                        "be encoded, reconstructed or transformed; sample and constrain it from its prior instead")

    def elbo_terms(self, x: Tensor, eps: Tensor | None = None, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        raise LctkError(f"backbone {type(self).__name__} is generator-only: lctk does not train it; train it "
                        "elsewhere and bring it in with `lctk import-backbone`")


def gaussian_log_likelihood(x: Tensor, mean: Tensor, sigma: float) -> Tensor:
    """``(B,)`` log N(x; mean, sigma^2 I) summed over all non-batch dimensions."""
    sq = (x - mean).pow(2).flatten(1).sum(dim=1)
    n = x[0].numel()
    return -sq / (2 * sigma**2) - n * (math.log(sigma) + 0.5 * math.log(2 * math.pi))


# ----------------------------------------------------------------------------------------------------------
# Modality services: writing outputs, evaluating them, rules on them
# ----------------------------------------------------------------------------------------------------------


class Writer(ABC):
    """Writes decoded outputs of one modality to files people can look at or listen to."""

    #: Suffix the main output file gets when the user names none (``.png``); empty for a folder.
    default_suffix: str = ""
    #: Every suffix an output file may have (empty: `default_suffix` only); another ``--out`` suffix is refused.
    suffixes: tuple[str, ...] = ()

    @abstractmethod
    def write_batch(self, outputs: Tensor, path: Path, *, columns: int | None = None,
                    labels: Sequence[str] | None = None) -> list[Path]:
        """Write a batch (a grid, a folder of files, ...) at ``path``; return the files written.
        ``labels`` optionally names the rows (e.g. one row per attribute)."""

    @abstractmethod
    def write_pairs(self, before: Tensor, after: Tensor, path: Path) -> list[Path]:
        """Write inputs and their edited versions side by side at ``path``; return the files written."""

    #: Suffixes of files `read_input` reads (``(".png", ".jpg")``); empty when it reads none.
    input_suffixes: tuple[str, ...] = ()

    def render(self, outputs: Tensor) -> list[list["Media"]]:
        """One list of `lctk.util.media.Media` (a picture, a sound, a file) per output of the batch, in memory, for
        the explorer. The default writes each output with `write_batch` into a temporary folder; override it
        to render directly (and to add a sound a browser can play)."""
        from lctk.util.media import render_with_files

        return render_with_files(self, outputs)

    def read_input(self, path: Path, spec: Mapping[str, Any]) -> Tensor:
        """Read a user's file into one model-ready example ``(1, ...)`` matching ``spec`` (for ``transform
        --input``). Modalities that cannot read files raise LctkError."""
        raise LctkError(f"this modality cannot read input files; use --index instead of --input {path}")


class Evaluator(ABC):
    """Independent quality measures for one modality, computed in data space (never from lctk's critics)."""

    def __init__(self, dataset: Dataset, cache_dir: Path, progress=None):
        self.dataset, self.cache_dir, self.progress = dataset, cache_dir, progress

    @abstractmethod
    def prepare(self, seed: int = 0) -> dict[str, float]:
        """Train or load (cached in ``cache_dir``) whatever the measures need, e.g. a classifier; return
        figures about it (e.g. its accuracy on real test data; ``weak_judge`` True, with a
        ``weak_judge_reason``, when it is too weak for its figures to be trusted)."""

    def measure(self, attribute: str, outputs: Tensor) -> Tensor | None:
        """``(B,)`` float: the realised value of continuous ``attribute`` for each decoded output, computed in
        data space; None when this evaluator does not know the attribute."""
        return None

    @abstractmethod
    def evaluate(self, name: str, outputs: Tensor, target: Mapping[str, bool] | None = None,
                 reference: Tensor | None = None) -> dict[str, float]:
        """Figures for a batch of decoded ``outputs`` named ``name`` (``prior``, ``realism``,
        ``conditional``, ``reconstruction``, ...). ``target`` maps attribute names to wanted values when
        the batch was asked to have them (then report ``accuracy``); ``reference`` holds the real examples
        that ``outputs`` reconstruct, when they do (e.g. for token accuracy)."""


class Labeler(ABC):
    """A classifier on decoded outputs, trained on the dataset's labels: it labels the prior samples of
    generator-only backbones so their attributes can be constrained. A model of its own (architecture, seed,
    cache file), never the modality's `Evaluator`, so that `lctk evaluate` stays an independent judge."""

    def __init__(self, dataset: Dataset, cache_dir: Path, progress=None):
        self.dataset, self.cache_dir, self.progress = dataset, cache_dir, progress

    @abstractmethod
    def prepare(self, seed: int = 0) -> dict[str, float]:
        """Train or load (cached in ``cache_dir``) the classifier; return figures about it (e.g. accuracy on
        real test data)."""

    @abstractmethod
    def label(self, outputs: Tensor) -> Tensor:
        """``(B, A)`` bool: the attributes (one column per ``dataset.attribute_names``) of decoded ``outputs``."""


class Rule(ABC):
    """A requirement on decoded outputs, checked exactly; it need not be differentiable."""

    #: The spec string the user wrote (``key=C``); also the constraint column name.
    spec: str

    @abstractmethod
    def __call__(self, outputs: Tensor) -> Tensor:
        """``(B,)`` bool: whether each output satisfies the rule."""


# ----------------------------------------------------------------------------------------------------------
# The constraints engine (implemented in lctk.engine)
# ----------------------------------------------------------------------------------------------------------


class Critic(nn.Module, ABC):
    """A value function over latents: logits for ``z (B, D)`` and an optional condition ``y (B, K)``."""

    @abstractmethod
    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """``(B, C)`` logits (C = 1 for a realism critic, K for an attribute critic)."""


class Actor(nn.Module, ABC):
    """Moves latents to where critics approve: ``z (B, D)``, ``y (B, K)`` -> ``z' (B, D)``."""

    @abstractmethod
    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The moved latents ``z'``."""


class Constraint(ABC):
    """A named, trained requirement on latents, learned by one constraint *method* (registered through
    ``register_constraint_methods``; lctk's own: ``actor``, ``diffusion``) from cached latents only; the
    backbone is never touched. The condition ``y (B, K)`` has a column per target (attributes first, then rules);
    ``known (B, K)`` bool marks the columns a request states (the others are left to the data).

    A method implements `create`, `fit`, `sample`, `save` and `load`; `transform` (edits of encodings) and
    `log_prob` (what ``--method optimize`` climbs) are optional.
    """

    name: str
    #: Column names of the condition ``y`` this constraint understands (attributes and/or rule specs).
    targets: list[str]
    #: The registered name of the method (``constraint.json`` records it as ``method``).
    method: ClassVar[str] = ""
    #: The dataclass of the method's training settings (``--set KEY=VALUE``; saved in ``constraint.json``).
    settings_class: ClassVar[type]
    #: Whether `log_prob` is differentiable, so that ``--method optimize`` can use the constraint.
    has_log_prob: ClassVar[bool] = False
    #: Whether `sample` and `transform` take a guidance weight (``--guidance``).
    guided: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def create(cls, name: str, targets: Sequence[Any], latent_dim: int, settings: Any, data: Any) -> "Constraint":
        """A new, untrained constraint for ``targets`` (`lctk.engine.targets.Target`) over ``data``
        (`lctk.engine.method.TrainingData`: the latent store, the rules' labeller, the checkpoint path)."""

    @abstractmethod
    def fit(self, data: Any) -> dict[str, Any]:
        """Train in place from ``data`` (resuming from ``data.checkpoint`` when ``data.resume``), showing progress
        on ``data.progress``; return the metrics to keep in ``metrics.json``."""

    @abstractmethod
    def sample(self, z: Tensor, y: Tensor, known: Tensor, *, guidance: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """``z' (B, D)`` satisfying ``y (B, K)`` where ``known``, starting from prior draws ``z (B, D)``."""

    def transform(self, z: Tensor, y: Tensor, known: Tensor, *, strength: float | None = None,
                  guidance: float | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``z' (B, D)``: encodings ``z`` edited towards ``y`` where ``known``, keeping what they are."""
        raise LctkError(f"constraint method {self.method!r} does not edit encodings; use --method actor")

    def log_prob(self, z: Tensor, y: Tensor) -> Tensor:
        """``(B,)`` differentiable log-probability that ``z`` is realistic and has targets ``y (B, K)``."""
        raise LctkError(f"constraint method {self.method!r} has no log-probability for --method optimize")

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write ``constraint.json`` (with ``method``) and the weights (safetensors) into ``folder``."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path) -> "Constraint":
        """Rebuild a trained constraint from ``folder``; one-line LctkErrors for missing or damaged files."""


class ConstraintSet(ABC):
    """The constraints of one run, by name; adding one never changes another."""

    @abstractmethod
    def names(self) -> list[str]:
        """Names of the trained constraints."""

    @abstractmethod
    def get(self, name: str) -> Constraint:
        """The constraint called ``name``; LctkError if there is none."""

    @abstractmethod
    def covering(self, targets: Sequence[str]) -> Constraint | None:
        """A constraint whose targets include all of ``targets`` (its actor can serve them), if any."""
