"""``syneg run``: data → mine → generate → mix → train → evaluate → report, in one resumable run folder.

Each stage writes into ``<runs_dir>/<name>/<stage>/`` and finishes by writing ``stage.json`` with the
hash of everything it depends on (its own options, the data, and the hashes of the stages it reads).
A rerun skips a stage whose ``stage.json`` hash matches, and redoes (after clearing) one whose inputs
changed, so changing ``ratio`` re-mixes, retrains and re-evaluates but reuses mining and the LLM's
negatives. A stage killed midway resumes in place (generation per item, training from its last
checkpoint); raising ``generate_limit`` only generates the new items (lowering it keeps the old ones).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from programs.attributes import DEFAULT_STRATEGY
from syneg_dspy.data import Dataset, carve_dev, load_dataset
from syneg_dspy.errors import InputError
from syneg_dspy.store import read_jsonl, write_json, write_jsonl

STAGES = ("mine", "generate", "mix", "train", "eval", "report")
CHOICES = {"mine_source": ("dense", "bm25", "both"), "schedule": ("fixed", "warmup"), "loss": ("mnrl", "cached_mnrl"),
           "critique_mined": ("auto", "always", "never")}


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class RunConfig:
    """Every option of a run; a TOML/YAML file and CLI flags (``--generate-limit``) set the same names.

    The defaults run on the bundled sample with the embedded LLM and MiniLM in a few minutes on a laptop.
    """

    name: str = _opt("sample", "Run name: the folder under runs_dir.")
    runs_dir: str = _opt("runs", "Where run folders go.")
    data: str | None = _opt(None, "BEIR folder or pair file (default: the bundled SciFact sample).")
    train_split: str = _opt("train", "Qrels split to train on.")
    eval_split: str = _opt("test", "Qrels split for the baseline-vs-trained comparison.")
    dev_queries: int = _opt(0, "Move this many train queries to a 'dev' split, evaluated during training (0: none).")
    encoder: str | None = _opt(None, "Base encoder (folder or cached HF name; default: embedded all-MiniLM-L6-v2).")
    seed: int = _opt(0, "Seeds mining, attributes, mixing and training.")
    # mine
    mine_source: str = _opt("dense", "Retrieved negatives from: dense, bm25 or both.")
    mine_n: int | None = _opt(None, "Retrieved negatives kept per pair (default: negatives).")
    range_min: int = _opt(10, "Skip the top RANGE_MIN candidates (likely unjudged positives).")
    range_max: int = _opt(50, "Mine from candidates ranked below RANGE_MAX.")
    relative_margin: float | None = _opt(0.05, "Negative score <= positive score * (1 - F) (NV-Retriever).")
    # generate
    lm: str = _opt("local/qwen2.5-coder-0.5b", "LLM that writes negatives (LiteLLM model string).")
    api_base: str | None = _opt(None, "Server URL for the LM.")
    program: str | None = _opt(None, "A saved (compiled) SyNeg program JSON, or 'uncompiled' (default: the program "
                                     "shipped for the lm, else the uncompiled one).")
    generate_limit: int = _opt(6, "Generate for the first N train pairs only (0: none, -1: all).")
    per_query: int = _opt(1, "Synthetic negatives per (query, positive).")
    demos: int = _opt(2, "Retrieved negatives shown to the generator as examples (0: none; a compiled program keeps its own).")
    max_rounds: int = _opt(1, "Critique rounds per negative.")
    critique_mined: str = _opt("auto", "Critique edits of retrieved passages: always, never, or auto (not for the "
                                       "embedded 0.5B, whose critique is no better than chance; README).")
    concurrency: int = _opt(1, "Parallel LM requests for remote backends (local/ models run one at a time).")
    strategy: str = _opt(DEFAULT_STRATEGY, "generate, rewrite_mined, rewrite_positive, a comma list of them, or mixed.")
    temperature: float = _opt(0.7, "LM sampling temperature.")
    max_tokens: int = _opt(256, "LM output limit per call.")
    domain: str | None = _opt(None, "Domain attribute (default: inferred once by the LM).")
    guard_encoder: str | None = _opt(None, "Encoder for the guard's similarity checks (default: encoder).")
    # mix
    negatives: int = _opt(1, "Negatives per training instance.")
    ratio: float = _opt(0.5, "Probability that a negative slot is synthetic.")
    schedule: str = _opt("fixed", "fixed, or warmup: ramp the ratio from 0 over the first warmup_frac of training.")
    warmup_frac: float = _opt(0.2, "Share of training over which the warmup schedule ramps.")
    # train
    epochs: float = _opt(1.0, "Training epochs.")
    lr: float = _opt(2e-5, "Learning rate.")
    batch_size: int = _opt(16, "Training batch size (in-batch negatives).")
    warmup_ratio: float = _opt(0.1, "Learning-rate warmup share.")
    max_seq_length: int | None = _opt(None, "Train on texts cut to this many tokens (faster; default: the encoder's); the model keeps the encoder's.")
    loss: str = _opt("mnrl", "mnrl or cached_mnrl (GradCache, big batches in little memory).")
    mini_batch_size: int = _opt(32, "cached_mnrl's mini-batch.")
    max_steps: int = _opt(-1, "Stop after this many steps (-1: the epochs decide).")
    eval_steps: int | None = _opt(None, "Evaluate on dev every N steps (default: each epoch; needs dev_queries).")
    save_steps: int | None = _opt(None, "Checkpoint every N steps (default: none).")
    bf16: bool = _opt(False, "Train and evaluate under bfloat16 autocast (CPUs with AMX: encoding 2.2x faster).")
    progress: bool = _opt(True, "Show progress bars.")

    @classmethod
    def from_dict(cls, values: dict, file: str | Path | None = None) -> "RunConfig":
        """Checked against the field types; ``[section]`` tables of a config file are flattened."""
        flat: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        hints = typing.get_type_hints(cls)
        for key, value in flat.items():
            key_ = key.replace("-", "_")
            if key_ not in hints:
                raise InputError(f"unknown option {key!r}", file)
            flat[key] = _coerce(key, value, hints[key_], file)
        config = cls(**{k.replace("-", "_"): v for k, v in flat.items()})
        config.validate(file)
        return config

    def validate(self, file: str | Path | None = None) -> None:
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise InputError(f"{key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}", file)
        if not 0 <= self.ratio <= 1 or not 0 <= self.warmup_frac <= 1:
            raise InputError("ratio and warmup_frac must be within [0, 1]", file)
        for key in ("negatives", "per_query", "max_rounds", "batch_size", "concurrency"):
            if getattr(self, key) < 1:
                raise InputError(f"{key} must be at least 1", file)
        from programs.attributes import parse_strategies

        try:
            parse_strategies(self.strategy)
        except ValueError as err:
            raise InputError(f"strategy: {err}", file) from None

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


def _coerce(key: str, value: Any, hint: Any, file) -> Any:
    kinds = [t for t in typing.get_args(hint) or (hint,) if t is not type(None)]
    if value is None or value == "" and type(None) in typing.get_args(hint):
        if type(None) not in typing.get_args(hint):
            raise InputError(f"{key} cannot be empty", file)
        return None
    kind = kinds[0]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or kind is int and isinstance(value, bool):
        raise InputError(f"{key} must be {kind.__name__}, got {value!r}", file)
    return value


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """Defaults ← the TOML/YAML file ← ``overrides`` (CLI flags that were given)."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError("no such config file", path)
        if path.suffix.lower() == ".toml":
            try:
                values = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as err:
                raise InputError(f"not valid TOML: {err}", path) from None
        elif path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InputError("YAML configs need `pip install pyyaml` (or use TOML)", path) from None
            try:
                values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as err:
                line = getattr(getattr(err, "problem_mark", None), "line", None)
                where = line + 1 if line is not None else None
                raise InputError(f"not valid YAML: {getattr(err, 'problem', err)}", path, where) from None
            if not isinstance(values, dict):
                raise InputError("expected a mapping of options", path)
        else:
            raise InputError("config must be .toml, .yaml or .yml", path)
    file_config = RunConfig.from_dict(values, path)
    merged = {**dataclasses.asdict(file_config), **(overrides or {})}
    return RunConfig.from_dict(merged)


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, dict]  # "baseline", "trained"
    stages: dict[str, str]  # stage → "ran" | "skipped"
    report: tuple[Path, Path]


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_hash(ds: Dataset) -> str:
    """Corpus, queries and judgements: any edit to the data invalidates every stage."""
    return _hash([ds.corpus_fingerprint(), ds.queries, ds.qrels])


class _Stages:
    """Runs a stage unless its ``stage.json`` records the same inputs, finished.

    ``stage.json`` is written (unfinished) before the stage starts, so a killed stage with the same
    inputs resumes in place (generation's store, training checkpoints), while changed inputs clear it.
    """

    def __init__(self, run_dir: Path, log: Callable[[str], None]):
        self.run_dir, self.log = run_dir, log
        self.status: dict[str, str] = {}
        self.hashes: dict[str, str] = {}

    def run(self, name: str, inputs: dict, fn: Callable[[Path], None], *, extent: dict | None = None) -> Path:
        """``inputs`` changed → clear and redo; only ``extent`` changed (how much to do) → redo in place."""
        out = self.run_dir / name
        key = _hash(inputs)
        self.hashes[name] = _hash([key, extent])
        marker = out / "stage.json"
        done = json.loads(marker.read_text()) if marker.exists() else {}
        if done.get("hash") == key and done.get("extent") == extent and done.get("finished"):
            self.status[name] = "skipped"
            self.log(f"[{name}] up to date, skipped")
            return out
        if out.exists() and done.get("hash") != key:
            shutil.rmtree(out)
        record = {"stage": name, "hash": key, "extent": extent, "inputs": inputs, "finished": False}
        write_json(marker, record)
        self.log(f"[{name}] running")
        start = time.perf_counter()
        fn(out)
        seconds = time.perf_counter() - start
        write_json(marker, {**record, "finished": True, "seconds": round(seconds, 2)})
        self.status[name] = "ran"
        self.log(f"[{name}] done in {seconds:.1f} s")
        return out


def run(config: RunConfig, log: Callable[[str], None] = lambda _: None) -> RunResult:
    """Run (or resume) every stage of ``config``; return the baseline and trained metrics."""
    config.validate()
    run_dir = config.run_dir
    ds = load_dataset(config.data)
    ds.split(config.train_split)
    ds.split(config.eval_split)
    if config.dev_queries:
        ds = carve_dev(ds, config.dev_queries, seed=config.seed, source=config.train_split)
    c = dataclasses.asdict(config)
    config_path = run_dir / "config.json"
    if not config_path.exists() or json.loads(config_path.read_text()) != c:
        write_json(config_path, c)  # the last run's options, for the report and for people
    pick = lambda *keys: {k: c[k] for k in keys}  # noqa: E731
    data = {"data": data_hash(ds), "train_split": config.train_split, "dev_queries": config.dev_queries, "seed": config.seed}
    stages = _Stages(run_dir, log)
    pairs = ds.positives(config.train_split)

    mining = dict(sources=("dense", "bm25") if config.mine_source == "both" else (config.mine_source,),
                  n=config.mine_n or config.negatives, range_min=config.range_min, range_max=config.range_max,
                  relative_margin=config.relative_margin, seed=config.seed)

    def mine(out: Path) -> None:
        from syneg_dspy.mine import group_by_pair, mine_negatives, write_training_set

        rows = mine_negatives(ds, config.train_split, config.encoder, show_progress=config.progress, **mining)
        if not rows:
            raise InputError(
                f"mining found no negative for any {config.train_split!r} pair: lower relative_margin or range_min", ds.path
            )
        write_jsonl(out / "negatives.jsonl", rows)
        write_training_set(group_by_pair(rows, pairs), ds, out, mining["n"])

    mine_keys = ("encoder", "mine_source", "mine_n", "negatives", "range_min", "range_max", "relative_margin")
    stages.run("mine", {**data, **pick(*mine_keys)}, mine)

    def generate(out: Path) -> None:
        from optimizers.mined_demos import with_mined_demos
        from programs import load_program
        from syneg_dspy.generate import Guard, generate_negatives, mined_sources
        from syneg_dspy.lm import make_lm
        from syneg_dspy.mine import deepen
        from syneg_dspy.retrieval.encoder import load_encoder

        path = out / "negatives.jsonl"
        if config.generate_limit == 0:
            path.touch()
            return
        program = load_program(program_path, max_rounds=config.max_rounds, critique_mined=critique)
        mined = read_jsonl(run_dir / "mine" / "negatives.jsonl")
        program = with_mined_demos(program, ds, mined, k=config.demos, seed=config.seed)
        lm = make_lm(config.lm, api_base=config.api_base, temperature=config.temperature, max_tokens=config.max_tokens)
        sources = deepen(mined, ds, config.train_split, config.encoder, **mining) if rewrites else mined
        generate_negatives(
            ds, config.train_split, program, lm, path, guard=Guard(load_encoder(config.guard_encoder or config.encoder)),
            per_query=config.per_query, limit=None if config.generate_limit < 0 else config.generate_limit,
            seed=config.seed, domain=config.domain, progress=config.progress,
            strategies=parse_strategies(config.strategy), sources=mined_sources(sources), concurrency=config.concurrency,
        )

    from programs.attributes import parse_strategies
    from programs.saved import resolve_program

    program_path = resolve_program(config.program, config.lm, config.strategy)
    from syneg_dspy.lm.models import critique_mined

    critique = critique_mined(config.critique_mined, config.lm)
    log(f"[generate] program: {program_path or 'uncompiled'}; critique of mined edits: {'on' if critique else 'off'} "
        f"({config.critique_mined})")
    program_file = {"program_sha": _hash(program_path.read_text()) if program_path else None}
    # demos and rewrite_mined sources come from the mined rows (deepened where the window left a pair without)
    rewrites = "rewrite_mined" in parse_strategies(config.strategy)
    uses_mined = config.demos or rewrites
    from_mine = {"mine_stage": stages.hashes["mine"]} if uses_mined else {}
    stages.run(
        "generate",
        {**data, **program_file, **from_mine, **pick("encoder", "guard_encoder", "lm", "api_base", "program", "per_query",
                                                     "demos", "max_rounds", "critique_mined", "temperature",
                                                     "max_tokens", "domain", "strategy")},
        generate,
        extent={"generate_limit": config.generate_limit},
    )

    def mix(out: Path) -> None:
        from syneg_dspy.mix import mix_negatives, save_mix

        synthetic = read_jsonl(run_dir / "generate" / "negatives.jsonl")
        retrieved = read_jsonl(run_dir / "mine" / "negatives.jsonl")
        result = mix_negatives(pairs, synthetic, retrieved, n=config.negatives, ratio=config.ratio,
                               schedule=config.schedule, warmup_frac=config.warmup_frac, seed=config.seed)
        save_mix(result, ds, out)

    upstream = lambda *names: {f"{n}_stage": stages.hashes[n] for n in names}  # noqa: E731
    stages.run("mix", {**upstream("mine", "generate"), **pick("negatives", "ratio", "schedule", "warmup_frac", "seed")}, mix)

    def train_stage(out: Path) -> None:
        from syneg_dspy.train import train

        train(
            run_dir / "mix", out_dir=out, resume=True, base_model=config.encoder, epochs=config.epochs, lr=config.lr,
            batch_size=config.batch_size, warmup_ratio=config.warmup_ratio, max_seq_length=config.max_seq_length,
            seed=config.seed, loss=config.loss, mini_batch_size=config.mini_batch_size,
            eval_ds=ds if config.dev_queries else None, eval_split="dev", eval_steps=config.eval_steps,
            save_steps=config.save_steps, max_steps=config.max_steps, shuffle=config.schedule != "warmup",
            bf16=config.bf16,
        )

    train_keys = ("encoder", "epochs", "lr", "batch_size", "warmup_ratio", "max_seq_length", "loss", "mini_batch_size",
                  "max_steps", "eval_steps", "save_steps", "schedule", "bf16")
    stages.run("train", {**upstream("mix"), **pick(*train_keys)}, train_stage)

    def evaluate_stage(out: Path) -> None:
        from syneg_dspy.evaluate import evaluate

        write_json(out / "baseline.json", evaluate(config.encoder, ds, config.eval_split, bf16=config.bf16))
        write_json(out / "trained.json", evaluate(str(run_dir / "train" / "model"), ds, config.eval_split, bf16=config.bf16))

    stages.run("eval", {**upstream("train"), **pick("encoder", "eval_split", "bf16")}, evaluate_stage)

    def report_stage(out: Path) -> None:
        from syneg_dspy.report import write_report

        write_report(run_dir)

    stages.run("report", upstream(*STAGES[:-1]), report_stage)
    metrics = {k: json.loads((run_dir / "eval" / f"{k}.json").read_text()) for k in ("baseline", "trained")}
    report = (run_dir / "report" / "report.md", run_dir / "report" / "report.html")
    return RunResult(run_dir, metrics, stages.status, report)
