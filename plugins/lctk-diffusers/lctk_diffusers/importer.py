"""Reading a diffusers ``AutoencoderKL`` folder (``save_pretrained``) without any pickle.

``config.json`` is JSON; the model is built from it with ``AutoencoderKL.from_config`` (on the meta device
first, so an absurd config costs nothing) and the weights come from ``diffusion_pytorch_model.safetensors``,
read by lctk's safetensors reader, which refuses a pickle wearing that name. ``.bin`` weights (pickles) are
refused. ``from_pretrained`` is not used: it also downloads, reads sharded and ``.bin`` checkpoints and more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from lctk.plugin_api import Backbone, Importer, LctkError, load_json, load_tensors
from lctk_diffusers.backbone import AutoencoderKLBackbone, AutoencoderKLConfig

CONFIG = "config.json"
WEIGHTS = "diffusion_pytorch_model.safetensors"


class AutoencoderKLImporter(Importer):
    """Imports a diffusers ``AutoencoderKL`` saved with ``save_pretrained`` (safetensors weights)."""

    def detect(self, path: Path) -> bool:
        if not (path.is_dir() and (path / CONFIG).is_file()):
            return False
        return load_json(path / CONFIG, "diffusers config").get("_class_name") == "AutoencoderKL"

    def files(self, path: Path) -> list[Path]:
        return [p for p in (path / CONFIG, path / WEIGHTS) if p.is_file()]

    def load(self, path: Path, data_spec: Mapping[str, Any]) -> Backbone:
        config = read_config(path / CONFIG)
        weights = find_weights(path)
        check_data(path, config, data_spec)
        tensors, _ = load_tensors(weights, what="AutoencoderKL weights")
        ae = build(config, tensors, weights)
        c, h, w = (int(n) for n in data_spec.get("input_shape") or (config["in_channels"], 1, 1))
        with torch.no_grad():
            latent = ae.encode(torch.zeros(1, c, h, w)).latent_dist.mean  # (1, c', h', w')
        shift = config.get("shift_factor")
        scale = config.get("scaling_factor")
        bb_config = AutoencoderKLConfig(latent_dim=int(latent[0].numel()), input_shape=(c, h, w),
                                        latent_shape=tuple(int(n) for n in latent.shape[1:]),
                                        scaling_factor=float(1.0 if scale is None else scale),
                                        shift_factor=float(0.0 if shift is None else shift))
        if bb_config.scaling_factor <= 0:
            raise LctkError(f"{path / CONFIG}: scaling_factor {scale} should be positive")
        return AutoencoderKLBackbone(bb_config, ae).eval()


def read_config(path: Path) -> dict[str, Any]:
    """config.json of an AutoencoderKL, checked for its class and the channel counts."""
    config = load_json(path, "diffusers config")
    if config.get("_class_name") != "AutoencoderKL":
        raise LctkError(f"{path} describes a {config.get('_class_name')!r}, not an AutoencoderKL")
    for key in ("in_channels", "out_channels"):
        value = config.setdefault(key, 3)
        if not (isinstance(value, int) and 0 < value <= 64):
            raise LctkError(f"{path}: {key} {value!r} should be a small positive integer")
    return config


def find_weights(path: Path) -> Path:
    """The safetensors weights; a one-line refusal for pickled (.bin) or missing weights."""
    weights = path / WEIGHTS
    if weights.is_file():
        return weights
    pickled = sorted(p.name for p in path.glob("*.bin"))
    if pickled:
        raise LctkError(f"{path} holds only pickled weights ({', '.join(pickled)}); lctk never loads pickles, since "
                        f"loading one can run code: save the model with save_pretrained(safe_serialization=True) to get {WEIGHTS}")
    others = sorted(p.name for p in path.glob("*.safetensors"))
    hint = f" (found {', '.join(others)}: rename the one to use)" if others else ""
    raise LctkError(f"{path} has no {WEIGHTS}{hint}; lctk reads the single-file safetensors that save_pretrained writes")


def check_data(path: Path, config: Mapping[str, Any], data_spec: Mapping[str, Any]) -> None:
    """The model's channels and image size must be the data's: lctk neither maps channels nor resizes."""
    shape = data_spec.get("input_shape")
    if shape is None or len(shape) != 3:
        raise LctkError(f"an AutoencoderKL takes images; the dataset's examples have shape {shape}")
    c, h, w = (int(n) for n in shape)
    if config["in_channels"] != c or config["out_channels"] != c:
        raise LctkError(f"the AutoencoderKL at {path} takes {config['in_channels']}-channel images and makes "
                        f"{config['out_channels']}-channel ones, the dataset's have {c}; lctk maps no channels: "
                        f"use a model with in_channels = out_channels = {c}")
    size = config.get("sample_size")
    size = [size, size] if isinstance(size, int) else size
    if isinstance(size, (list, tuple)) and list(size) != [h, w]:
        raise LctkError(f"the AutoencoderKL at {path} was made for {size[0]}x{size[1]} images (config.json sample_size), "
                        f"the dataset's are {h}x{w}; lctk neither pads nor resizes: use data of the model's size")


def build(config: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], weights: Path):
    """The AutoencoderKL of ``config`` holding ``tensors``; the shapes are compared on the meta device first."""
    from diffusers import AutoencoderKL
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # unused config keys are not the user's problem here
    with torch.device("meta"):
        ae = AutoencoderKL.from_config(dict(config))
    want = {k: tuple(v.shape) for k, v in ae.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in tensors.items()}
    missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise LctkError(f"{weights} does not fit config.json: {'missing' if missing else 'unexpected'} weight {key} "
                        f"({len(missing)} missing, {len(unexpected)} unexpected); the folder is inconsistent")
    wrong = [k for k in sorted(want) if want[k] != have[k]]
    if wrong:
        raise LctkError(f"{weights} does not fit config.json: {wrong[0]} has shape {list(have[wrong[0]])}, the config "
                        f"implies {list(want[wrong[0]])}; the folder is inconsistent")
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    ae.load_state_dict(state, assign=True)
    return ae.eval()
