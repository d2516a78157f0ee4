"""Streaming constraint training from a latent store: the source's batches, its spread, bounded blocks."""

from __future__ import annotations

import torch

from lctk.engine.config import ConstraintConfig
from lctk.engine.constraint import LatentConstraint
from lctk.engine.targets import Target
from lctk.engine.training import ConstraintTrainer, LatentSource, StreamingLatentSource
from lctk.latents import CHUNK_ROWS, LatentStore, LatentWriter
from lctk.util.progress import Progress


def _store(path, rows=3000, dim=6):
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(rows, dim, generator=gen) * torch.arange(1, dim + 1)
    sigma = 0.1 + torch.rand(rows, dim, generator=gen)
    attrs = torch.rand(rows, 2, generator=gen) < 0.3
    split = (torch.arange(rows) % 10 == 0).to(torch.int8)
    with LatentWriter(path, rows, dim, ["a", "b"], "fp") as w:
        for lo in range(0, rows, 1000):
            w.write(mu[lo:lo + 1000], sigma[lo:lo + 1000], attrs[lo:lo + 1000], split[lo:lo + 1000])
    return mu, attrs, split


def test_streaming_source_batches_and_spread(tmp_path):
    mu, attrs, split = _store(tmp_path / "latents.h5")
    with LatentStore.open(tmp_path / "latents.h5") as store:
        source = StreamingLatentSource(store, [1], seed=0, block_batch=64)
        try:
            assert len(source) == int((split == 0).sum())
            assert torch.allclose(source.std, LatentSource(mu[split == 0], mu[split == 0], attrs[split == 0]).std, atol=1e-4)
            gen = torch.Generator().manual_seed(1)
            z, labels = source.batch(100, gen)  # not a multiple of the stream's batch: rows carry over
            assert z.shape == (100, 6) and labels.shape == (100, 1) and labels.dtype == torch.float32
            assert source.labels_like(7, gen).shape == (7, 1)
            seen = torch.cat([source.labels_like(500, gen) for _ in range(10)])
            assert abs(seen.mean().item() - attrs[split == 0][:, 1].float().mean().item()) < 0.05
        finally:
            source.close()


def test_training_from_a_stream_changes_the_weights(tmp_path):
    _store(tmp_path / "latents.h5")
    config = ConstraintConfig(width=16, depth=1, embed_dim=4, batch_size=32, steps=3, classifier_steps=3,
                              checkpoint_every=10**6)
    with LatentStore.open(tmp_path / "latents.h5") as store:
        source = StreamingLatentSource(store, [0], block_batch=config.batch_size)
        model = LatentConstraint("a", [Target("a", "attribute", True)], store.latent_dim, config, store.sigma_bar(), "fp")
        before = {k: v.clone() for k, v in model.state_dict().items()}
        ConstraintTrainer(model, source, config, tmp_path / "ck.safetensors", progress=Progress(enabled=False)).train()
        source.close()
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_stream_blocks_stay_small_for_wide_latents(tmp_path, monkeypatch):
    import lctk.latents as latents

    monkeypatch.setattr(latents, "STREAM_BLOCK_BYTES", 2 * 4 * 6 * CHUNK_ROWS)  # one chunk of this store's rows
    every, _, _ = _store(tmp_path / "latents.h5", rows=3 * CHUNK_ROWS)
    with LatentStore.open(tmp_path / "latents.h5") as store:
        stream = store.stream(CHUNK_ROWS, "all", buffer_blocks=1)
        mu, _, _ = next(stream)  # blocks of one chunk: the first batch is one whole chunk, shuffled
        stream.close()
    row = int((every[:, 0] == mu[0, 0]).nonzero()[0])
    chunk = every[row // CHUNK_ROWS * CHUNK_ROWS:(row // CHUNK_ROWS + 1) * CHUNK_ROWS]
    assert torch.equal(mu[:, 0].sort().values, chunk[:, 0].sort().values)


def test_add_constraint_streams_past_the_memory_budget_and_resumes(tiny_run, run_cli, tmp_path, monkeypatch):
    """Through the CLI: a tiny budget streams (a larger one loads), and an interrupted streamed run resumes to
    weights that depend only on the step it resumed from (two interrupted copies end bit-identical)."""
    import json
    import shutil

    from tests.conftest import interrupt_actor_step

    args = ["--attr", "3", "--steps", "20", "--set", "classifier_steps=10", "--set", "width=16", "--set", "depth=1",
            "--set", "batch_size=32", "--set", "checkpoint_every=5"]
    copies = [tiny_run] + [shutil.copytree(tiny_run, tmp_path / f"copy{i}") for i in (1, 2)]

    loaded = run_cli("add-constraint", copies[0], *args)
    assert loaded.exit_code == 0 and "streaming" not in loaded.stderr, loaded
    metrics = json.loads((copies[0] / "constraints" / "3" / "metrics.json").read_text())
    assert metrics["training"]["latents"] == "memory"

    for run in copies[1:]:
        interrupt_actor_step(monkeypatch, at=8)
        stopped = run_cli("add-constraint", run, *args, "--memory-budget", "1KiB")
        assert stopped.exit_code != 0 and "interrupted" in stopped.stderr, stopped
        assert (run / "constraints" / ".3.partial" / "checkpoint.safetensors").is_file()
        monkeypatch.undo()
        monkeypatch.setenv("LCTK_MEMORY_BUDGET", "1KiB")  # the same budget, set the other way
        resumed = run_cli("add-constraint", run, *args)
        assert resumed.exit_code == 0 and "streaming latents" in resumed.stderr, resumed
        metrics = json.loads((run / "constraints" / "3" / "metrics.json").read_text())
        assert metrics["training"] == {**metrics["training"], "latents": "stream", "resumed": True, "steps": 30}
        monkeypatch.undo()
    weights = [(run / "constraints" / "3" / "weights.safetensors").read_bytes() for run in copies]
    assert weights[1] == weights[2] != weights[0]

    bad = run_cli("add-constraint", copies[0], *args, "--force", "--memory-budget", "lots")
    assert bad.exit_code != 0 and bad.stderr.strip().splitlines() == [
        "error: --memory-budget 'lots' is not a size; use e.g. 512MiB, 2GiB or a number of bytes"], bad
