"""Training checkpoints: modules, optimizers, torch's random state and progress in ONE safetensors file
(progress as JSON metadata), written atomically, so resuming continues bit for bit and a kill never leaves
a broken checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lctk import FORMAT_VERSION
from lctk.util.errors import LctkError
from lctk.util.io import load_tensors, parse_tensors, save_tensors


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    sd = opt.state_dict()
    scalars = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{name}.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    meta[f"optim.{name}"] = {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    info = meta.get(f"optim.{name}")
    if info is None:
        raise LctkError(f"checkpoint has no state for optimizer {name!r}; it was written by something else")
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim.{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[field] = value
    for key, value in info["scalars"].items():
        idx, field = key.split(".", 1)
        state.setdefault(int(idx), {})[field] = value
    opt.load_state_dict({"state": state, "param_groups": info["param_groups"]})


def save_checkpoint(path: str | Path, *, modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer] = {},
                    meta: Mapping[str, Any] | None = None) -> None:
    """Atomically save modules, optimizer states, the global torch RNG and ``meta`` (per-step randomness comes
    from generators seeded by the step, `lctk.loop.step_generator`, so no generator state is needed)."""
    tensors: dict[str, torch.Tensor] = {}
    info: dict[str, Any] = {"format_version": FORMAT_VERSION, "meta": dict(meta or {})}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"module.{name}.{key}"] = value
    for name, opt in optimizers.items():
        _flatten_optimizer(name, opt, tensors, info)
    tensors["rng.__torch__"] = torch.get_rng_state()
    save_tensors(path, tensors, {"lctk": json.dumps(info)})


def load_checkpoint(path: str | Path, *, modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer] = {},
                    data: bytes | None = None) -> dict[str, Any]:
    """Restore what `save_checkpoint` saved into the given objects; return the saved ``meta``.

    ``data``: the checkpoint's bytes when they were already read (e.g. sent by rank 0); else ``path`` is read.
    Anything that does not fit (another model, another optimizer, a damaged file) is a one-line LctkError.
    """
    if data is None:
        tensors, metadata = load_tensors(path, what="checkpoint")
    else:
        tensors, metadata = parse_tensors(data, what=f"checkpoint {path}")
    try:
        info = json.loads(metadata["lctk"])
        if not isinstance(info, dict) or not isinstance(info.get("meta", {}), dict):
            raise ValueError
    except (KeyError, ValueError, RecursionError):
        raise LctkError(f"checkpoint {path} was not written by lctk; delete it or start a new run") from None
    if info.get("format_version") != FORMAT_VERSION:
        raise LctkError(f"checkpoint {path} has format {info.get('format_version')}, this lctk reads "
                        f"{FORMAT_VERSION}; use the lctk version that wrote it")
    for name, module in modules.items():
        prefix = f"module.{name}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            raise LctkError(f"checkpoint {path} does not fit {name} ({str(e).splitlines()[0]})") from None
    try:
        for name, opt in optimizers.items():
            _restore_optimizer(name, opt, tensors, info)
        torch.set_rng_state(tensors["rng.__torch__"])
    except LctkError:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as e:
        raise LctkError(f"checkpoint {path} is damaged or from another setup ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); delete it to start over") from None
    return info.get("meta", {})
