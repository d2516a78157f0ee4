"""Conditional sampling and identity-preserving transforms with a run's trained constraints.

Wanted targets are served by the actor of one constraint that covers them all (``method="actor"``), or by
gradient-based optimisation against the sum of the log-probabilities of the constraints that hold them
(``method="optimize"``), which also combines constraints trained separately.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from lctk.engine.constraint import LatentConstraint
from lctk.engine.constraint_set import REALISM, RunConstraints
from lctk.engine.optimize import SAMPLE_SETTINGS, TRANSFORM_SETTINGS, OptimizeSettings, optimize_latents
from lctk.engine.targets import Target, parse_rule, parse_targets
from lctk.errors import LctkError
from lctk.latents import LatentStore
from lctk.run import RunDir, fingerprint

METHODS = ("actor", "optimize")


class Sampler:
    """Draws latents that satisfy wanted targets, and decodes them, for one run."""

    def __init__(self, run: RunDir | str):
        self.run = run if isinstance(run, RunDir) else RunDir(run)
        self.info = self.run.read()
        self.backbone = self.run.load_backbone(self.info)
        self.fingerprint = fingerprint(self.backbone)
        self.constraints = RunConstraints(self.run)
        self._store: LatentStore | None = None
        self._table: Tensor | None = None

    # -- data the conditions come from ---------------------------------------------------------------------
    @property
    def store(self) -> LatentStore:
        """The run's latent store (opened on first use)."""
        if self._store is None:
            self._store = LatentStore.open(self.run.latents_path)
        return self._store

    @property
    def attribute_names(self) -> list[str]:
        return list(self.info["dataset"].get("attribute_names") or self.store.attribute_names)

    def table(self) -> Tensor:
        """``(N, A)`` bool attribute table of the training latents."""
        if self._table is None:
            self._table = self.store.load("train")[2]
        return self._table

    def constrained_attributes(self) -> list[str]:
        """Every attribute some trained constraint of the run covers, in the data's order."""
        covered = {c.targets[i] for c in self.constraints.all() for i in c.attr_cols}
        return [a for a in self.attribute_names if a in covered]

    def wants(self, attrs: Sequence[str] = (), rules: Sequence[str] = ()) -> list[Target]:
        """Parse ``--attr``/``--rule`` specs against this run (values kept: ``no-smiling`` wants 0)."""
        return parse_targets(attrs, rules, self.attribute_names, self.run.modality(self.info))[0]

    def constraint(self, name: str) -> LatentConstraint:
        """A trained constraint, refused if it was trained for other backbone weights."""
        c = self.constraints.get(name)
        if c.fingerprint != self.fingerprint:
            raise LctkError(f"constraint {c.name!r} was trained on latents of other backbone weights; retrain it with "
                            f"`lctk add-constraint {self.run.path} ... --force`")
        return c

    def condition(self, c: LatentConstraint, wants: Sequence[Target], n: int, gen: torch.Generator) -> Tensor:
        """``(n, K)`` conditions for constraint ``c``: attribute columns from real label rows that agree with
        the wanted values (so unstated attributes follow the data), rule columns 1 where wanted."""
        y = torch.zeros(n, len(c.targets))
        wanted = {t.name: t.value for t in wants}
        if c.attr_cols:
            names = [c.targets[i] for i in c.attr_cols]
            table = self.table()[:, [self.store.attribute_names.index(a) for a in names]]  # (N, K_a)
            ok = torch.ones(len(table), dtype=torch.bool)
            for j, a in enumerate(names):
                if a in wanted:
                    ok &= table[:, j] == wanted[a]
            rows = table[ok] if ok.any() else table
            y[:, c.attr_cols] = rows[torch.randint(0, len(rows), (n,), generator=gen)].float()
            for j, a in enumerate(names):
                if a in wanted:
                    y[:, c.attr_cols[j]] = float(wanted[a])
        for i in c.rule_cols:
            y[:, i] = 1.0 if c.targets[i] in wanted else 0.0
        return y

    # -- choosing constraints ------------------------------------------------------------------------------
    def _plan(self, wants: Sequence[Target]) -> list[tuple[LatentConstraint, list[Target]]]:
        """Which constraint serves which wanted targets (one constraint if one covers them all)."""
        if not wants:
            names = self.constraints.names()
            if not names:
                raise LctkError(f"run {self.run.path} has no constraints yet; train one with "
                                f"`lctk add-constraint {self.run.path}` (realism) or `--attr NAME`")
            return [(self.constraint(REALISM if REALISM in names else names[0]), [])]
        whole = self.constraints.covering([t.name for t in wants])
        if whole is not None:
            return [(self.constraint(whole.name), list(wants))]
        plan: dict[str, list[Target]] = {}
        for t in wants:
            c = self.constraints.containing(t.name)
            if c is None:
                raise LctkError(f"no constraint of run {self.run.path} covers {t.name!r}; train one with "
                                f"`lctk add-constraint {self.run.path} --{'attr' if t.kind == 'attribute' else 'rule'} {t.name}`")
            plan.setdefault(c.name, []).append(t)
        return [(self.constraint(name), ts) for name, ts in plan.items()]

    # -- latents -------------------------------------------------------------------------------------------
    def latents(self, wants: Sequence[Target], n: int, method: str = "actor", seed: int = 0,
                settings: OptimizeSettings | None = None) -> tuple[Tensor, Tensor]:
        """``(z_prior, z_moved)``, each ``(n, D)``: prior draws and their constrained versions."""
        if method not in METHODS:
            raise LctkError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.backbone.latent_dim, generator=gen)
        plan = self._plan(wants)
        if method == "actor":
            if len(plan) > 1:
                raise LctkError("no single constraint covers all of " + ", ".join(str(t) for t in wants) +
                                "; use --method optimize to combine them, or train one with add-constraint")
            c, ts = plan[0]
            with torch.no_grad():
                return z, c.act(z, self.condition(c, ts, n, gen))
        return z, self.optimize(z, plan, gen, settings or SAMPLE_SETTINGS)

    def checked(self, wants: Sequence[Target], n: int, method: str = "actor", seed: int = 0,
                rounds: int = 10, first: Tensor | None = None) -> tuple[Tensor, int]:
        """``(outputs, draws)``: ``n`` decoded samples for ``wants`` whose wanted rules all hold, drawing again
        (with new seeds, up to ``rounds`` times) for those that break one; samples still failing after the last
        round are kept as they are. ``draws`` is how many samples were drawn in all. ``first``: the decoded
        first draw, if the caller already has it (the same ``seed``'s samples)."""
        rules = [parse_rule(t.name, self.run.modality(self.info))[1] for t in wants if t.kind == "rule" and t.value]
        outputs = first.clone() if first is not None else self.decode(self.latents(wants, n, method, seed)[1])
        draws = n
        for r in range(1, rounds + 1 if rules else 1):
            bad = ~torch.stack([rule(outputs).bool() for rule in rules], dim=1).all(dim=1)  # (n,)
            if not bad.any():
                break
            fresh = self.decode(self.latents(wants, int(bad.sum()), method, seed + 7919 * r)[1])
            outputs[bad] = fresh
            draws += len(fresh)
        return outputs, draws

    def optimize(self, z0: Tensor, plan, gen: torch.Generator, settings: OptimizeSettings | None = None) -> Tensor:
        """Gradient-based optimisation from ``z0`` against the summed log-probabilities of ``plan``."""
        conds = [(c, self.condition(c, ts, len(z0), gen)) for c, ts in plan]
        sigma_bar = plan[0][0].sigma_bar

        def log_prob(z: Tensor) -> Tensor:
            return sum(c.log_prob(z, y) for c, y in conds)

        return optimize_latents(z0, log_prob, sigma_bar, settings)

    def transform_latents(self, x: Tensor, wants: Sequence[Target], seed: int = 0,
                          settings: OptimizeSettings | None = None) -> tuple[Tensor, Tensor]:
        """``(z0, z')``: encodings of ``x`` and their smallest moves that satisfy ``wants``."""
        if not wants:
            raise LctkError("transform needs at least one --attr or --rule to move towards")
        with torch.no_grad():
            z0, _ = self.backbone.encode(x)
        gen = torch.Generator().manual_seed(seed)
        return z0, self.optimize(z0, self._plan(wants), gen, settings or TRANSFORM_SETTINGS)

    def decode(self, z: Tensor, batch: int = 512) -> Tensor:
        """Outputs for latents ``z (B, D)``, decoded in batches."""
        with torch.no_grad():
            return torch.cat([self.backbone.decode(z[i:i + batch]) for i in range(0, len(z), batch)])

    def close(self) -> None:
        """Close the latent store if it was opened."""
        if self._store is not None:
            self._store.close()
            self._store = None
