"""Generation throughput vs ``--concurrency`` against an LLM server with fixed latency.

Procedure (printed with the result): a fake OpenAI server (``tests/fake_openai.py``, its own process)
answers SyNeg's prompts after ``--latency`` seconds each; ``generate_negatives`` writes ``--n`` items
(2 LLM calls each) at every concurrency level, uncached, into a fresh folder. The guard runs on a tiny
2-layer encoder so that the LLM wait, not the guard, is what concurrency has to hide. Efficiency is the
speedup over concurrency 1 divided by the concurrency (1.0 = linear; goal >= 0.8).

The ``router x2`` rows send the same work through ``--lm router/fake``: a ``litellm.Router`` (default
simple-shuffle routing) over two server processes with the same latency, from a LiteLLM router config
written to the work folder; efficiency is against the single server at concurrency 1, and ``split``
is how many requests each server answered (from its ``/stats``).

    python bench/bench_concurrency.py --n 64 --latency 0.2 --levels 1,4,16 --router-levels 4,16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import syneg_dspy  # noqa: E402,F401  (offline switches)

from programs import load_program  # noqa: E402
from syneg_dspy.generate import Guard, generate_negatives  # noqa: E402
from syneg_dspy.lm import make_lm  # noqa: E402
from syneg_dspy.retrieval import load_encoder  # noqa: E402
from tests.test_faults import pairs_dataset  # noqa: E402
from tests.tiny_encoder import build_tiny_encoder  # noqa: E402


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"), "--port", "0", "--latency",
                             str(latency)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"fake server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def served(url: str) -> int:
    """Requests a fake server has answered so far (its ``/stats``)."""
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=5) as r:
        return json.load(r)["requests"]


def router_config(path: Path, urls: list[str]) -> Path:
    """A LiteLLM router config: one ``fake`` group, a deployment per server, the key as an env reference."""
    deployments = [{"model_name": "fake", "litellm_params": {"model": "openai/fake", "api_base": url,
                                                             "api_key": "os.environ/OPENAI_API_KEY"}} for url in urls]
    path.write_text(yaml.safe_dump({"model_list": deployments, "router_settings": {"num_retries": 0}}))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="items per level (one per query)")
    ap.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per request")
    ap.add_argument("--levels", default="1,4,16", help="concurrency levels, the first is the baseline")
    ap.add_argument("--router-levels", default="4,16", help="levels through a Router over 2 servers ('' for none)")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    router_levels = [int(x) for x in args.router_levels.split(",") if x]
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-dummy")

    ds = pairs_dataset(args.n)
    work = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    texts = [ds.doc_text(d) for d in ds.corpus] + list(ds.queries.values())
    guard = Guard(load_encoder(str(build_tiny_encoder(work / "tiny-encoder", texts))))
    servers = [start_server(args.latency) for _ in range(2 if router_levels else 1)]
    urls = [url for _, url in servers]
    print(f"{args.n} items x 2 LLM calls, server latency {args.latency * 1000:.0f} ms, tiny-encoder guard, "
          f"cache off; {os.cpu_count()} CPUs")
    rows, base = [], None

    def measure(label: str, lm, c: int) -> None:
        nonlocal base
        before = [served(u) for u in urls]
        s = generate_negatives(ds, "train", load_program(max_rounds=1), lm,
                               work / f"{label.replace(' ', '-')}-c{c}" / "negatives.jsonl",
                               guard=guard, domain="test domain", concurrency=c, progress=False)
        rate = s.run_items / s.wall_s
        base = base or rate / levels[0]
        split = "/".join(str(served(u) - b) for u, b in zip(urls, before))
        rows.append((label, c, s.run_items, s.wall_s, rate, s.llm_calls / s.wall_s, rate / base, rate / base / c,
                     sum(s.failed.values()), split))

    try:
        single = make_lm("openai/fake", api_base=urls[0], cache=False, num_retries=0)
        for c in levels:
            measure("1 server", single, c)
        if router_levels:
            routed = make_lm("router/fake", router_config=router_config(work / "router.yaml", urls), cache=False)
            for c in router_levels:
                measure("router x2", routed, c)
    finally:
        for proc, _ in servers:
            proc.kill()
            proc.wait()

    print(f"{'backend':>9} {'concurrency':>11} {'items':>6} {'wall s':>8} {'items/s':>8} {'calls/s':>8} "
          f"{'speedup':>8} {'efficiency':>10} {'failed':>6} {'split':>9}")
    for label, c, n, wall, rate, calls, speedup, eff, failed, split in rows:
        print(f"{label:>9} {c:>11} {n:>6} {wall:>8.2f} {rate:>8.2f} {calls:>8.2f} {speedup:>8.2f} {eff:>10.2f} "
              f"{failed:>6} {split:>9}")
    print(f"ideal at concurrency 1: {1 / (2 * args.latency):.2f} items/s (2 calls x {args.latency}s)")


if __name__ == "__main__":
    main()
