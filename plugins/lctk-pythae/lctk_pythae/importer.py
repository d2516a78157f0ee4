"""Reading a pythae model folder (``model_config.json`` + ``model.pt``) without pythae's loader.

pythae's ``AutoModel.load_from_folder`` unpickles ``model.pt`` in full and, for any non-default network,
``encoder.pkl``/``decoder.pkl`` (cloudpickle): loading someone's folder that way runs their code. Here the config
is JSON, ``model.pt`` is read with ``torch.load(..., weights_only=True)`` (tensors and plain containers only;
anything else is refused before it runs), and the networks are rebuilt from pythae's own classes.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import torch

from lctk.plugin_api import Backbone, Importer, LctkError, load_json
from lctk_pythae import networks
from lctk_pythae.backbone import PythaeConfig, PythaeVAE

#: pythae models whose posterior is a diagonal Gaussian from the encoder and whose prior is N(0, I): their
#: encoder and decoder are all lctk needs.
GAUSSIAN_VAES = {"VAEConfig", "BetaVAEConfig", "DisentangledBetaVAEConfig", "BetaTCVAEConfig", "IWAEConfig",
                 "MIWAEConfig", "PIWAEConfig", "CIWAEConfig", "MSSSIM_VAEConfig", "INFOVAE_MMD_Config"}
DESCRIBING = ("model_config.json", "model.pt", "training_config.json", "environment.json")


class PythaeImporter(Importer):
    """Imports VAE-family models written by pythae (``model.save`` or its ``TrainingPipeline``'s
    ``final_model`` folder) with pythae's default MLPs or its 28x28 benchmark conv/ResNet nets."""

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (path / "model_config.json").is_file() and (path / "model.pt").is_file()

    def files(self, path: Path) -> list[Path]:
        return [path / name for name in DESCRIBING if (path / name).is_file()]

    def load(self, path: Path, data_spec: Mapping[str, Any]) -> Backbone:
        if not self.detect(path):
            raise LctkError(f"{path} is not a pythae model folder (it needs model_config.json and model.pt)")
        config = read_config(path / "model_config.json")
        state = read_state(path / "model.pt")
        input_dim, latent_dim = config["input_dim"], config["latent_dim"]
        wanted = data_spec.get("input_shape")
        if wanted is not None and tuple(wanted) != input_dim:
            raise LctkError(f"the pythae model at {path} takes images of shape {list(input_dim)} (model_config.json "
                            f"input_dim) but the dataset's are {list(wanted)}; import it for data of its own size")
        nets = {}
        for part in ("encoder", "decoder"):
            sub = {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}
            default = bool(config.get(f"uses_default_{part}", True))
            name, problem = networks.identify(part, sub, input_dim, latent_dim, default)
            if name is None:
                raise LctkError(_refusal(path, part, default, problem))
            net = networks.build(part, name, input_dim, latent_dim)
            net.load_state_dict(sub)
            nets[part] = name, net
        extra = sorted(k for k in state if not k.startswith(("encoder.", "decoder.")))
        if extra:
            raise LctkError(f"model.pt in {path} holds parameters besides the encoder's and decoder's ({extra[0]}, ...); "
                            f"lctk imports plain Gaussian VAEs only")
        cfg = PythaeConfig(latent_dim=latent_dim, input_shape=input_dim, model=config["name"],
                           encoder=nets["encoder"][0], decoder=nets["decoder"][0],
                           reconstruction_loss=str(config.get("reconstruction_loss", "mse")))
        return PythaeVAE(cfg, nets["encoder"][1], nets["decoder"][1]).eval()


def read_config(path: Path) -> dict[str, Any]:
    """model_config.json, checked: a supported model, an image input_dim, a positive latent_dim."""
    config = load_json(path, "pythae model config")
    name = config.get("name")
    if name not in GAUSSIAN_VAES:
        raise LctkError(f"{path} describes a pythae {name!r} model; lctk imports the Gaussian VAEs "
                        f"({', '.join(sorted(GAUSSIAN_VAES))}), whose prior is N(0, I) and posterior a diagonal Gaussian")
    dims, latent = config.get("input_dim"), config.get("latent_dim")
    if not (isinstance(dims, list) and len(dims) == 3 and all(isinstance(d, int) and 0 < d <= 4096 for d in dims)):
        raise LctkError(f"{path}: input_dim {dims!r} is not an image shape [C, H, W]; lctk imports pythae image models")
    if not (isinstance(latent, int) and 0 < latent <= 65536):
        raise LctkError(f"{path}: latent_dim {latent!r} should be a positive integer")
    config["input_dim"] = tuple(dims)
    return config


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The ``model_state_dict`` of pythae's model.pt, read with ``weights_only=True`` (no code can run)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError, OSError) as e:
        first = " ".join(str(e).split())[:120]
        raise LctkError(f"{path} is not a plain weights file (torch.load with weights_only=True refused it: {first}); "
                        "lctk never runs code from model files; save the model with pythae's model.save") from None
    state = saved.get("model_state_dict") if isinstance(saved, dict) else None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise LctkError(f"{path} holds no 'model_state_dict' of tensors; it was not written by pythae's model.save")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _refusal(path: Path, part: str, default: bool, problem: str) -> str:
    if default:
        return (f"model.pt in {path} does not fit model_config.json: pythae's default {part} with its "
                f"input_dim and latent_dim does not match the weights ({problem}); the folder is inconsistent")
    pickled = f"{part}.pkl"
    return (f"the {part} of the pythae model at {path} is a custom network pickled in {pickled} ({problem}); lctk "
            "never unpickles (loading a pickle runs whatever code it holds) and rebuilds only pythae's default and "
            "28x28 benchmark networks; write an lctk importer plugin for this network (see docs/pretrained.md)")
