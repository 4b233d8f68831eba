"""One page per run: did the synthetic negatives help, how did training go, and what did the LLM write?

Reads only the run folder's artifacts (``eval/*.json``, ``train/log_history.json``,
``generate/*.jsonl``, ``mix/``), so it can be rebuilt at any time with
``syneg report RUN_DIR``. The Markdown links its images; the HTML embeds them (base64), so the
HTML file alone can be mailed around.
"""

from __future__ import annotations

import base64
import html
import json
from collections import Counter
from pathlib import Path

from syneg_dspy.errors import InputError
from syneg_dspy.store import atomic_path, read_jsonl

METRICS = ("ndcg@10", "mrr@10", "recall@100", "map")
ATTRIBUTES = ("domain", "difficulty", "length", "near_miss", "strategy")
N_EXAMPLES = 3


def _metrics_rows(run_dir: Path) -> list[list[str]]:
    """One row per ``eval/*.json`` (baseline first, trained second), then Δ trained − baseline."""
    found = {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "eval").glob("*.json"))}
    found = {k: v for k, v in found.items() if "ndcg@10" in v}  # metrics files only (not stage.json)
    order = sorted(found, key=lambda k: ({"baseline": 0, "trained": 1}.get(k, 2), k))
    rows = [
        [k, str(found[k].get("split", "")), *(f"{found[k][m]:.4f}" if m in found[k] else "" for m in METRICS), str(found[k].get("n_queries", ""))]
        for k in order
    ]
    if "baseline" in found and "trained" in found:
        b, t = found["baseline"], found["trained"]
        rows.append(["Δ trained − baseline", "", *(f"{t[m] - b[m]:+.4f}" if m in b and m in t else "" for m in METRICS), ""])
    return rows


def _plot_loss(run_dir: Path, out: Path) -> Path | None:
    logs = sorted((run_dir / "train").glob("**/log_history.json"))
    if not logs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for log in logs:
        points = [(e["step"], e["loss"]) for e in json.loads(log.read_text()) if "loss" in e]
        if points:
            label = str(log.parent.relative_to(run_dir / "train")) if log.parent != run_dir / "train" else "train"
            ax.plot(*zip(*points), marker=".", label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    ax.legend()
    fig.tight_layout()
    path = out / "loss.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _synthetic_rows(run_dir: Path) -> list[dict]:
    return [row for p in sorted((run_dir / "generate").glob("*.jsonl")) for row in read_jsonl(p)]


def _plot_synthetic(rows: list[dict], out: Path) -> Path | None:
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"verdict": Counter(r.get("verdict", "?") for r in rows)}
    panels["reject or failure reason"] = Counter(str(r.get("reject_reason")) for r in rows if r.get("verdict") != "accepted")
    accepted = [r for r in rows if r.get("verdict") == "accepted"]
    for attr in ATTRIBUTES:
        panels[attr] = Counter(str((r.get("attributes") or {}).get(attr)) for r in accepted)
    panels = {k: v for k, v in panels.items() if v}
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 1.6 * len(panels) + 0.6), squeeze=False)
    for ax, (name, counts) in zip(axes[:, 0], panels.items()):
        labels, values = zip(*counts.most_common(8))
        ax.barh([label[:40] for label in labels][::-1], values[::-1])
        ax.set_title(name + (" (accepted)" if name in ATTRIBUTES else ""), fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    path = out / "synthetic.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _shortcut_blocks(run_dir: Path) -> list[tuple]:
    """The source-shortcut check from the generation summary, one row per strategy."""
    path = run_dir / "generate" / "summary.json"
    seps = json.loads(path.read_text()).get("separability") if path.exists() else None
    if not seps:
        return []
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    rows = [[name, str(s["n"]), fmt(s["auc"]), fmt(s["length_auc"]), f"{s['words_synthetic']:.0f} / {s['words_corpus']:.0f}",
             f"{s['distinct_synthetic']:.2f} / {s['distinct_corpus']:.2f}"] for name, s in seps.items()]
    note = ("Can a logistic regression on base-encoder embeddings tell accepted synthetic negatives from corpus "
            "passages? Cross-validated AUC: 0.5 means indistinguishable; high means a retriever can learn the source "
            "instead of relevance. '-' when fewer than 10 were accepted.")
    head = ["strategy", "accepted", "AUC (embeddings)", "AUC (length)", "words synthetic / corpus",
            "distinct-word share synthetic / corpus"]
    return [("h2", "Source shortcut"), ("p", note), ("table", head, rows)]


def _examples(run_dir: Path) -> list[list[str]]:
    """The first training rows of the mix, synthetic negatives first (they are what this run adds)."""
    rows_path, sources_path = run_dir / "mix" / "train.jsonl", run_dir / "mix" / "train_sources.jsonl"
    if not rows_path.exists() or not sources_path.exists():
        return []
    examples = [
        [row["anchor"], row["positive"], row[f"negative_{i}"], source]
        for row, meta in zip(read_jsonl(rows_path), read_jsonl(sources_path))
        for i, source in enumerate(meta["negative_sources"][:1], 1)
    ]
    examples.sort(key=lambda e: e[3] != "synthetic")
    return examples[:N_EXAMPLES]


def _clip(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: _clip(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_clip(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``run_dir/report/report.md`` and a self-contained ``report.html``; return both paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError("no such run folder", file=run_dir)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)

    blocks: list[tuple] = [("h1", f"SyNeg run: {run_dir.name}")]
    metrics = _metrics_rows(run_dir)
    blocks.append(("h2", "Retrieval metrics"))
    if metrics:
        blocks.append(("table", ["model", "split", *METRICS, "queries"], metrics))
    else:
        blocks.append(("p", "No evaluation results (eval/*.json) in this run yet."))
    loss = _plot_loss(run_dir, out)
    if loss:
        blocks += [("h2", "Training loss"), ("img", loss, "training loss")]
    synthetic = _synthetic_rows(run_dir)
    if synthetic:
        verdicts = Counter(r.get("verdict") for r in synthetic)
        summary = ", ".join(f"{v}: {c}" for v, c in verdicts.most_common())
        blocks += [("h2", "Synthetic negatives"), ("p", f"{len(synthetic)} items ({summary}).")]
        blocks.append(("img", _plot_synthetic(synthetic, out), "synthetic negative breakdown"))
        blocks += _shortcut_blocks(run_dir)
    mix_stats = run_dir / "mix" / "stats.json"
    if mix_stats.exists():
        stats = json.loads(mix_stats.read_text())
        blocks += [("h2", "Hybrid mix"), ("table", ["stat", "value"], [[k, json.dumps(v)] for k, v in stats.items()])]
    examples = _examples(run_dir)
    if examples:
        blocks += [("h2", "Example training rows"), ("table", ["query", "positive", "negative", "source"], examples)]

    md, body = [], []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            md.append(("#" if kind == "h1" else "##") + " " + rest[0])
            body.append(f"<{kind}>{html.escape(rest[0])}</{kind}>")
        elif kind == "p":
            md.append(rest[0])
            body.append(f"<p>{html.escape(rest[0])}</p>")
        elif kind == "table":
            md.append(_md_table(*rest))
            body.append(_html_table(*rest))
        elif kind == "img":
            path, alt = rest
            md.append(f"![{alt}]({path.name})")
            data = base64.b64encode(path.read_bytes()).decode()
            body.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
    style = "body{font-family:sans-serif;max-width:60rem;margin:2rem auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}"
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(run_dir.name)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"

    md_path, html_path = out / "report.md", out / "report.html"
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n\n".join(md) + "\n", encoding="utf-8")
    with atomic_path(html_path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return md_path, html_path
