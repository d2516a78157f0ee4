"""Settings of constraint training, saved in each constraint's constraint.json."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from lctk.util.config import Range

BIG = 10 ** 9


@dataclasses.dataclass
class ConstraintConfig:
    """How critics and actor are trained (defaults reach the documented Fashion-MNIST targets on 2 CPU cores).

    Networks: ``depth`` hidden ReLU layers of ``width`` (the paper: 4 x 2048); conditions enter through a
    linear embedding of ``embed_dim``. Optimisation: Adam(``beta1``, ``beta2``) at ``lr``; ``steps`` actor
    steps, each after ``critic_steps`` critic steps; ``classifier_steps`` steps of the attribute classifier
    first. Losses: ``lambda_dist`` weighs the distance penalty, ``lambda_attr`` the attribute/rule critics'
    guidance of the actor, ``gp_weight`` a gradient penalty on the realism critic (0: off); the attribute
    critic learns from encodings blurred by noise of up to ``attr_noise`` data standard deviations; a fraction
    ``prior_fraction`` of the critic's fakes are raw prior draws. Continuous attributes: the critic regresses
    the value scaled to [0, 1]; the actor and ``optimize`` are guided by a Gaussian of ``continuous_sd`` (scaled
    units) around the wanted value; a fraction ``uniform_fraction`` of the conditions the actor learns from asks
    for values drawn uniformly over the whole observed range (the rest follow the data). Rules: ``rule_pool`` decoded and labelled
    latents, refreshed with ``relabel_batch`` new ones every ``relabel_every`` actor steps.

    `LIMITS` holds the allowed range of each setting (checked for ``--set`` values and constraint.json alike);
    the networks' size as a whole is bounded by `lctk.util.config.check_parameters`.
    """

    LIMITS: ClassVar[dict[str, Range]] = {
        "width": Range(1, 16384), "depth": Range(0, 64), "embed_dim": Range(1, 4096), "batch_size": Range(1, 65536),
        "steps": Range(1, BIG), "critic_steps": Range(1, 1000), "classifier_steps": Range(0, BIG),
        "lr": Range(0, 1, low_open=True), "beta1": Range(0, 0.9999), "beta2": Range(0, 0.9999),
        "lambda_dist": Range(0, 1e6), "lambda_attr": Range(0, 1e6), "gp_weight": Range(0, 1e6),
        "attr_noise": Range(0, 100), "prior_fraction": Range(0, 1), "rule_pool": Range(1, 10 ** 7),
        "relabel_every": Range(1, BIG), "relabel_batch": Range(1, 65536), "seed": Range(0, 2 ** 63 - 1),
        "checkpoint_every": Range(0, BIG),
    }

    width: int = 512
    depth: int = 4
    embed_dim: int = 64
    batch_size: int = 256
    steps: int = 1500
    critic_steps: int = 3
    classifier_steps: int = 1500
    lr: float = 3e-4
    beta1: float = 0.0
    beta2: float = 0.9
    lambda_dist: float = 0.001
    lambda_attr: float = 1.0
    gp_weight: float = 10.0
    attr_noise: float = 2.0
    prior_fraction: float = 0.1
    continuous_sd: float = 0.05
    uniform_fraction: float = 0.5
    rule_pool: int = 8192
    relabel_every: int = 10
    relabel_batch: int = 256
    seed: int = 0
    checkpoint_every: int = 0
