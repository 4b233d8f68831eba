"""Run a SyNeg program over a dataset split: one guarded, resumable JSONL row per requested negative.

Each item is ``(qid, pos_id, attribute index)`` under a ``program_hash``; finished items are appended
to a ``JsonlStore`` as they complete, so a killed run resumes where it stopped and never duplicates.
LLM errors become ``failed`` rows (redone with ``retry_failed``) instead of stopping the run.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import dspy
from dspy.utils.callback import BaseCallback
from dspy.utils.exceptions import AdapterParseError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from programs.attributes import Attributes, sample_attributes
from programs.syneg import SyNeg, excerpt, program_hash
from syneg_dspy.data.dataset import Dataset
from syneg_dspy.evaluate.separability import separability_by_strategy
from syneg_dspy.generate.guard import Guard, Verdict
from syneg_dspy.store import JsonlStore, write_json

DOMAIN_SAMPLE = 5  # passages shown to InferDomain
PASSAGE_CHARS = 600  # of each sample passage
# The LM sees the positive's opening only: small models copy what they are shown (measured on the
# sample with the 0.5B: full abstracts were copied in 3 of 5 items), and the prompt halves. The guard
# still compares against the whole positive.
POSITIVE_WORDS = 40


@dataclass(frozen=True)
class Item:
    key: str
    qid: str
    pos_id: str
    query: str
    positive: str
    attributes: Attributes
    source: str | None = None  # what a rewrite_* strategy edits


@dataclass
class GenerationSummary:
    """Counts cover every requested item in the store (earlier runs included); rates cover this run."""

    items: int
    accepted: int
    rejected: dict[str, int]
    failed: dict[str, int]
    llm_calls: int
    tokens: int
    llm_calls_per_accepted: float | None
    run_items: int
    run_accepted: int
    wall_s: float
    negatives_per_minute: float
    domain: str
    lm: str
    program_hash: str
    out: str
    by_strategy: dict[str, dict]  # items, accepted, llm_calls, llm_calls_per_accepted per strategy
    separability: dict[str, dict]  # accepted negatives vs corpus passages, per strategy (evaluate.separability)

    def to_dict(self) -> dict:
        return asdict(self)


class CallCounter(BaseCallback):
    """Counts LM calls in the item's own ``dspy.context`` (cache hits included, unlike usage)."""

    def __init__(self):
        self.calls = 0

    def on_lm_end(self, call_id, outputs, exception=None):
        self.calls += 1


def item_key(qid: str, pos_id: str, index: int, strategy: str, phash: str) -> str:
    return f"{qid}|{pos_id}|{index}|{strategy}|{phash}"


def infer_domain(ds: Dataset, program: SyNeg, lm: dspy.LM, cache: Path, seed: int = 0) -> str:
    """The corpus domain in a few words, asked once per corpus and cached beside the output.

    A model that cannot answer gets no domain attribute (and is asked again next run).
    """
    fingerprint = ds.corpus_fingerprint()
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("corpus") == fingerprint:
            return cached["domain"]
    ids = random.Random(seed).sample(sorted(ds.corpus), min(DOMAIN_SAMPLE, len(ds.corpus)))
    try:
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            domain = program.domain([ds.doc_text(i)[:PASSAGE_CHARS] for i in ids])
    except Exception:  # same failures as an item's; the run goes on without a domain
        return ""
    write_json(cache, {"corpus": fingerprint, "domain": domain, "lm": lm.model})
    return domain


def mined_sources(rows: Sequence[dict]) -> dict[tuple[str, str], list[str]]:
    """Retrieved negatives' texts per (qid, pos_id), in mined order: what ``rewrite_mined`` edits."""
    sources: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        sources.setdefault((row["qid"], row["pos_id"]), []).append(row["text"])
    return sources


def plan_items(ds: Dataset, split: str, phash: str, *, per_query: int, seed: int, domain: str | None,
               limit: int | None = None, strategies: Sequence[str] = ("generate",),
               sources: Mapping[tuple[str, str], Sequence[str]] | None = None) -> list[Item]:
    """Every requested item: ``per_query`` attribute sets for each of the first ``limit`` (query, positive) pairs.

    ``rewrite_mined`` items edit the pair's ``index``-th retrieved negative from ``sources`` (cycling);
    a pair without any falls back to ``generate``, and its row says so.
    """
    pairs = ds.positives(split)[:limit]
    items = []
    for qid, pos_id in pairs:
        positive = ds.doc_text(pos_id)
        mined = (sources or {}).get((qid, pos_id)) or []
        for index, attributes in enumerate(sample_attributes(qid, per_query, seed, domain, strategies)):
            source = None
            if attributes.strategy == "rewrite_mined":
                if mined:
                    source = mined[index % len(mined)]
                else:
                    attributes = replace(attributes, strategy="generate")
            elif attributes.strategy == "rewrite_positive":
                source = positive
            key = item_key(qid, pos_id, index, attributes.strategy, phash)
            items.append(Item(key, qid, pos_id, ds.queries[qid], positive, attributes, source))
    return items


def _failure_reason(err: Exception) -> str:
    return "parse_error" if isinstance(err, AdapterParseError) else type(err).__name__


def _run_item(item: Item, program: SyNeg, lm: dspy.LM, guard: Guard, accepted: list[str], phash: str,
              positive_words: int | None) -> dict:
    counter = CallCounter()
    row = {
        "key": item.key,
        "qid": item.qid,
        "pos_id": item.pos_id,
        "query": item.query,
        "text": "",
        "attributes": item.attributes.to_dict(),
        "source": item.source,
        "rounds": 0,
        "verdict": "failed",
        "reject_reason": None,
        "llm_calls": 0,
        "tokens": 0,
        "latency_s": 0.0,
        "program_hash": phash,
        "lm": lm.model,
        "scores": {},
        "critique": None,
        "edit": None,  # a rewrite's phrase replacement
        "error": None,
    }
    start = time.perf_counter()
    callbacks = [*dspy.settings.callbacks, counter]
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter(), callbacks=callbacks), dspy.track_usage() as usage:
        try:
            check = guard.feedback(item.query, item.positive, accepted=accepted, source=item.source,
                                   strategy=item.attributes.strategy)
            pred = program(query=item.query, positive=excerpt(item.positive, positive_words), attributes=item.attributes,
                           source=item.source, check=check)
            if pred.edit_issue:  # a rewrite whose last edit could not be applied, or with none to try
                verdict = Verdict(False, "bad_edit" if pred.history else "no_safe_edit", {})
            else:
                verdict = guard.check(item.query, item.positive, pred.negative, critique=pred.critique,
                                      accepted=accepted, source=item.source, strategy=item.attributes.strategy)
            row.update(
                text=pred.negative,
                rounds=pred.rounds,
                verdict="accepted" if verdict.accepted else "rejected",
                reject_reason=verdict.reason,
                scores=verdict.scores,
                critique=pred.critique,
                edit=pred.edit,
            )
        except Exception as err:  # an LLM or parse failure is this item's outcome, not the run's
            row.update(reject_reason=_failure_reason(err), error=str(err)[:500])
    row["latency_s"] = round(time.perf_counter() - start, 3)
    row["llm_calls"] = counter.calls
    row["tokens"] = sum(
        entry.get("total_tokens") or 0 for entries in usage.usage_data.values() for entry in entries
    )
    return row


def _counts(rows: list[dict]) -> dict:
    accepted = sum(r["verdict"] == "accepted" for r in rows)
    calls = sum(r["llm_calls"] for r in rows)
    return {"items": len(rows), "accepted": accepted, "llm_calls": calls,
            "llm_calls_per_accepted": round(calls / accepted, 2) if accepted else None}


def summarize(rows: list[dict], *, run_rows: list[dict], wall_s: float, domain: str, lm: str, phash: str,
              out: str, separability: dict[str, dict] | None = None) -> GenerationSummary:
    counts = _counts(rows)
    accepted, calls = counts["accepted"], counts["llm_calls"]
    by_strategy: dict[str, list[dict]] = {}
    for row in rows:
        by_strategy.setdefault(row["attributes"].get("strategy", "generate"), []).append(row)
    run_accepted = sum(r["verdict"] == "accepted" for r in run_rows)
    return GenerationSummary(
        items=len(rows),
        accepted=accepted,
        rejected=dict(Counter(r["reject_reason"] for r in rows if r["verdict"] == "rejected").most_common()),
        failed=dict(Counter(r["reject_reason"] for r in rows if r["verdict"] == "failed").most_common()),
        llm_calls=calls,
        tokens=sum(r["tokens"] for r in rows),
        llm_calls_per_accepted=counts["llm_calls_per_accepted"],
        run_items=len(run_rows),
        run_accepted=run_accepted,
        wall_s=round(wall_s, 2),
        negatives_per_minute=round(60 * run_accepted / wall_s, 2) if wall_s > 0 else 0.0,
        domain=domain,
        lm=lm,
        program_hash=phash,
        out=out,
        by_strategy={name: _counts(group) for name, group in sorted(by_strategy.items())},
        separability=separability or {},
    )


def generate_negatives(
    ds: Dataset,
    split: str,
    program: SyNeg,
    lm: dspy.LM,
    out_path: str | Path,
    *,
    guard: Guard,
    per_query: int = 1,
    limit: int | None = None,
    seed: int = 0,
    concurrency: int = 1,
    max_rounds: int | None = None,
    retry_failed: bool = False,
    domain: str | None = None,
    positive_words: int | None = POSITIVE_WORDS,
    strategies: Sequence[str] = ("generate",),
    sources: Mapping[tuple[str, str], Sequence[str]] | None = None,
    progress: bool = True,
) -> GenerationSummary:
    """Generate, guard and store ``per_query`` negatives for each (query, positive) pair of ``split``.

    ``out_path`` is the JSONL; ``summary.json`` (and the cached ``domain.json``) go beside it.
    ``limit`` keeps the first N pairs. ``concurrency`` threads serve remote backends; in-process
    ``local/`` models run one item at a time. Items of one query run in order in one thread, so
    the duplicate check sees every negative accepted before it. ``strategies`` are sampled per
    item (see ``sample_attributes``); ``rewrite_mined`` edits passages from ``sources``, the
    retrieved negatives' texts per (qid, pos_id).
    """
    out_path = Path(out_path)
    if max_rounds is not None:
        program.max_rounds = max_rounds
    phash = program_hash(program)
    if domain is None:
        domain = infer_domain(ds, program, lm, out_path.parent / "domain.json", seed)
    items = plan_items(ds, split, phash, per_query=per_query, seed=seed, domain=domain or None, limit=limit,
                       strategies=strategies, sources=sources)
    if lm.model.startswith("local/"):
        concurrency = 1

    start = time.perf_counter()
    run_rows: list[dict] = []
    write_lock, stop = threading.Lock(), threading.Event()
    with JsonlStore(out_path, key=lambda r: r["key"]) as store:

        def todo(item: Item) -> bool:
            row = store.rows.get(item.key)
            return row is None or (retry_failed and row["verdict"] == "failed")

        by_query: dict[str, list[Item]] = {}
        for item in items:
            if todo(item):
                by_query.setdefault(item.qid, []).append(item)
        accepted_by_query: dict[str, list[str]] = {}
        for row in store.rows.values():  # the duplicate check's context: this program's negatives only
            if row["verdict"] == "accepted" and row["program_hash"] == phash:
                accepted_by_query.setdefault(row["qid"], []).append(row["text"])
        n_todo = sum(len(v) for v in by_query.values())

        columns = (TextColumn("generate"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("generate", total=n_todo, stats="")

            def run_query(query_items: list[Item]) -> None:
                accepted = accepted_by_query.setdefault(query_items[0].qid, [])
                for item in query_items:
                    if stop.is_set():
                        return
                    row = _run_item(item, program, lm, guard, accepted, phash, positive_words)
                    if row["verdict"] == "accepted":
                        accepted.append(row["text"])
                    with write_lock:
                        store.replace(row)
                        run_rows.append(row)
                        done = sum(r["verdict"] == "accepted" for r in run_rows)
                        minutes = (time.perf_counter() - start) / 60
                        bar.update(task, advance=1, stats=f"{done} accepted, {done / minutes:.1f}/min")

            if concurrency <= 1:
                for query_items in by_query.values():
                    run_query(query_items)
            else:
                with ThreadPoolExecutor(max_workers=concurrency) as pool:
                    try:
                        for future in as_completed([pool.submit(run_query, q) for q in by_query.values()]):
                            future.result()
                    except BaseException:  # Ctrl-C or a bug: finish only the items in flight
                        stop.set()
                        pool.shutdown(cancel_futures=True)
                        raise

        rows = [store.rows[i.key] for i in items if i.key in store.rows]
    summary = summarize(
        rows,
        run_rows=run_rows,
        wall_s=time.perf_counter() - start,
        domain=domain,
        lm=lm.model,
        phash=phash,
        out=str(out_path),
        separability=separability_by_strategy(rows, [ds.doc_text(d) for d in ds.corpus], guard.encoder, seed),
    )
    write_json(out_path.parent / "summary.json", summary.to_dict())
    return summary
