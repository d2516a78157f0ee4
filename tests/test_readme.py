"""The README opens with the two set-up commands; CI runs exactly the second one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_opens_with_main_job_and_test_commands():
    first, second = _readme_commands()[:2]
    assert "pip install -r requirements.txt" in first and "examples/fashion_mnist.sh" in first
    assert "pip install -r requirements-dev.txt" in second and "pytest" in second


def test_ci_runs_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert _readme_commands()[1].strip() in ci_lines


def test_requirements_pin_the_cpu_torch_wheel():
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text().split()
