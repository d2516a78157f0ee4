"""Soak test: kill lctk with SIGKILL at random moments, resume every time, and check that nothing is lost.

For each of ``train-vae``, ``encode`` and ``add-constraint`` this script

1. runs the command once without interruption (the reference) and times it;
2. runs it again in a fresh folder and kills it with SIGKILL after a random delay (half of the kills at a
   uniformly random moment of the process's life, half at a random moment after it first wrote a file, so
   that many land while it trains and writes), then resumes it the way a user would (``train-vae --resume``,
   or the same ``encode`` / ``add-constraint`` command again) and kills that too, until ``--kills`` kills
   have been made; whenever a resumed run gets to its end, its folder starts over;
3. after every kill checks every file in the run folder: JSON parses, safetensors load, the latent store
   opens, PNGs verify (temporary ``.NAME.*.tmp`` files of killed writers are counted, never read);
4. after every completed run compares its final weights (or latents) with the reference, bit for bit, and
   checks that no temporary file is left. A run during which lctk's source files changed (someone editing
   the working tree) is counted as void, not compared, and the reference is made again.

It prints a table and writes the figures as JSON. Everything runs on the CPU with one thread per process::

    python benchmarks/soak.py                      # 20 kills each, digits data made with scikit-learn
    python benchmarks/soak.py --kills 5 --seed 3   # a quick look

The data are scikit-learn's 8x8 digits as IDX files (or ``--data-dir`` with any four MNIST-format files).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.killing import (changed, check_folder, checkpoint_step, kill_after, run_to_end,  # noqa: E402
                           same_weights)

BACKBONE = ["--latent-dim", "8", "--set", "width=16", "--set", "hidden=128", "--batch-size", "64", "--lr", "3e-3"]
CONSTRAINT = ["--attr", "3", "--steps", "300", "--set", "classifier_steps=100", "--set", "width=64",
              "--set", "depth=2", "--set", "batch_size=64", "--set", "checkpoint_every=5"]


@dataclass
class Figures:
    """What happened to one command."""

    command: str
    reference_seconds: float = 0.0
    kills: int = 0
    launches: int = 0
    resumes: int = 0
    resume_failures: int = 0
    completed_runs: int = 0
    mismatches: int = 0
    void_runs: int = 0
    corrupt_files: int = 0
    temp_files_seen_after_kills: int = 0
    temp_files_left_at_end: int = 0
    kill_phases: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


@dataclass
class Workload:
    """How to start, resume, watch and judge one command."""

    name: str
    folder_setup: Callable[[Path], None]          # make a fresh run folder at the path
    start: Callable[[Path], list]                 # the first command for a fresh folder
    resume: Callable[[Path], list]                # the command after a kill
    done: Callable[[Path], bool]                  # nothing left to resume (e.g. the result is installed)
    watch: Callable[[Path], Path]                 # a file whose change means "it is working now"
    phase: Callable[[Path], str]                  # where a killed run stood
    result: Callable[[Path], Path]                # the file compared with the reference
    compare: Callable[[Path, Path], bool] = same_weights


def soak(work: Workload, reference: Path, kills: int, rng: random.Random, root: Path, log) -> Figures:
    """Kill ``work`` ``kills`` times, resuming each time; compare every finished run with ``reference``."""
    figures = Figures(work.name)

    def make_reference() -> str:
        stamp = code_stamp()
        started = time.monotonic()
        work.folder_setup(reference)
        code, err = run_to_end(work.start(reference))
        if code != 0:
            raise SystemExit(f"reference {work.name} failed:\n{err}")
        figures.reference_seconds = round(time.monotonic() - started, 2)
        return stamp

    reference_stamp = make_reference()
    phases: Counter = Counter()
    attempt = 0
    while figures.kills < kills:
        attempt += 1
        run = root / f"{work.name}-{attempt}"
        work.folder_setup(run)
        args = work.start(run)
        run_stamp = code_stamp()
        while True:
            figures.launches += 1
            before = stamps(run)
            if figures.kills < kills:
                after_ready = rng.random() < 0.5
                delay = rng.uniform(0.0, figures.reference_seconds * (0.6 if after_ready else 1.0))
                sent, code, err = kill_after(args, delay, ready=changed(work.watch(run)) if after_ready else None)
            else:  # enough kills: let the last resume finish
                sent, (code, err) = False, run_to_end(args)
            if sent and code != 0:
                figures.kills += 1
                phase = work.phase(run) if stamps(run) != before else "before it wrote anything"
                phases[phase] += 1
                problems, temps = check_folder(run)
                figures.corrupt_files += len(problems)
                figures.temp_files_seen_after_kills += len(temps)
                figures.problems += [f"kill {figures.kills} ({phase}): {p}" for p in problems]
                log(f"{work.name}: kill {figures.kills:2d} after {delay:5.2f} s"
                    f"{' of work' if after_ready else ''}: {phase}; {len(problems)} bad files, {len(temps)} temp files")
                if work.done(run):
                    break
                args = work.resume(run)
                figures.resumes += 1
                continue
            if code != 0:  # ended on its own, but failed: a resume that did not succeed
                figures.resume_failures += 1
                figures.problems.append(f"{' '.join(map(str, args))} failed: {err.strip().splitlines()[-1:]}")
                log(f"{work.name}: FAILED: {err.strip().splitlines()[-1:]}")
            break
        problems, temps = check_folder(run)
        figures.corrupt_files += len(problems)
        figures.temp_files_left_at_end += len(temps)
        figures.problems += [f"final ({run.name}): {p}" for p in problems] + [f"left: {t}" for t in temps]
        if code_stamp() != run_stamp or run_stamp != reference_stamp:
            # someone changed lctk's source while this ran: the comparison says nothing; start afresh
            figures.void_runs += 1
            log(f"{work.name}: run {attempt} void: lctk's source files changed; making a new reference")
            reference_stamp = make_reference()
        elif work.result(run).is_file():
            figures.completed_runs += 1
            same = work.compare(work.result(reference), work.result(run))
            figures.mismatches += not same
            log(f"{work.name}: run {attempt} finished; result {'identical to' if same else 'DIFFERS from'} the reference")
        else:
            figures.problems.append(f"run {attempt} ended without {work.result(run).name}")
        shutil.rmtree(run, ignore_errors=True)
    figures.kill_phases = dict(sorted(phases.items()))
    return figures


def code_stamp() -> tuple:
    """Modification times and sizes of lctk's and its plugins' source files (to notice edits during a soak)."""
    files = sorted([*(REPO / "lctk").rglob("*.py"), *(REPO / "plugins").glob("*/lctk_*/*.py")])
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files if p.is_file())


def stamps(folder: Path) -> dict:
    """``relative path -> (modification time, size)`` of every file under ``folder``."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in folder.rglob("*") if p.is_file()}


# -- the three workloads --------------------------------------------------------------------------------------


def train_vae_work(data: Path, epochs: int) -> Workload:
    def start(run):
        return ["train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", data, "--out", run, *BACKBONE,
                "--epochs", str(epochs), "--checkpoint-every", "2", "--device", "cpu"]

    def resume(run):
        return ["train-vae", "--out", run, "--resume"] if (run / "run.json").is_file() else start(run)

    def phase(run):
        if not (run / "run.json").is_file():
            return "starting (no run.json yet)"
        info = json.loads((run / "run.json").read_text())
        if info.get("status") == "trained":
            return "writing pictures" if not (run / "prior-samples.png").is_file() else "finished, exiting"
        step = checkpoint_step(run / "checkpoint.safetensors")
        if step is None:
            return "training, before the first checkpoint"
        total = epochs * (1500 // 64)
        return "training" if step < total else "writing the backbone"

    def done(run):  # everything the command writes is there: a user would not resume
        try:
            finished = json.loads((run / "run.json").read_text()).get("status") == "trained"
        except (OSError, ValueError):
            return False
        return finished and (run / "reconstructions.png").is_file() and (run / "prior-samples.png").is_file()

    return Workload("train-vae", lambda run: shutil.rmtree(run, ignore_errors=True), start, resume, done,
                    lambda run: run / "checkpoint.safetensors", phase, lambda run: run / "backbone.safetensors")


def same_latents(a: Path, b: Path) -> bool:
    import h5py
    import numpy as np

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        return all(np.array_equal(fa[k][...], fb[k][...]) for k in ("mu", "sigma", "attributes", "split", "sigma_sum")) \
            and fa.attrs["fingerprint"] == fb.attrs["fingerprint"]


def encode_work(trained: Path) -> Workload:
    def setup(run):
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(trained, run, ignore=shutil.ignore_patterns("latents.h5*", "constraints"))

    def command(run):
        return ["encode", run, "--batch-size", "4"]

    def phase(run):
        if (run / "latents.h5").is_file():
            return "finished, exiting"
        return "encoding" if (run / "latents.h5.partial").is_file() else "starting"

    return Workload("encode", setup, command, command, lambda run: (run / "latents.h5").is_file(),
                    lambda run: run / "latents.h5.partial", phase, lambda run: run / "latents.h5", same_latents)


def add_constraint_work(encoded: Path) -> Workload:
    def setup(run):
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(encoded, run, ignore=shutil.ignore_patterns("constraints"))

    def command(run):
        return ["add-constraint", run, *CONSTRAINT]

    def phase(run):
        if (run / "constraints" / "3").is_dir():
            return "installed, exiting"
        partial = run / "constraints" / ".3.partial"
        if not partial.is_dir():
            return "starting"
        if (partial / "weights.safetensors").is_file():
            return "writing the constraint"
        step = checkpoint_step(partial / "checkpoint.safetensors")
        return "training, before the first checkpoint" if step is None else "training"

    return Workload("add-constraint", setup, command, command, lambda run: (run / "constraints" / "3").is_dir(),
                    lambda run: run / "constraints" / ".3.partial" / "checkpoint.safetensors", phase,
                    lambda run: run / "constraints" / "3" / "weights.safetensors")


# -- main -----------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs per command (default 20)")
    parser.add_argument("--encode-kills", type=int, default=10, help="SIGKILLs of encode (default 10; 0 to skip)")
    parser.add_argument("--epochs", type=int, default=30, help="train-vae epochs of 23 steps (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, help="four MNIST-format IDX files [digits from scikit-learn]")
    parser.add_argument("--work", type=Path, help="folder for the runs [a temporary folder, deleted]")
    parser.add_argument("--json", type=Path, help="write the figures here [WORK/soak.json, printed]")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    temporary = args.work is None
    root = Path(tempfile.mkdtemp(prefix="lctk-soak-")) if temporary else args.work
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {message}", flush=True)

    try:
        data = args.data_dir
        if data is None:
            from tests.conftest import make_digits_idx

            data = make_digits_idx(root / "digits")
        results = []
        train = train_vae_work(data, args.epochs)
        results.append(soak(train, root / "reference-train", args.kills, rng, root, log))
        trained = root / "reference-train"
        if args.encode_kills:
            results.append(soak(encode_work(trained), root / "reference-encode", args.encode_kills, rng, root, log))
            encoded = root / "reference-encode"
        else:
            code, err = run_to_end(["encode", trained])
            if code:
                raise SystemExit(err)
            encoded = trained
        results.append(soak(add_constraint_work(encoded), root / "reference-constraint", args.kills, rng, root, log))

        report = {"command": " ".join(["python", "benchmarks/soak.py", *(argv if argv is not None else sys.argv[1:])]),
                  "seed": args.seed, "seconds": round(time.monotonic() - started, 1),
                  "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
                  "results": [asdict(r) for r in results]}
        print()
        header = f"{'command':<15}{'kills':>6}{'resumes':>9}{'failed':>8}{'runs':>6}{'void':>6}{'mismatch':>10}" \
                 f"{'corrupt':>9}{'tmp seen':>10}{'tmp left':>10}{'ref s':>7}"
        print(header)
        print("-" * len(header))
        for r in results:
            print(f"{r.command:<15}{r.kills:>6}{r.resumes:>9}{r.resume_failures:>8}{r.completed_runs:>6}{r.void_runs:>6}"
                  f"{r.mismatches:>10}{r.corrupt_files:>9}{r.temp_files_seen_after_kills:>10}"
                  f"{r.temp_files_left_at_end:>10}{r.reference_seconds:>7.1f}")
        print()
        for r in results:
            print(f"{r.command} kills by phase: " + ", ".join(f"{k}: {v}" for k, v in r.kill_phases.items()))
            for problem in r.problems:
                print(f"  PROBLEM {problem}")
        path = args.json or root / "soak.json"
        if temporary and args.json is None:
            path = Path.cwd() / "soak.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nfigures written to {path} ({report['seconds']} s in all)")
        bad = sum(r.resume_failures + r.mismatches + r.corrupt_files + r.temp_files_left_at_end for r in results)
        return 1 if bad else 0
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
