"""``syneg compile``: optimize a SyNeg program for the retriever it will train, on a dev split.

1. A dev split is carved from the train queries (unless the data has one); train pairs exclude it.
2. Dense negatives are mined for the train pairs: the retrieved pool, the mined demos and
   ``rewrite_mined``'s sources (deepened where the window leaves a pair without one).
3. Disjoint train pairs become DSPy examples: a bootstrap set (``trainset``) and a scoring set
   (``valset``), with exactly the inputs ``syneg generate`` would send (the guard's ``check``
   included, so a rewrite is offered the same safe edits), so the LM cache answers a prompt the
   optimizer already paid for when the same program's negatives are generated again.
4. ``GainSelect`` runs a DSPy optimizer with the guard proxy and keeps the candidate whose negatives
   on the scoring set give the highest ``RetrieverGain`` on dev, if that beats the student beyond noise.

Every scored candidate is left in ``work_dir/candidates/<program hash>/``: ``program.json`` (DSPy's
``save``) and its ``negatives.jsonl``, so a candidate the compile did not keep can still be fine-tuned
and compared (``bench/bench_compile.py --candidate``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import dspy
import tqdm

from optimizers.gain_select import GainSelect
from optimizers.guard_proxy import GuardProxy
from optimizers.mined_demos import with_mined_demos
from optimizers.retriever_gain import RetrieverGain
from programs.syneg import SyNeg, excerpt, program_hash
from syneg_dspy.data import Dataset, carve_dev
from syneg_dspy.errors import InputError
from syneg_dspy.generate.guard import Guard
from syneg_dspy.generate.runner import POSITIVE_WORDS, Item, CallCounter, generate_negatives, infer_domain, \
    mined_sources, plan_items
from syneg_dspy.mine import deepen, mine_negatives
from syneg_dspy.retrieval.encoder import load_encoder
from syneg_dspy.store import read_jsonl


@dataclass(frozen=True)
class Budget:
    train_items: int  # pairs the proposer bootstraps demos from
    val_items: int  # pairs each candidate writes negatives for (proxy and retriever gain)
    candidates: int  # random-search candidate programs (BootstrapFewShotWithRandomSearch)
    keep: int  # proposed candidates scored by the retriever gain, besides the student
    demos: int  # bootstrapped demos per predictor
    trials: int  # MIPROv2 trials (each runs the program on the scoring pairs)
    rollouts: int  # GEPA's program runs on single examples (its max_metric_calls), scoring pairs included


BUDGETS = {
    "light": Budget(train_items=8, val_items=24, candidates=1, keep=2, demos=2, trials=4, rollouts=120),
    "medium": Budget(train_items=16, val_items=48, candidates=4, keep=3, demos=2, trials=12, rollouts=360),
    "heavy": Budget(train_items=32, val_items=96, candidates=8, keep=4, demos=3, trials=30, rollouts=1000),
}
OPTIMIZERS = ("bootstrap", "mipro", "gepa")
METRIC_SEEDS = 5  # adapter seeds the retriever gain averages (0.3 s each)
MARGIN = 0.05  # NV-Retriever's relative margin for the mined pool


def retrieved(ds: Dataset, encoder, seed: int, progress: bool = False) -> tuple[list[dict], dict]:
    """The dense-mined pool the metric mixes with, and ``rewrite_mined``'s sources: the pool, deepened
    for pairs its window leaves empty (``syneg_dspy.mine.deepen``)."""
    mined = mine_negatives(ds, "train", encoder, relative_margin=MARGIN, seed=seed, show_progress=progress)
    return mined, mined_sources(deepen(mined, ds, "train", encoder, relative_margin=MARGIN, seed=seed))


@dataclass
class CompileResult:
    program: SyNeg
    before: dict  # the student's retriever gain (and its generation counts) on the scoring set
    after: dict  # the kept program's
    candidates: list[dict]
    dev_queries: int
    train_pairs: int
    llm_calls: int
    seconds: float
    domain: str


def item_example(item: Item, guard: Guard, positive_words: int | None = POSITIVE_WORDS) -> dspy.Example:
    """The program's inputs for ``item`` as the runner builds them (the first negative of its query),
    and what the proxy needs besides."""
    check = guard.feedback(item.query, item.positive, source=item.source, strategy=item.attributes.strategy)
    return dspy.Example(
        query=item.query, positive=excerpt(item.positive, positive_words), attributes=item.attributes,
        source=item.source, check=check, full_positive=item.positive, qid=item.qid, pos_id=item.pos_id,
    ).with_inputs("query", "positive", "attributes", "source", "check")


def with_split(ds: Dataset, name: str, pairs: Sequence[tuple[str, str]]) -> Dataset:
    """``ds`` with one more qrels split holding exactly ``pairs`` (for the runner, which reads splits)."""
    judged: dict[str, dict[str, int]] = {}
    for qid, doc in pairs:
        judged.setdefault(qid, {})[doc] = 1
    return dataclasses.replace(ds, qrels={**ds.qrels, name: judged})


def make_proposer(optimizer: str, budget: Budget, metric: GuardProxy, lm: dspy.LM, prompt_lm: dspy.LM | None,
                  seed: int) -> tuple[dspy.teleprompt.Teleprompter, dict]:
    """One of DSPy's own teleprompters, driven by the per-example proxy, one LM call at a time, and the
    arguments for its ``compile``.

    A small model's parse failures are an example scoring 0, never a reason to stop (DSPy's default
    is to give up after 10 errors). MIPROv2 gets the budget's candidates and trials rather than its
    ``auto`` presets, whose light setting already runs the program hundreds of times. GEPA gets the
    budget's rollouts and reflects with ``prompt_lm`` on the proxy's feedback (the guard's verdict in
    words), on the predictors the runs used (``used_predictors``).
    """
    errors = budget.train_items + budget.val_items
    if optimizer == "bootstrap":
        return dspy.BootstrapFewShotWithRandomSearch(
            metric=metric, max_bootstrapped_demos=budget.demos, max_labeled_demos=0,
            num_candidate_programs=budget.candidates, num_threads=1, max_errors=errors,
        ), {}
    if optimizer == "mipro":
        proposer = dspy.MIPROv2(metric=metric, prompt_model=prompt_lm or lm, task_model=lm, auto=None,
                                num_candidates=budget.candidates + 1, max_bootstrapped_demos=budget.demos,
                                max_labeled_demos=0, num_threads=1, seed=seed, max_errors=errors, verbose=False)
        return proposer, {"num_trials": budget.trials, "minibatch_size": budget.val_items}
    if optimizer == "gepa":
        return dspy.GEPA(metric=metric, reflection_lm=prompt_lm or lm, max_metric_calls=budget.rollouts,
                         component_selector=used_predictors, num_threads=1, track_stats=True, seed=seed), {}
    raise InputError(f"unknown optimizer {optimizer!r} (choose from {', '.join(OPTIMIZERS)})")


def used_predictors(state, trajectories, subsample_scores, candidate_idx, candidate: dict[str, str]) -> list[str]:
    """GEPA's component selector: every predictor the minibatch's runs called (a predictor is known by its
    instruction, the text GEPA evolves). A strategy leaves most of SyNeg's predictors unused
    (``rewrite_mined`` without a critique calls only ``rewrite``): GEPA's round robin would spend
    iterations on them, and DSPy warns for each one it finds no example for."""
    called = {step[0].signature.instructions for t in trajectories for step in t["trace"]}
    return [name for name, instruction in candidate.items() if instruction in called]


class _SilentBar(tqdm.tqdm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "disable": True})


@contextlib.contextmanager
def progress_bars(shown: bool):
    """DSPy's optimizers draw tqdm bars they give no switch for (random search and MIPROv2 pass
    ``display_progress=True`` to ``Evaluate``; BootstrapFewShot wraps its trainset; DSPy starts GEPA's
    engine with its bar on): ``shown=False`` disables every ``tqdm.tqdm`` bar while the block runs, and
    the one GEPA's engine imported by name, and keeps GEPA's per-iteration log (tens of lines per
    iteration, with every score on the scoring set) to warnings."""
    if shown:
        yield
        return
    # GEPA's engine binds tqdm when first imported (then it gets the silent bar); after that, patch its name.
    gepa_engine = sys.modules.get("gepa.core.engine")
    gepa_log = logging.getLogger("dspy.teleprompt.gepa")
    originals = tqdm.tqdm, getattr(gepa_engine, "tqdm", None), gepa_log.level
    tqdm.tqdm = _SilentBar
    if gepa_engine is not None:
        gepa_engine.tqdm = _SilentBar
    gepa_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        tqdm.tqdm, engine_bar, level = originals
        if gepa_engine is not None:
            gepa_engine.tqdm = engine_bar
        gepa_log.setLevel(level)


def compile_program(
    ds: Dataset,
    lm: dspy.LM,
    work_dir: str | Path,
    *,
    prompt_lm: dspy.LM | None = None,
    optimizer: str = "bootstrap",
    budget: str = "light",
    dev_queries: int = 100,
    encoder=None,
    strategies: Sequence[str] = ("generate",),
    domain: str | None = None,
    max_rounds: int = 1,
    critique_mined: bool = True,
    demos: int = 2,
    ratio: float = 0.5,
    seed: int = 0,
    progress: bool = True,
    log=lambda _: None,
) -> CompileResult:
    """Compile a SyNeg program for ``lm`` on ``ds`` (see the module docstring); negatives go under ``work_dir``."""
    if budget not in BUDGETS:
        raise InputError(f"unknown budget {budget!r} (choose from {', '.join(BUDGETS)})")
    b, work_dir, start = BUDGETS[budget], Path(work_dir), time.perf_counter()
    if "dev" not in ds.qrels:
        ds = carve_dev(ds, dev_queries, seed=seed)
    pairs = ds.positives("train")
    if len(pairs) < b.train_items + b.val_items:
        raise InputError(f"budget {budget} needs {b.train_items + b.val_items} train pairs, the data has {len(pairs)}",
                         ds.path)
    encoder = load_encoder(encoder)
    log(f"mining dense negatives for {len(pairs)} train pairs ({len(ds.split('dev'))} dev queries held out)")
    mined, sources = retrieved(ds, encoder, seed, progress)
    metric = RetrieverGain(ds, mined, encoder=encoder, ratio=ratio, seeds=range(seed, seed + METRIC_SEEDS))
    guard = Guard(encoder)
    student = with_mined_demos(SyNeg(max_rounds=max_rounds, critique_mined=critique_mined), ds, mined, k=demos, seed=seed)
    if domain is None:
        domain = infer_domain(ds, student, lm, work_dir / "domain.json", seed)

    picked = random.Random(seed).sample(pairs, b.train_items + b.val_items)
    view = with_split(with_split(ds, "compile_train", picked[: b.train_items]), "compile_val", picked[b.train_items:])
    plan = dict(per_query=1, seed=seed, domain=domain or None, strategies=strategies, sources=sources)
    examples = {split: [item_example(i, guard) for i in plan_items(view, split, "", **plan)]
                for split in ("compile_train", "compile_val")}

    def gain(program: SyNeg) -> dict:
        """The program's negatives for the scoring pairs (resumable, LM-cached), scored by the retriever gain."""
        out = work_dir / "candidates" / program_hash(program) / "negatives.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        program.save(str(out.with_name("program.json")))
        summary = generate_negatives(view, "compile_val", program, lm, out, guard=guard, domain=domain, progress=progress,
                                     **{k: v for k, v in plan.items() if k != "domain"})
        scored = metric(read_jsonl(out)).to_dict()
        log(f"candidate {summary.program_hash}: {summary.accepted}/{summary.items} accepted, "
            f"dev gain {scored['gain']:+.4f}")
        return {**scored, "accepted": summary.accepted, "items": summary.items, "llm_calls": summary.llm_calls,
                "llm_calls_per_accepted": summary.llm_calls_per_accepted}

    counter = CallCounter()
    proposer, options = make_proposer(optimizer, b, GuardProxy(guard), lm, prompt_lm, seed)
    with progress_bars(progress), dspy.context(lm=lm, adapter=dspy.JSONAdapter(),
                                               callbacks=[*dspy.settings.callbacks, counter]):
        best = GainSelect(proposer, gain, keep=b.keep).compile(
            student, trainset=examples["compile_train"], valset=examples["compile_val"], **options)
    report = best.compile_report
    chosen = next(c for c in report if c["program_hash"] == program_hash(best))
    return CompileResult(
        program=best, before=report[0], after=chosen, candidates=report, dev_queries=len(ds.split("dev")),
        train_pairs=len(pairs), llm_calls=counter.calls, seconds=round(time.perf_counter() - start, 1),
        domain=domain or "",
    )
