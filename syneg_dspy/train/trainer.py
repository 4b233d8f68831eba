"""Fine-tune a sentence-transformers encoder on (anchor, positive, negative_1..n) with in-batch negatives.

MultipleNegativesRankingLoss scores each anchor against every positive and negative in the batch,
so a duplicate text in a batch would be a false negative: the NO_DUPLICATES batch sampler prevents
that. CachedMNRL (GradCache) gives large effective batches in little memory. The final model is a
plain sentence-transformers folder; the loss curve is kept as JSON for the report.

Launched by ``torchrun``/``accelerate launch``, the same code trains with DDP (transformers and accelerate
set it up from the launcher's environment; gloo on CPU): each process takes ``batch_size`` rows per step,
and only the main process writes the model and the JSON files.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.base.sampler import BatchSamplers, DefaultBatchSampler
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from transformers import TrainerCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint

from syneg_dspy.data.beir import iter_jsonl
from syneg_dspy.data.dataset import Dataset
from syneg_dspy.errors import InputError
from syneg_dspy.retrieval.encoder import load_encoder
from syneg_dspy.store import write_json

LOSSES = ("mnrl", "cached_mnrl")


@dataclass
class TrainResult:
    model_path: str
    log_history: list[dict]
    train_seconds: float
    steps: int
    world_size: int = 1  # processes that trained (DDP under torchrun / accelerate launch)


def load_training_dataset(source):
    """A ``datasets.Dataset`` with only ``anchor, positive, negative_1..n`` (the columns the loss reads).

    ``source``: rows (dicts), a ``datasets.Dataset``, a JSONL file, a saved HF dataset folder, or a
    folder written by ``syneg mine``/``syneg mix`` (``train_hf/`` or ``train.jsonl``).
    """
    if isinstance(source, datasets.Dataset):
        data = source
    elif isinstance(source, (list, tuple)):
        data = datasets.Dataset.from_list(list(source))
    else:
        path = Path(source)
        if path.is_dir() and (path / "state.json").exists():
            data = datasets.load_from_disk(str(path))
        elif path.is_dir() and (path / "train_hf").is_dir():
            data = datasets.load_from_disk(str(path / "train_hf"))
        elif path.is_dir() and (path / "train.jsonl").exists():
            data = _read_jsonl_dataset(path / "train.jsonl")
        elif path.is_file():
            data = _read_jsonl_dataset(path)
        else:
            raise InputError("not a training set (expected a JSONL file or a saved HF dataset folder)", file=path)
    where = source if isinstance(source, (str, Path)) else None
    missing = {"anchor", "positive"} - set(data.column_names)
    if missing:
        raise InputError(f"training set lacks column(s) {', '.join(sorted(missing))}", file=where)
    negatives = sorted((c for c in data.column_names if c.startswith("negative_") and c[9:].isdigit()), key=lambda c: int(c[9:]))
    keep = ["anchor", "positive", *negatives]
    if len(data) == 0:
        raise InputError("training set is empty", file=where)
    return data.select_columns(keep)


def _read_jsonl_dataset(path: Path):
    rows = []
    for lineno, row in iter_jsonl(path):
        if not isinstance(row.get("anchor"), str) or not isinstance(row.get("positive"), str):
            raise InputError("expected string 'anchor' and 'positive'", file=path, line=lineno)
        rows.append(row)
    return datasets.Dataset.from_list(rows)


def ir_evaluator(ds: Dataset, split: str, name: str | None = None, batch_size: int = 64):
    """An InformationRetrievalEvaluator over ``split`` of ``ds`` (nDCG@10, MRR@10, Recall@100 during training)."""
    judged = ds.split(split)
    relevant = {q: {d for d, g in docs.items() if g > 0} for q, docs in judged.items() if q in ds.queries}
    relevant = {q: docs for q, docs in relevant.items() if docs}
    return InformationRetrievalEvaluator(
        queries={q: ds.queries[q] for q in relevant},
        corpus={d: ds.doc_text(d) for d in ds.corpus},
        relevant_docs=relevant,
        name=name or split,
        ndcg_at_k=[10],
        mrr_at_k=[10],
        accuracy_at_k=[1, 10],
        precision_recall_at_k=[10, 100],
        map_at_k=[100],
        batch_size=batch_size,
        show_progress_bar=False,
    )


class OrderedNoDuplicatesBatchSampler(DefaultBatchSampler):
    """NO_DUPLICATES without the shuffle, for a curriculum (the warmup mix) that must train in file order.

    Batches follow the dataset order; a row that repeats a text of the batch being filled waits for the next.
    """

    def __iter__(self):
        dataset = self.sampler  # DefaultBatchSampler hands the dataset to BatchSampler as its "sampler"
        pending = list(range(len(dataset)))
        while pending:
            batch, seen, waiting, scanned = [], set(), [], 0
            for i in pending:
                if len(batch) == self.batch_size:
                    break
                scanned += 1
                values = {str(v) for v in dataset[i].values()}
                if seen.isdisjoint(values):
                    batch.append(i)
                    seen |= values
                else:
                    waiting.append(i)
            pending = waiting + pending[scanned:]
            if len(batch) == self.batch_size or not self.drop_last:
                yield batch


def build_trainer(
    train_data,
    *,
    base_model: str | None = None,
    out_dir: str | Path,
    epochs: float = 1,
    lr: float = 2e-5,
    batch_size: int = 16,
    warmup_ratio: float = 0.1,
    max_seq_length: int | None = None,
    seed: int = 0,
    loss: str = "mnrl",
    mini_batch_size: int = 32,
    eval_ds: Dataset | None = None,
    eval_split: str = "dev",
    eval_steps: int | None = None,
    save_steps: int | None = None,
    max_steps: int = -1,
    shuffle: bool = True,
    callbacks: list | None = None,
    bf16: bool = False,
):
    """The configured ``SentenceTransformerTrainer`` that :func:`train` runs (exposed for benchmarks and tests).

    ``shuffle=False`` keeps the file's order (a curriculum); ``callbacks`` are transformers ``TrainerCallback``s.
    ``max_seq_length`` truncates the training texts only (a cost knob: 128 tokens ~3.6x faster per step than
    256 here); the trained model gets the encoder's length back, so it is evaluated like the encoder was.
    ``bf16=True`` trains under bfloat16 autocast (fp32 master weights): faster on CPUs with AMX/AVX512-BF16.
    """
    if loss not in LOSSES:
        raise InputError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    data = load_training_dataset(train_data)
    if batch_size > len(data):
        raise InputError(f"batch_size {batch_size} exceeds the {len(data)} training rows")
    set_seed(seed)
    model = load_encoder(base_model)
    callbacks = list(callbacks or [])
    if max_seq_length:
        callbacks.append(_KeepLength(model.max_seq_length))
        model.max_seq_length = max_seq_length
    loss_fn = (
        MultipleNegativesRankingLoss(model)
        if loss == "mnrl"
        else CachedMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size)
    )
    evaluator = ir_evaluator(eval_ds, eval_split) if eval_ds is not None else None
    planned = max_steps if max_steps > 0 else math.ceil(len(data) / batch_size * epochs)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(Path(out_dir) / "checkpoints"),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        warmup_steps=math.ceil(warmup_ratio * planned),
        seed=seed,
        data_seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES if shuffle else OrderedNoDuplicatesBatchSampler,
        eval_strategy=("steps" if eval_steps else "epoch") if evaluator else "no",
        eval_steps=eval_steps,
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps,
        save_total_limit=2,
        logging_steps=max(1, planned // 100),
        logging_first_step=True,
        report_to="none",
        use_cpu=True,
        bf16=bf16,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=loss_fn, evaluator=evaluator, callbacks=callbacks
    )


class _KeepLength(TrainerCallback):
    """Restores the encoder's max_seq_length when training ends (see ``build_trainer``)."""

    def __init__(self, length: int):
        self.length = length

    def on_train_end(self, args, state, control, model=None, **kwargs):
        model.max_seq_length = self.length


def train(train_data, *, out_dir: str | Path, resume: bool = False, **options) -> TrainResult:
    """Train, save the final model to ``out_dir/model`` and the loss curve to ``out_dir/log_history.json``.

    ``train_data``: rows, a ``datasets.Dataset``, or a path (see :func:`load_training_dataset`).
    ``base_model=None`` is the embedded all-MiniLM-L6-v2. Checkpoints (``save_steps``) go to
    ``out_dir/checkpoints``; ``resume=True`` continues from the last one (same settings only).
    """
    out_dir = Path(out_dir)
    trainer = build_trainer(train_data, out_dir=out_dir, **options)
    ckpt_dir = Path(trainer.args.output_dir)
    last = get_last_checkpoint(str(ckpt_dir)) if resume and ckpt_dir.is_dir() else None
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    model_path = out_dir / "model"
    result = TrainResult(str(model_path), trainer.state.log_history, seconds, trainer.state.global_step,
                         trainer.args.world_size)
    if not trainer.is_world_process_zero():  # DDP: the weights are identical on every process; one writes them
        return result
    tmp = out_dir / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save(str(tmp))
    shutil.rmtree(model_path, ignore_errors=True)
    tmp.rename(model_path)  # never a half-written model folder under the final name
    write_json(out_dir / "log_history.json", result.log_history)
    write_json(out_dir / "train.json", {k: v for k, v in asdict(result).items() if k != "log_history"})
    return result
