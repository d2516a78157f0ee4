"""pythae's networks that lctk can rebuild without unpickling: the default MLPs and the MNIST benchmark nets.

pythae pickles any encoder/decoder that is not its default (``encoder.pkl``/``decoder.pkl``, with cloudpickle),
including its own benchmark nets. lctk never opens those files: it recognises a benchmark net by the names and
shapes of its parameters in ``model.pt`` and builds it from pythae's own class instead.
"""

from __future__ import annotations

import types
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

MNIST_SHAPE = (1, 28, 28)


def _classes() -> tuple[dict[str, Callable], dict[str, Callable]]:
    """Encoder and decoder classes by name: pythae's defaults first, then its 28x28 benchmark nets."""
    from pythae.models.nn.benchmarks import mnist
    from pythae.models.nn.default_architectures import Decoder_AE_MLP, Encoder_VAE_MLP

    encoders = {"Encoder_VAE_MLP": Encoder_VAE_MLP, "Encoder_Conv_VAE_MNIST": mnist.Encoder_Conv_VAE_MNIST,
                "Encoder_ResNet_VAE_MNIST": mnist.Encoder_ResNet_VAE_MNIST}
    decoders = {"Decoder_AE_MLP": Decoder_AE_MLP, "Decoder_Conv_AE_MNIST": mnist.Decoder_Conv_AE_MNIST,
                "Decoder_ResNet_AE_MNIST": mnist.Decoder_ResNet_AE_MNIST}
    return encoders, decoders


DEFAULT = {"encoder": "Encoder_VAE_MLP", "decoder": "Decoder_AE_MLP"}


def build(part: str, name: str, input_dim: Sequence[int], latent_dim: int) -> nn.Module:
    """pythae network ``name`` (an encoder or decoder, per ``part``) for the given sizes."""
    encoders, decoders = _classes()
    cls = (encoders if part == "encoder" else decoders)[name]
    return cls(types.SimpleNamespace(input_dim=tuple(input_dim), latent_dim=latent_dim))


def shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """``{parameter name: shape}``."""
    return {k: tuple(v.shape) for k, v in state.items()}


def candidates(part: str, input_dim: Sequence[int], default: bool) -> list[str]:
    """Names of the networks that may have written ``part``: the default one when the config says so, else
    the benchmark nets that fit ``input_dim``."""
    if default:
        return [DEFAULT[part]]
    encoders, decoders = _classes()
    names = [n for n in (encoders if part == "encoder" else decoders) if n != DEFAULT[part]]
    return names if tuple(input_dim) == MNIST_SHAPE else []


def expected_shapes(part: str, name: str, input_dim: Sequence[int], latent_dim: int) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of network ``name``, computed on the meta device (no memory, no weights)."""
    encoders, decoders = _classes()
    cls = (encoders if part == "encoder" else decoders)[name]
    with torch.device("meta"):
        module = cls(types.SimpleNamespace(input_dim=tuple(input_dim), latent_dim=latent_dim))
    return shapes(module.state_dict())


def identify(part: str, state: Mapping[str, torch.Tensor], input_dim: Sequence[int], latent_dim: int,
             default: bool) -> tuple[str | None, str]:
    """The network whose parameters have exactly the names and shapes of ``state``, or None with the first
    difference from the closest candidate (for the error message)."""
    have = shapes(state)
    names = candidates(part, input_dim, default)
    wanted = {name: expected_shapes(part, name, input_dim, latent_dim) for name in names}
    for name, want in wanted.items():
        if want == have:
            return name, ""
    for name, want in wanted.items():
        if set(want) == set(have):
            key = next(k for k in sorted(want) if want[k] != have[k])
            return None, f"{part}.{key} has shape {list(have[key])} but {name} with the config's sizes has {list(want[key])}"
    return None, ("its parameters match none of " + ", ".join(names)) if names else "no pythae network fits these sizes"
