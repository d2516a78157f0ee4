"""The lctk half of the import examples: import a model folder, encode, constrain the 10 Fashion-MNIST classes,
write samples, evaluate. Each step is the `lctk` command a user would type (printed before it runs); a step
already done is skipped, so re-running an example continues where it stopped."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path


def lctk(*args) -> None:
    """Run ``lctk ARGS`` (printed first); stop the example if it fails."""
    command = ["lctk", *map(str, args)]
    print("$", shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def constrain(model: Path, run: Path, fmt: str) -> None:
    """import-backbone, encode, add-constraint --all-attributes, samples (actor, optimize, prior), evaluate."""
    if not (run / "run.json").is_file():
        lctk("import-backbone", model, "--format", fmt, "--data", "fashion-mnist", "--out", run)
    lctk("encode", run)
    if not (run / "constraints" / "classes").is_dir():
        lctk("add-constraint", run, "--all-attributes", "--name", "classes")
    samples = run / "samples"
    lctk("sample", run, "--each", "-n", "10", "--out", samples / "classes-actor.png")
    lctk("sample", run, "--each", "-n", "10", "--method", "optimize", "--out", samples / "classes-optimize.png")
    lctk("sample", run, "--prior", "-n", "64", "--out", samples / "prior.png")
    lctk("transform", run, "--index", "60000", "--index", "60001", "--index", "60002", "--index", "60003",
         "--attr", "sandal", "--out", samples / "to-sandal.png")
    lctk("evaluate", run)
    print(f"pictures: {run}/reconstructions.png {samples}/*.png; metrics: {run}/metrics.json")
