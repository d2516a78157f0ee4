"""``lctk add-constraint``, ``sample``, ``transform`` and ``evaluate``: the constraints engine."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lctk.cli.options import parse_pairs
from lctk.outputs import check_count, check_out, check_writable, default_name
from lctk.progress import console

RUN = click.argument("run", type=click.Path(path_type=Path))
ATTR = click.option("--attr", "attrs", multiple=True, metavar="NAME",
                    help="Attribute to constrain (repeatable); negate with no-NAME or NAME=0; a continuous one "
                         "takes a value (density=12) or, in sample, a sweep (density=4..16).")
RULE = click.option("--rule", "rules", multiple=True, metavar="SPEC",
                    help="Zero-shot rule on decoded outputs, e.g. key=C or density>=8 (repeatable).")


@click.command("add-constraint")
@RUN
@ATTR
@RULE
@click.option("--all-attributes", is_flag=True, help="Constrain every attribute of the run's data.")
@click.option("--name", help="Constraint name [the targets joined by +, or realism].")
@click.option("--lambda-dist", type=click.FloatRange(min=0), help="Weight of the distance penalty [0.001].")
@click.option("--steps", type=click.IntRange(min=1), help="Actor steps.")
@click.option("--set", "settings_", multiple=True, metavar="KEY=VALUE",
              help="Any other training setting (width, depth, critic_steps, gp_weight, lr, ...).")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--force", is_flag=True, help="Retrain a constraint that already exists.")
@click.option("--memory-budget", metavar="SIZE", help="Stream latents from the store when its mu and sigma take more "
              "than SIZE, e.g. 512MiB [LCTK_MEMORY_BUDGET, else 1GiB].")
def add_constraint_cmd(run, attrs, rules, all_attributes, name, lambda_dist, steps, settings_, seed, force, memory_budget):
    """Train critics and an actor in RUN's latent space for attributes and/or rules (no attribute: realism only).

    The backbone is never changed; an interrupted command resumes when run again."""
    from lctk.engine.add import add_constraint
    from lctk.run import RunDir

    run_dir = RunDir(run)
    if all_attributes:
        attrs = tuple(attrs) + tuple(a for a in run_dir.read()["dataset"].get("attribute_names", []) if a not in attrs)
    overrides = parse_pairs(settings_, "--set")
    for key, value in (("lambda_dist", lambda_dist), ("steps", steps), ("seed", seed)):
        if value is not None:
            overrides[key] = value
    folder = add_constraint(run_dir, attrs, rules, name=name, overrides=overrides, force=force,
                            memory_budget=memory_budget)
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
@click.option("--method", type=click.Choice(["actor", "optimize"]), default="actor", show_default=True)
@click.option("--each", is_flag=True, help="One row per attribute (the --attr ones, else every constrained one).")
@click.option("--prior", is_flag=True, help="Raw prior samples (no constraint), for comparison.")
@click.option("--check", is_flag=True,
              help="Decode, check every --rule exactly, and draw again for samples that break one (up to 10 rounds).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Output file or folder [RUN/samples/...].")
def sample_cmd(run, attrs, rules, count, method, each, prior, check, seed, out):
    """Write samples that satisfy the given attributes/rules (none: realism-constrained samples)."""
    import torch

    from lctk.engine.constraint_set import folder_name
    from lctk.engine.sampling import Sampler
    from lctk.engine.targets import Target
    from lctk.errors import LctkError
    from lctk.plugins import get_registries

    sampler = Sampler(run)
    try:
        writer = get_registries().writer(sampler.run.modality(sampler.info))
        check_count(count, writer)
        if out is not None:
            check_out(out, writer.default_suffix)
        else:
            check_writable(sampler.run.path / "samples", f"run folder {sampler.run.path}")
        labels = None
        sweep = None if prior else sampler.sweep(attrs, rules)
        if check and (prior or each or sweep):
            raise LctkError("--check redraws --rule samples; it does not go with --prior, --each or a sweep")
        if prior:
            if attrs or rules or each:
                raise LctkError("--prior draws unconstrained samples; drop --attr/--rule/--each or --prior")
            outputs = sampler.decode(sampler.backbone.prior_sample(count, torch.Generator().manual_seed(seed)))
            label = "prior"
        elif sweep:
            if each:
                raise LctkError("a sweep already gives one row per value; drop --each")
            check_count(count * len(sweep), writer)
            outputs, labels = sampler.rows(sweep, count, method=method, seed=seed)
            label = folder_name(default_name([*attrs, *rules], "realism").replace("..", "-to-"))
        elif each:
            wants = sampler.wants(attrs, rules) or [Target(a, "attribute") for a in sampler.constrained_attributes()]
            if not wants:
                raise LctkError(f"run {sampler.run.path} has no attribute constraints for --each; add one first")
            check_count(count * len(wants), writer)
            outputs, labels = sampler.rows([[t] for t in wants], count, method=method, seed=seed)
            label = "each"
        elif check:
            if not rules:
                raise LctkError("--check redraws samples that break a --rule; give at least one --rule")
            outputs, draws = sampler.checked(sampler.wants(attrs, rules), count, method=method, seed=seed)
            console.print(f"rules checked: {draws} samples drawn for {count}", highlight=False)
            label = folder_name(default_name([*attrs, *rules], "realism")) + "-checked"
        else:
            outputs = sampler.decode(sampler.latents(sampler.wants(attrs, rules), count, method=method, seed=seed)[1])
            label = folder_name(default_name([*attrs, *rules], "realism")) if attrs or rules else "realism"
        name = f"{label}-{method}" if not prior else label
        out = out or sampler.run.path / "samples" / f"{name}{writer.default_suffix}"
        files = writer.write_batch(outputs, out, columns=count if labels else None, labels=labels)
    finally:
        sampler.close()
    console.print(f"wrote {len(outputs)} samples: " + ", ".join(str(f) for f in files[:3]) +
                  (f" (+{len(files) - 3} more)" if len(files) > 3 else ""), highlight=False)


@click.command("transform")
@RUN
@click.option("--input", "input_", type=click.Path(path_type=Path), help="A file to edit (e.g. a PNG).")
@click.option("--index", "indices", type=click.IntRange(min=0), multiple=True,
              help="Index of a dataset example to edit (repeatable).")
@ATTR
@RULE
@click.option("--steps", type=click.IntRange(min=1), help="Optimisation steps [300].")
@click.option("--w-dist", type=click.FloatRange(min=0), help="Weight of the distance to the input [0.003].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output file or folder.")
def transform_cmd(run, input_, indices, attrs, rules, steps, w_dist, seed, out):
    """Identity-preserving edit: the smallest latent move that gives the input the wanted attributes."""
    from lctk.engine.optimize import TRANSFORM_SETTINGS, OptimizeSettings
    from lctk.engine.sampling import Sampler
    from lctk.errors import LctkError
    from lctk.plugins import get_registries
    import torch

    if bool(input_) == bool(indices):
        raise LctkError("give exactly one of --input FILE or --index N")
    sampler = Sampler(run)
    try:
        writer = get_registries().writer(sampler.run.modality(sampler.info))
        check_out(out, writer.default_suffix)
        wants = sampler.wants(attrs, rules)
        if input_:
            x = writer.read_input(input_, sampler.info["dataset"]["spec"])
        else:
            dataset = sampler.run.load_dataset(sampler.info)
            bad = [i for i in indices if i >= len(dataset)]
            if bad:
                raise LctkError(f"--index {bad[0]} is out of range; the dataset has {len(dataset)} examples")
            x = dataset.fetch(torch.tensor(indices))
        defaults = TRANSFORM_SETTINGS
        settings = OptimizeSettings(steps=steps or defaults.steps, lr=defaults.lr,
                                    w_dist=defaults.w_dist if w_dist is None else w_dist)
        z0, z1 = sampler.transform_latents(x, wants, seed=seed, settings=settings)
        files = writer.write_pairs(sampler.decode(z0), sampler.decode(z1), out)
    finally:
        sampler.close()
    console.print(f"wrote before/after: {', '.join(str(f) for f in files[:3])}", highlight=False)


@click.command("evaluate")
@RUN
@click.option("-n", "count", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Samples per measured set.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON instead of tables.")
def evaluate_cmd(run, count, seed, as_json):
    """Independent measures of RUN's samples (see the modality's evaluator); writes RUN/metrics.json."""
    from lctk.engine.evaluate import evaluate_run, print_report

    metrics = evaluate_run(run, n=count, seed=seed)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        print_report(metrics)


COMMANDS = [add_constraint_cmd, sample_cmd, transform_cmd, evaluate_cmd]
