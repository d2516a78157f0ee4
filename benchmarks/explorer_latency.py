"""How long the explorer makes a person wait: each request of the page, timed through the HTTP API (Starlette's
test client, so the web layer and JSON are included, the browser's drawing is not), repeated, with the median
and the slowest. Target: 16 samples within one to two seconds on a 2-core machine.

    python benchmarks/explorer_latency.py --run runs/fashion-mnist --attr sandal
    python benchmarks/explorer_latency.py --run runs/essen --rule key=C
"""

from __future__ import annotations

import argparse

from _common import Timer, median, save, show  # noqa: I001  (first: lctk before torch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--attr", action="append", default=[])
    parser.add_argument("--rule", action="append", default=[])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from starlette.testclient import TestClient

    from lctk.serve.app import create_app

    targets = {"attrs": args.attr, "rules": args.rule}
    requests = [
        ("sample, actor, n=16", "/api/sample", {**targets, "n": 16}),
        ("sample, optimize, n=16", "/api/sample", {**targets, "n": 16, "method": "optimize"}),
        ("realism only, n=16", "/api/sample", {"mode": "realism", "n": 16}),
        ("prior, n=16", "/api/sample", {"mode": "prior", "n": 16}),
        ("download zip, n=16", "/api/download", {**targets, "n": 16}),
        ("random strip of 8", "/api/examples", {"random": True, "count": 8}),
        ("edit one example (300 steps)", "/api/edit", {**targets, "test_index": 0}),
    ]
    with Timer() as opening:
        client = TestClient(create_app(args.run))
        client.__enter__()
    times: dict[str, list[float]] = {name: [] for name, _, _ in requests}
    for r in range(args.repeats):  # alternate the requests, as several tabs would
        for name, path, body in requests:
            with Timer() as t:
                response = client.post(path, json={**body, "seed": r} if path != "/api/download" else body)
            response.raise_for_status()
            times[name].append(t.seconds)
    client.__exit__(None, None, None)
    rows = [(name, median(ts), max(ts)) for name, ts in times.items()]
    show(f"explorer latency on {args.run} (seconds; opening the run {opening.seconds:.2f} s)",
         ["request", "median s", "slowest s"], rows)
    save("explorer_latency", {"opening_s": opening.seconds,
                              "requests": {name: {"median_s": m, "max_s": x} for name, m, x in rows}}, args)


if __name__ == "__main__":
    main()
