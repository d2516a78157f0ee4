"""``lctk add-constraint``, ``sample``, ``transform`` and ``evaluate``: the constraints engine, through
`lctk.api` (these functions only parse flags and report)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lctk.cli.options import parse_pairs
from lctk.util.progress import console

RUN = click.argument("run", type=click.Path(path_type=Path))
ATTR = click.option("--attr", "attrs", multiple=True, metavar="NAME",
                    help="Attribute to constrain (repeatable); negate with no-NAME or NAME=0; a continuous one "
                         "takes a value (density=12) or, in sample, a sweep (density=4..16). The names of a "
                         "dataset: `lctk plugins --details`.")
RULE = click.option("--rule", "rules", multiple=True, metavar="SPEC",
                    help="Zero-shot rule on decoded outputs, e.g. key=C or density>=8 (repeatable); the rules a "
                         "modality has: `lctk plugins --details`.")


@click.command("add-constraint")
@RUN
@ATTR
@RULE
@click.option("--all-attributes", is_flag=True, help="Constrain every attribute of the run's data.")
@click.option("--method", default="actor", show_default=True, metavar="NAME",
              help="Constraint method: actor (critics and an actor), diffusion (a conditional denoiser), or one a "
                   "plugin registers (`lctk plugins`).")
@click.option("--name", help="Constraint name [the targets joined by +, or realism; suffixed -METHOD for methods "
                             "other than actor, e.g. sandal-diffusion].")
@click.option("--lambda-dist", type=click.FloatRange(min=0), help="Weight of the actor's distance penalty [0.001].")
@click.option("--steps", type=click.IntRange(min=1), help="Training steps [actor: 1500 actor steps; diffusion: see "
                                                          "docs/constraints.md].")
@click.option("--set", "settings_", multiple=True, metavar="KEY=VALUE",
              help="Any other setting of the method (actor: width, depth, critic_steps, classifier_steps, gp_weight, "
                   "lr, ...; diffusion: width, depth, batch_size, lr, cond_drop, ...).")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--force", is_flag=True, help="Retrain a constraint that already exists.")
@click.option("--memory-budget", metavar="SIZE", help="Stream latents from the store when its mu and sigma take more "
              "than SIZE, e.g. 512MiB [LCTK_MEMORY_BUDGET, else 1GiB].")
def add_constraint_cmd(run, attrs, rules, all_attributes, method, name, lambda_dist, steps, settings_, seed, force,
                       memory_budget):
    """Train a constraint in RUN's latent space for attributes and/or rules (no attribute: realism only), by
    critics and an actor (--method actor) or a conditional denoiser (--method diffusion).

    The backbone is never changed; an interrupted command resumes when run again."""
    from lctk import api

    overrides = parse_pairs(settings_, "--set")
    for key, value in (("lambda_dist", lambda_dist), ("steps", steps), ("seed", seed)):
        if value is not None:
            overrides[key] = value
    folder = api.add_constraint(run, attrs, rules, all_attributes=all_attributes, name=name, overrides=overrides,
                                force=force, memory_budget=memory_budget, method=method)
    metrics = json.loads((folder / "metrics.json").read_text())
    shown = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    console.print(f"constraint {folder.name} trained in {folder}: " + ", ".join(f"{k} {v}" for k, v in shown.items()),
                  highlight=False)


@click.command("sample")
@RUN
@ATTR
@RULE
@click.option("-n", "count", type=click.IntRange(min=1), default=64, show_default=True,
              help="Number of samples (per row with --each).")
@click.option("--method", default="actor", show_default=True, metavar="NAME",
              help="actor (the actor of a covering constraint), optimize (gradient ascent on the critics; combines "
                   "constraints), diffusion (a diffusion constraint's denoiser), or a plugin's method.")
@click.option("--guidance", type=float, metavar="W",
              help="Guidance weight of --method diffusion: 0 unconditional, 1 conditional, more is stronger "
                   "[the constraint's sample_guidance].")
@click.option("--each", is_flag=True, help="One row per attribute (the --attr ones, else every constrained one).")
@click.option("--prior", is_flag=True, help="Raw prior samples (no constraint), for comparison.")
@click.option("--check", is_flag=True,
              help="Decode, check every --rule exactly, and draw again for samples that break one (up to 10 rounds); "
                   "samples that still break one are left out, and said so.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Output file or folder [RUN/samples/LABEL.SUFFIX].")
def sample_cmd(run, attrs, rules, count, method, guidance, each, prior, check, seed, out):
    """Write samples that satisfy the given attributes/rules (none: realism-constrained samples)."""
    from lctk import api

    drawn = api.write_samples(run, attrs, rules, count, method, seed, prior=prior, each=each, check=check, out=out,
                              guidance=guidance)
    if check:
        console.print(f"rules checked: {drawn.draws} samples drawn for {count}", highlight=False)
        if drawn.failing:
            console.print(f"warning: {drawn.failing} of {count} samples still broke a rule after 10 redraws and were "
                          f"left out; wrote the {len(drawn.outputs)} that satisfy every rule (train the constraint "
                          "longer or relax the rule)", highlight=False, soft_wrap=True)
    files = drawn.files
    console.print(f"wrote {len(drawn.outputs)} samples: " + ", ".join(str(f) for f in files[:3]) +
                  (f" (+{len(files) - 3} more)" if len(files) > 3 else ""), highlight=False)


@click.command("transform")
@RUN
@click.option("--input", "input_", type=click.Path(path_type=Path), help="A file to edit (e.g. a PNG).")
@click.option("--index", "indices", type=click.IntRange(min=0), multiple=True,
              help="Index of a dataset example to edit, counting training examples first (repeatable).")
@click.option("--test-index", "test_indices", type=click.IntRange(min=0), multiple=True,
              help="Index of a test example to edit: 0 is the first test example (repeatable).")
@ATTR
@RULE
@click.option("--method", default="actor", show_default=True, metavar="NAME",
              help="actor or optimize (the smallest move the actor constraints' critics approve), or diffusion "
                   "(noise the encoding part-way, denoise it under the condition).")
@click.option("--steps", type=click.IntRange(min=1), help="Optimisation steps of --method actor [300].")
@click.option("--w-dist", type=click.FloatRange(min=0), help="Weight of the distance to the input [0.003].")
@click.option("--strength", type=float, metavar="S",
              help="--method diffusion: how far the encoding is noised, above 0 and at most 1 [the constraint's "
                   "edit_strength].")
@click.option("--guidance", type=float, metavar="W", help="--method diffusion: guidance weight [sample_guidance].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Output file or folder [RUN/transforms/TARGETS.SUFFIX].")
def transform_cmd(run, input_, indices, test_indices, attrs, rules, method, steps, w_dist, strength, guidance, seed,
                  out):
    """Identity-preserving edit: the smallest latent move that gives the input the wanted attributes."""
    from lctk import api
    from lctk.engine.optimize import TRANSFORM_SETTINGS, OptimizeSettings

    defaults = TRANSFORM_SETTINGS
    settings = OptimizeSettings(steps=steps or defaults.steps, lr=defaults.lr,
                                w_dist=defaults.w_dist if w_dist is None else w_dist)
    edits = api.write_transform(run, indices=indices, test_indices=test_indices, input=input_, attrs=attrs,
                                rules=rules, settings=settings, seed=seed, out=out, method=method, strength=strength,
                                guidance=guidance)
    console.print(f"wrote before/after: {', '.join(str(f) for f in edits.files[:3])}", highlight=False)


@click.command("evaluate")
@RUN
@click.option("-n", "count", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Samples per measured set.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--guidance", type=float, metavar="W",
              help="Guidance weight of diffusion constraints [each one's sample_guidance].")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON instead of tables.")
def evaluate_cmd(run, count, seed, guidance, as_json):
    """Independent measures of RUN's samples (see the modality's evaluator); prints tables on stdout and
    writes RUN/metrics.json."""
    from lctk import api
    from lctk.engine.report import print_report

    metrics = api.evaluate(run, n=count, seed=seed, guidance=guidance)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        print_report(metrics)


COMMANDS = [add_constraint_cmd, sample_cmd, transform_cmd, evaluate_cmd]
