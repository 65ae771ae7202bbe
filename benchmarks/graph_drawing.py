"""The Remote graph's drawing under hostile and large graphs: time and peak memory, one process a case.

Each case runs in a fresh interpreter (so its peak RSS is its own, the interpreter and Airflow's imports
included): it builds the instance dict, then times ``graph_svg.draw`` (layout and SVG, what the tab's
routes run), and reports the drawing's time, the process's peak RSS (``ru_maxrss``), the whole process's
wall time (start-up included), the SVG's size and what was drawn. Goal (issue 25): every case within 5 s and
400 MB.

Cases: a chain with an edge from its first node to every other (1,000 / 2,000 / 5,000 nodes: about N**2/2
dummy nodes before the fix), an ordinary random 20,000-node DAG with a few failed and running nodes, one
node with a 100 KB name (and a 100 KB run name, bidi overrides and controls in it).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/graph_drawing.py [--cases chain_fan_1000 ...]
        [--code PATH]   # draw with another checkout's package (e.g. main before the fix), for comparison
        [--timeout S]   # a case still running after S seconds is stopped and reported as such
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH "
GOAL_SECONDS, GOAL_MB = 5.0, 400.0


def instance(nodes: list[dict[str, Any]], edges: list[tuple[str, str]], name: str = "bench") -> dict[str, Any]:
    return {
        "platform": "enos_batch",
        "instance_id": "4000-20240101000000",
        "name": name,
        "state": "running",
        "raw_state": "RUNNING",
        "started_at": "2024-01-01T00:00:00+00:00",
        "ended_at": None,
        "url": None,
        "graph": {"nodes": nodes, "edges": [{"source": s, "target": t} for s, t in edges]},
    }


def node(node_id: str, state: str = "success", name: str | None = None) -> dict[str, Any]:
    return {"id": node_id, "name": name or f"task_{node_id}", "kind": "task", "state": state, "raw_state": state}


def chain_and_fan(size: int) -> dict[str, Any]:
    ids = [f"n{i}" for i in range(size)]
    edges = [(ids[i], ids[i + 1]) for i in range(size - 1)] + [(ids[0], other) for other in ids[2:]]
    return instance([node(node_id) for node_id in ids], edges)


def ordinary(size: int) -> dict[str, Any]:
    """A random DAG: each node after the first has one or two upstream nodes among the 30 before it."""
    rng = random.Random(7)
    ids = [f"n{i}" for i in range(size)]
    states = ["success"] * 200 + ["failed", "running", "skipped", "queued"]
    nodes = [node(node_id, rng.choice(states)) for node_id in ids]
    edges = [
        (ids[rng.randint(max(0, i - 30), i - 1)], ids[i]) for i in range(1, size) for _ in range(rng.randint(1, 2))
    ]
    return instance(nodes, edges)


def long_name(size: int) -> dict[str, Any]:
    hostile = "\u202e\x00\x1b\ud800"
    return instance([node("a" * size, "failed", name=hostile + "b" * size)], [], name=hostile + "c" * size)


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "chain_fan_1000": lambda: chain_and_fan(1000),
    "chain_fan_2000": lambda: chain_and_fan(2000),
    "chain_fan_5000": lambda: chain_and_fan(5000),
    "ordinary_20000": lambda: ordinary(20_000),
    "name_100kb": lambda: long_name(100_000),
}


def run_case(name: str) -> None:
    """In the child: build, draw, print one JSON line."""
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    import airflow_provider_flowinst.graph_svg as graph_svg

    graph_svg.state_colours()  # Airflow's imports, outside the drawing's time (inside its memory)
    data = CASES[name]()
    started = time.perf_counter()
    draw = getattr(graph_svg, "draw", None)
    if draw is not None:
        drawing = draw(data)
        svg, drawn = drawing.svg, len(drawing.view.nodes)
    else:  # a checkout from before graph_reduce: everything is drawn
        svg, drawn = graph_svg.render_svg(data), len(data["graph"]["nodes"])
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"case": name, "draw_s": seconds, "peak_mb": peak_mb, "svg_kb": len(svg) / 1024, "drawn": drawn}))


def measure(name: str, code: Path, timeout: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", name], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"case": name, "error": f"still running after {timeout:.0f} s (stopped)"}
    wall = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"case": name, "error": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
    return {**json.loads(lines[-1]), "process_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose package draws")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_case(args.child)
        return
    print(f"drawing with {args.code.resolve()}; goal: draw within {GOAL_SECONDS:g} s and {GOAL_MB:g} MB peak RSS")
    print(f"{'case':<16} {'draw s':>8} {'peak MB':>8} {'process s':>10} {'SVG KB':>8} {'drawn':>6}  goal")
    results = []
    for name in args.cases:
        result = measure(name, args.code, args.timeout)
        results.append(result)
        if "error" in result:
            print(f"{name:<16} {result['error']}")
            continue
        met = result["draw_s"] <= GOAL_SECONDS and result["peak_mb"] <= GOAL_MB
        print(
            f"{name:<16} {result['draw_s']:>8.2f} {result['peak_mb']:>8.0f} {result['process_s']:>10.2f}"
            f" {result['svg_kb']:>8.0f} {result['drawn']:>6}  {'met' if met else 'NOT MET'}"
        )
    summary = {r["case"]: [round(r["draw_s"], 2), round(r["peak_mb"])] for r in results if "error" not in r}
    print(RESULT_PREFIX + json.dumps({"graph_drawing_s_mb": summary}))


if __name__ == "__main__":
    main()
