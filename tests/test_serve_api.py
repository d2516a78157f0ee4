"""`lctk serve`: every endpoint of the explorer through Starlette's test client, bad parameters, oversized
uploads, path tricks, concurrent requests, and a run folder left byte-identical by a session of requests."""

from __future__ import annotations

import base64
import importlib.util
import io
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from tests.test_engine_cli import TINY, tree_digests

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from lctk.serve.app import create_app  # noqa: E402
from lctk.serve.session import MAX_UPLOAD  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served_run(tmp_path_factory, tiny_run_template):
    """A tiny run with a constraint on two digit classes, shared read-only by the module."""
    from click.testing import CliRunner

    from lctk.cli import cli

    run = tmp_path_factory.mktemp("served") / "run"
    shutil.copytree(tiny_run_template, run)
    result = CliRunner().invoke(cli, ["add-constraint", str(run), "--attr", "3", "--attr", "7", *TINY])
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture(scope="module")
def client(served_run):
    with TestClient(create_app(served_run), raise_server_exceptions=False) as c:
        yield c


def png_size(media: dict) -> tuple[int, int]:
    assert media["mime"] == "image/png"
    with Image.open(io.BytesIO(base64.b64decode(media["data"]))) as img:
        return img.size


def test_page_and_its_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "lctk explorer" in page.text and "/static/explorer.js" in page.text
    assert client.get("/static/explorer.js").status_code == 200
    assert client.get("/static/explorer.css").headers["content-type"].startswith("text/css")


def test_run_description(client):
    info = client.get("/api/run").json()
    assert info["modality"] == "image" and info["backbone"] == "conv"
    assert info["attributes"] == ["3", "7"] and info["rules"] == []
    assert "actor" in info["methods"] and "optimize" in info["methods"]
    assert info["constraints"][0]["name"] == "3+7" and "losses" in info["constraints"][0]["metrics"]
    assert info["test_examples"] == 297 and ".png" in info["upload_suffixes"]
    assert "data_dir" not in info["dataset"]  # no local paths are handed out


@pytest.mark.parametrize("request_", [{"attrs": ["3"], "n": 16}, {"attrs": ["7=0"], "n": 5, "method": "optimize"},
                                      {"mode": "prior", "n": 3}, {"mode": "realism", "n": 2, "seed": 4}])
def test_sample_returns_one_picture_per_output(client, request_):
    result = client.post("/api/sample", json=request_)
    assert result.status_code == 200, result.text
    items = result.json()["items"]
    assert len(items) == request_["n"]
    assert all(png_size(item[0]) == (96, 96) for item in items)  # 8x8 digits upscaled 12 times


def test_sample_is_deterministic_for_a_seed(client):
    first = client.post("/api/sample", json={"attrs": ["3"], "n": 4, "seed": 9}).json()
    again = client.post("/api/sample", json={"attrs": ["3"], "n": 4, "seed": 9}).json()
    other = client.post("/api/sample", json={"attrs": ["3"], "n": 4, "seed": 10}).json()
    assert first == again and first != other


def test_download_is_a_zip_of_the_writers_files(client):
    result = client.post("/api/download", json={"attrs": ["3"], "n": 4})
    assert result.status_code == 200 and result.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        names = archive.namelist()
        assert names == ["3-actor.png"]
        with Image.open(io.BytesIO(archive.read(names[0]))) as img:
            assert img.format == "PNG"


def test_examples_strip_and_edit(client):
    strip = client.post("/api/examples", json={"random": True, "count": 5, "seed": 1}).json()["items"]
    assert len(strip) == 5 and all(0 <= item["test_index"] < 297 for item in strip)
    assert client.post("/api/examples", json={"start": 290, "count": 32}).json()["items"][-1]["test_index"] == 296
    result = client.post("/api/edit", json={"test_index": strip[0]["test_index"], "attrs": ["7"], "steps": 30})
    assert result.status_code == 200, result.text
    body = result.json()
    assert png_size(body["before"][0]) == png_size(body["after"][0]) == (96, 96)
    assert body["shift"] > 0
    gentle = client.post("/api/edit", json={"test_index": strip[0]["test_index"], "attrs": ["7"], "steps": 30,
                                            "strength": 0.05}).json()
    assert gentle["shift"] < body["shift"]  # less strength: a smaller move


def test_edit_an_uploaded_png(client):
    image = Image.new("L", (20, 20), 0)
    image.paste(255, (6, 2, 14, 18))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    result = client.post("/api/edit-upload?suffix=.png&attrs=3&steps=20", content=buffer.getvalue())
    assert result.status_code == 200, result.text
    assert png_size(result.json()["after"][0]) == (96, 96)


@pytest.mark.parametrize("path, body, status, message", [
    ("/api/sample", {"n": 0}, 400, "n must be between 1 and 64"),
    ("/api/sample", {"n": 100000}, 400, "n must be between 1 and 64"),
    ("/api/sample", {"n": "many"}, 400, "n must be a whole number"),
    ("/api/sample", {"attrs": ["smiling"]}, 400, "unknown attribute 'smiling'"),
    ("/api/sample", {"method": "magic"}, 400, "method must be one of"),
    ("/api/sample", {"mode": "../../etc"}, 400, "mode must be one of"),
    ("/api/sample", {"path": "/etc/passwd"}, 400, "unknown parameter 'path'"),
    ("/api/sample", ["not", "an", "object"], 400, "must be a JSON object"),
    ("/api/sample", {"attrs": ["x" * 500]}, 400, "at most"),
    ("/api/edit", {"test_index": 297, "attrs": ["3"]}, 400, "out of range"),
    ("/api/edit", {"test_index": 0}, 400, "needs at least one"),
    ("/api/edit", {"test_index": 0, "attrs": ["3"], "strength": "nan"}, 400, "strength must be a number"),
    ("/api/examples", {"count": 1000}, 400, "count must be between"),
])
def test_bad_parameters_get_one_line_4xx(client, path, body, status, message):
    result = client.post(path, json=body)
    assert result.status_code == status
    error = result.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in result.text


def test_bad_bodies_and_uploads(client):
    assert "not valid JSON" in client.post("/api/sample", content=b"{oops").json()["error"]
    big = client.post("/api/sample", content=b"{" + b" " * (70 * 1024) + b"}")
    assert big.status_code == 413
    upload = client.post("/api/edit-upload?suffix=.png&attrs=3", content=b"\0" * (MAX_UPLOAD + 1))
    assert upload.status_code == 413 and "larger than" in upload.json()["error"]
    exe = client.post("/api/edit-upload?suffix=.sh&attrs=3", content=b"#!/bin/sh\ntouch /tmp/owned\n")
    assert exe.status_code == 400 and "cannot read .sh" in exe.json()["error"]
    junk = client.post("/api/edit-upload?suffix=.png&attrs=3", content=b"not a png")
    assert junk.status_code == 400 and "not a readable image" in junk.json()["error"]
    named = client.post("/api/edit-upload?suffix=.png&attrs=3&path=/etc/passwd", content=b"x")
    assert named.status_code == 400 and "unknown parameter 'path'" in named.json()["error"]


@pytest.mark.parametrize("url", ["/static/../run.json", "/static/..%2frun.json", "/static/run.json",
                                 "/static/%2e%2e/%2e%2e/etc/passwd", "/../run.json", "/api/../run.json"])
def test_path_tricks_read_nothing(client, url):
    result = client.get(url)
    assert result.status_code == 404
    assert "backbone_config" not in result.text and "root:" not in result.text


def test_concurrent_requests_from_several_tabs(client):
    """Requests from several threads at once are served one at a time and each gets its own answer."""
    requests = [{"attrs": ["3"], "n": 4, "seed": s} for s in range(6)]
    alone = [client.post("/api/sample", json=r).json() for r in requests]
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(lambda r: client.post("/api/sample", json=r).json(), requests))
    assert together == alone


def test_a_session_leaves_the_run_byte_identical(tiny_run, run_cli):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY).exit_code == 0
    before = tree_digests(tiny_run)
    with TestClient(create_app(tiny_run)) as c:
        c.get("/api/run")
        c.post("/api/sample", json={"attrs": ["3"], "n": 8})
        c.post("/api/download", json={"n": 4})
        c.post("/api/examples", json={"random": True})
        c.post("/api/edit", json={"test_index": 3, "attrs": ["3"], "steps": 10})
        c.post("/api/sample", json={"attrs": ["nope"]})
    assert tree_digests(tiny_run) == before


def test_serve_command_binds_loopback_and_warns_otherwise(served_run, run_cli, monkeypatch):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    result = run_cli("serve", served_run)
    assert result.exit_code == 0 and calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8000
    assert "warning" not in result.stderr
    result = run_cli("serve", served_run, "--host", "0.0.0.0", "--port", "9000")
    assert result.exit_code == 0 and calls[-1]["host"] == "0.0.0.0" and calls[-1]["port"] == 9000
    assert "warning: serving on 0.0.0.0" in result.stderr


def test_serve_on_a_bad_run_is_one_error_line(tmp_path, run_cli):
    result = run_cli("serve", tmp_path / "nothing")
    assert result.exit_code != 0 and result.stderr.strip().startswith("error: run folder")
    assert len(result.stderr.strip().splitlines()) == 1


def load_tour():
    spec = importlib.util.spec_from_file_location("explorer_tour", REPO / "examples" / "explorer_tour.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_and_edit_in_a_browser(served_run, tmp_path):
    pytest.importorskip("selenium")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (installed by .ci/run)")
    tour = load_tour()
    with tour.explorer(served_run) as url:
        seen = tour.tour(url, tmp_path / "shots", attrs=["3"])
    assert "16 samples (3-actor)" in seen["sample_status"]
    assert seen["sample_items"] == 16 and seen["sample_image_sizes"] == [[96, 96]] * 16
    assert seen["sample_audio"] == 0
    assert seen["edit_status"].startswith("edited in") and "latent shift" in seen["edit_status"]
    assert seen["edit_images"] == 2 and seen["inspect_tables"] >= 3
    assert all((tmp_path / "shots" / f"{page}.png").stat().st_size > 0 for page in ("sample", "edit", "inspect"))


def test_continuous_attributes_get_sliders_and_values(tiny_run, run_cli):
    """A run with a continuous constraint (the conv plugin's `ink`) offers its observed range, and a value
    inside it samples while one outside is refused with the range."""
    assert run_cli("add-constraint", tiny_run, "--attr", "ink", *TINY).exit_code == 0
    with TestClient(create_app(tiny_run)) as c:
        (ink,) = c.get("/api/run").json()["continuous"]
        assert ink["name"] == "ink" and 0.0 <= ink["low"] < ink["high"] <= 1.0
        middle = (ink["low"] + ink["high"]) / 2
        result = c.post("/api/sample", json={"attrs": [f"ink={middle}"], "n": 3})
        assert result.status_code == 200 and len(result.json()["items"]) == 3
        outside = c.post("/api/sample", json={"attrs": ["ink=5"], "n": 3})
        assert outside.status_code == 400 and "range" in outside.json()["error"]
