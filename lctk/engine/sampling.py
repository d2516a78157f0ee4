"""Conditional sampling and identity-preserving transforms with a run's trained constraints.

Wanted targets are served by one constraint of the chosen method that covers them all (``method="actor"``:
its actor moves prior draws; ``method="diffusion"``: its denoiser integrates them from noise; or a plugin's
method), or by gradient-based optimisation against the sum of the log-probabilities of the constraints that
hold them (``method="optimize"``, over constraints with a log-probability: the actor's critics), which also
combines constraints trained separately.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from lctk.engine.constraint_set import REALISM, RunConstraints
from lctk.engine.method import DEFAULT_METHOD, OPTIMIZE, check_sampling_method
from lctk.engine.optimize import SAMPLE_SETTINGS, TRANSFORM_SETTINGS, OptimizeSettings, optimize_latents
from lctk.engine.targets import Target, parse_rule, parse_sweep, parse_targets, sweep_values
from lctk.util.errors import LctkError
from lctk.interfaces import Constraint
from lctk.latents import LatentStore
from lctk.run import RunDir, fingerprint

#: The sampling methods every lctk has (plugins may add constraint methods: `lctk.engine.method.sampling_methods`).
METHODS = (DEFAULT_METHOD, OPTIMIZE)


class Sampler:
    """Draws latents that satisfy wanted targets, and decodes them, for one run."""

    def __init__(self, run: RunDir | str):
        self.run = run if isinstance(run, RunDir) else RunDir(run)
        self.record = self.run.record
        self.backbone = self.run.load_backbone()
        self.fingerprint = fingerprint(self.backbone)
        self.constraints = RunConstraints(self.run)
        self._store: LatentStore | None = None
        self._table: Tensor | None = None
        self._continuous: Tensor | None = None

    # -- data the conditions come from ---------------------------------------------------------------------
    @property
    def store(self) -> LatentStore:
        """The run's latent store (opened on first use)."""
        if self._store is None:
            store = LatentStore.open(self.run.latents_path)
            if self.backbone.has_encoder and store.latent_dim != self.backbone.latent_dim:
                store.close()
                raise LctkError(f"latent store {store.path} holds {store.latent_dim}-dimensional latents but the "
                                f"backbone's latent size is {self.backbone.latent_dim}; re-encode with "
                                f"`lctk encode {self.run.path} --force`")
            self._store = store
        return self._store

    @property
    def attribute_names(self) -> list[str]:
        return list(self.record.dataset.attribute_names or self.store.attribute_names)

    def table(self) -> Tensor:
        """``(N, A)`` bool attribute table of the training latents (of the training examples, for a
        generator-only backbone, which has no latents)."""
        if self._table is None:
            if self.backbone.has_encoder:
                self._table = self.store.load("train")[2]
            else:
                dataset = self.run.load_dataset()
                self._table = dataset.attributes[dataset.indices("train")]
        return self._table

    def continuous_table(self) -> Tensor:
        """``(N, C)`` continuous attribute values of the training latents."""
        if self._continuous is None:
            self._continuous = self.store.load_continuous("train")
        return self._continuous

    @property
    def continuous_ranges(self) -> dict[str, tuple[float, float]]:
        """Continuous attribute name -> observed (low, high), from the latent store (none without one)."""
        if not self.run.latents_path.is_file():
            return {}
        return dict(self.store.continuous_ranges)

    def constrained_attributes(self) -> list[str]:
        """Every binary attribute some trained constraint of the run covers, in the data's order."""
        covered = {c.targets[i] for c in self.constraints.all() for i in c.binary_cols()}
        return [a for a in self.attribute_names if a in covered]

    def constrained_continuous(self) -> list[Target]:
        """Every continuous attribute some trained constraint covers (with the range it was trained over)."""
        found: dict[str, Target] = {}
        for c in self.constraints.all():
            for i in c.continuous_cols():
                found.setdefault(c.targets[i], c.targets_full[i])
        return [found[n] for n in sorted(found)]

    def wants(self, attrs: Sequence[str] = (), rules: Sequence[str] = ()) -> list[Target]:
        """Parse ``--attr``/``--rule`` specs against this run (values kept: ``no-smiling`` wants 0,
        ``density=12`` wants 12)."""
        return parse_targets(attrs, rules, self.attribute_names, self.run.modality, self.continuous_ranges,
                             self._hint())[0]

    def _hint(self) -> str:
        return self.store.continuous_hint() if self.run.latents_path.is_file() else ""

    def sweep(self, attrs: Sequence[str] = (), rules: Sequence[str] = ()) -> list[list[Target]] | None:
        """The wanted targets of each value of the one sweep among ``attrs`` (``density=4..16``), in order;
        None when there is no sweep."""
        sweeps = [i for i, a in enumerate(attrs) if sweep_values(a) is not None]
        if not sweeps:
            return None
        if len(sweeps) > 1:
            raise LctkError("sweep one attribute at a time (" + ", ".join(attrs[i] for i in sweeps) + ")")
        rest = [a for i, a in enumerate(attrs) if i != sweeps[0]]
        base = self.wants(rest, rules)
        steps = parse_sweep(attrs[sweeps[0]], self.attribute_names, self.continuous_ranges, self._hint())
        if any(t.name == steps[0].name for t in base):
            raise LctkError(f"attribute {steps[0].name!r} is asked for twice")
        return [[step, *base] for step in steps]

    def constraint(self, name: str) -> Constraint:
        """A trained constraint, refused if it was trained for other backbone weights."""
        c = self.constraints.get(name)
        if c.fingerprint != self.fingerprint:
            raise LctkError(f"constraint {c.name!r} was trained on latents of other backbone weights; retrain it with "
                            f"`lctk add-constraint {self.run.path} ... --force`")
        if c.sigma_bar.numel() != self.backbone.latent_dim:
            raise LctkError(f"constraint {c.name!r} is for {c.sigma_bar.numel()}-dimensional latents but the backbone's "
                            f"latent size is {self.backbone.latent_dim}; retrain it with "
                            f"`lctk add-constraint {self.run.path} ... --force`")
        return c

    def condition(self, c: Constraint, wants: Sequence[Target], n: int, gen: torch.Generator) -> Tensor:
        """``(n, K)`` conditions for constraint ``c``: attribute columns from real label rows that agree with
        the wanted binary values (so unstated attributes follow the data), wanted continuous values scaled to
        the range ``c`` was trained over, rule columns 1 where wanted."""
        y = torch.zeros(n, len(c.targets))
        wanted = {t.name: t for t in wants if t.value is not None}
        if c.attr_cols:
            columns = []
            for i in c.attr_cols:
                t = c.targets_full[i]
                if t.kind == "continuous":
                    values = self.continuous_table()[:, self.store.continuous_names.index(t.name)]
                    columns.append((values - t.low) / ((t.high - t.low) or 1.0))
                else:
                    columns.append(self.table()[:, self.attribute_names.index(t.name)].float())
            table = torch.stack(columns, dim=1)  # (N, K_a)
            ok = torch.ones(len(table), dtype=torch.bool)
            for j, i in enumerate(c.attr_cols):
                t = c.targets_full[i]
                if t.name in wanted and t.kind == "attribute":
                    ok &= table[:, j] == float(wanted[t.name].value)
            rows = table[ok] if ok.any() else table
            y[:, c.attr_cols] = rows[torch.randint(0, len(rows), (n,), generator=gen)]
            for i in c.attr_cols:
                t = c.targets_full[i]
                if t.name in wanted:
                    y[:, i] = t.scaled(wanted[t.name].value) if t.kind == "continuous" else float(wanted[t.name].value)
        for i in c.rule_cols:
            y[:, i] = 1.0 if c.targets[i] in wanted else 0.0
        return y

    @staticmethod
    def known(c: Constraint, wants: Sequence[Target], n: int) -> Tensor:
        """``(n, K)`` bool: the columns of ``c`` that ``wants`` state (the others are left to the data)."""
        wanted = {t.name for t in wants if t.value is not None}
        row = torch.tensor([name in wanted for name in c.targets], dtype=torch.bool)
        return row.expand(n, len(c.targets)).clone()

    # -- choosing constraints ------------------------------------------------------------------------------
    def _plan(self, wants: Sequence[Target], method: str = DEFAULT_METHOD) -> list[tuple[Constraint, list[Target]]]:
        """Which constraint of ``method`` serves which wanted targets (one constraint if one covers them all)."""
        train = f"`lctk add-constraint {self.run.path}" + ("" if method in (DEFAULT_METHOD, OPTIMIZE) else
                                                            f" --method {method}")
        if not wants:
            names = [c.name for c in self.constraints.all(method)]
            if not names:
                which = f"{method} constraints" if self.constraints.names() else "constraints"
                raise LctkError(f"run {self.run.path} has no {which} yet; train one with {train}` (realism) or "
                                "`--attr NAME`")
            own = f"{REALISM}-{method}"
            return [(self.constraint(REALISM if REALISM in names else own if own in names else names[0]), [])]
        whole = self.constraints.covering([t.name for t in wants], method)
        if whole is not None:
            return [(self.constraint(whole.name), list(wants))]
        plan: dict[str, list[Target]] = {}
        for t in wants:
            c = self.constraints.containing(t.name, method)
            if c is None:
                flag = f"--{'rule' if t.kind == 'rule' else 'attr'} {t.name}"
                others = sorted({o.method for o in self.constraints.all() if t.name in o.targets})
                if others:
                    raise LctkError(f"no {method} constraint of run {self.run.path} covers {t.name!r} (only "
                                    f"{', '.join(others)} ones do); sample with --method {others[0]}, or train one "
                                    f"with {train} {flag}`")
                raise LctkError(f"no constraint of run {self.run.path} covers {t.name!r}; train one with {train} {flag}`")
            plan.setdefault(c.name, []).append(t)
        return [(self.constraint(name), ts) for name, ts in plan.items()]

    # -- latents -------------------------------------------------------------------------------------------
    def latents(self, wants: Sequence[Target], n: int, method: str = DEFAULT_METHOD, seed: int = 0,
                settings: OptimizeSettings | None = None, guidance: float | None = None) -> tuple[Tensor, Tensor]:
        """``(z_prior, z_moved)``, each ``(n, D)``: prior draws and their constrained versions. ``guidance``: the
        guidance weight of methods that take one (diffusion)."""
        method = check_sampling_method(method)
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.backbone.latent_dim, generator=gen)
        plan = self._plan(wants, method)
        if method == OPTIMIZE:
            return z, self.optimize(z, plan, gen, settings or SAMPLE_SETTINGS)
        if len(plan) > 1:
            raise LctkError("no single constraint covers all of " + ", ".join(str(t) for t in wants) +
                            f"; train one with `lctk add-constraint ... --method {method}` for all of them"
                            + (", or use --method optimize to combine them" if method == DEFAULT_METHOD else ""))
        c, ts = plan[0]
        y, known = self.condition(c, ts, n, gen), self.known(c, ts, n)
        with torch.no_grad():
            return z, c.sample(z, y, known, guidance=guidance, generator=gen)

    def rows(self, wants_per_row: Sequence[Sequence[Target]], n: int, method: str = DEFAULT_METHOD, seed: int = 0,
             guidance: float | None = None) -> tuple[Tensor, list[str]]:
        """Decoded outputs, ``n`` per row, one row per list of wanted targets (a sweep's values, or one
        attribute each), and each row's label (``density=12``)."""
        outputs = [self.decode(self.latents(ws, n, method=method, seed=seed + i, guidance=guidance)[1])
                   for i, ws in enumerate(wants_per_row)]
        return torch.cat(outputs), [", ".join(str(t) for t in ws) for ws in wants_per_row]

    def checked(self, wants: Sequence[Target], n: int, method: str = DEFAULT_METHOD, seed: int = 0,
                rounds: int = 10, first: Tensor | None = None, guidance: float | None = None
                ) -> tuple[Tensor, int, Tensor]:
        """``(outputs, draws, ok)``: ``n`` decoded samples for ``wants``, drawing again (with new seeds, up to
        ``rounds`` times) for those that break a wanted rule; ``ok (n,)`` bool tells which satisfy every rule
        (samples still failing after the last round are kept, marked False). ``draws`` is how many samples
        were drawn in all. ``first``: the decoded first draw, if the caller already has it (the same
        ``seed``'s samples)."""
        rules = [parse_rule(t.name, self.run.modality)[1] for t in wants if t.kind == "rule" and t.value]
        outputs = first.clone() if first is not None else \
            self.decode(self.latents(wants, n, method, seed, guidance=guidance)[1])
        draws = n

        def failing() -> Tensor:  # (n,) bool
            if not rules:
                return torch.zeros(n, dtype=torch.bool)
            return ~torch.stack([rule(outputs).bool() for rule in rules], dim=1).all(dim=1)

        bad = failing()
        for r in range(1, rounds + 1):
            if not bad.any():
                break
            fresh = self.decode(self.latents(wants, int(bad.sum()), method, seed + 7919 * r, guidance=guidance)[1])
            outputs[bad] = fresh
            draws += len(fresh)
            bad = failing()
        return outputs, draws, ~bad

    def optimize(self, z0: Tensor, plan, gen: torch.Generator, settings: OptimizeSettings | None = None) -> Tensor:
        """Gradient-based optimisation from ``z0`` against the summed log-probabilities of ``plan``."""
        conds = [(c, self.condition(c, ts, len(z0), gen)) for c, ts in plan]
        sigma_bar = plan[0][0].sigma_bar

        def log_prob(z: Tensor) -> Tensor:
            return sum(c.log_prob(z, y) for c, y in conds)

        return optimize_latents(z0, log_prob, sigma_bar, settings)

    def transform_latents(self, x: Tensor, wants: Sequence[Target], seed: int = 0,
                          settings: OptimizeSettings | None = None, method: str = DEFAULT_METHOD,
                          strength: float | None = None, guidance: float | None = None) -> tuple[Tensor, Tensor]:
        """``(z0, z')``: encodings of ``x`` and their edits that satisfy ``wants``: the smallest moves the critics
        approve (``actor`` or ``optimize``), or the method's own edit (diffusion: noised to ``strength`` and
        denoised under the condition)."""
        if not wants:
            raise LctkError("transform needs at least one --attr or --rule to move towards")
        method = check_sampling_method(method)
        with torch.no_grad():
            z0, _ = self.backbone.encode(x)
        gen = torch.Generator().manual_seed(seed)
        if method in (DEFAULT_METHOD, OPTIMIZE):
            return z0, self.optimize(z0, self._plan(wants, method), gen, settings or TRANSFORM_SETTINGS)
        plan = self._plan(wants, method)
        if len(plan) > 1:
            raise LctkError("no single constraint covers all of " + ", ".join(str(t) for t in wants) +
                            f"; train one with `lctk add-constraint ... --method {method}` for all of them")
        c, ts = plan[0]
        y, known = self.condition(c, ts, len(z0), gen), self.known(c, ts, len(z0))
        with torch.no_grad():
            return z0, c.transform(z0, y, known, strength=strength, guidance=guidance, generator=gen)

    def decode(self, z: Tensor, batch: int = 512) -> Tensor:
        """Outputs for latents ``z (B, D)``, decoded in batches."""
        with torch.no_grad():
            return torch.cat([self.backbone.decode(z[i:i + batch]) for i in range(0, len(z), batch)])

    def close(self) -> None:
        """Close the latent store if it was opened."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "Sampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
