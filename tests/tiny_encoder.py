"""A tiny sentence encoder built locally (no download): fast tests of training and retrieval.

A 2-layer, 64-wide BERT with a WordPiece vocabulary trained on the bundled sample's texts, saved
as a sentence-transformers folder (Transformer + mean pooling) that ``SentenceTransformer(path)``
loads like any hub model. Untrained weights are random, so tests assert behaviour, not quality.

``lexical=True`` zeroes what mixes tokens (attention and feed-forward outputs, position embeddings):
each layer is then a LayerNorm of the word embeddings, and the mean-pooled vector a random projection
of the bag of words, so texts that share words score higher. Tests whose pipeline needs a ranking that
means something (mining with a margin, the guard's cosines) use that one.
"""

from __future__ import annotations

import json
from pathlib import Path


def build_tiny_encoder(out_dir: str | Path, texts: list[str], *, vocab_size: int = 2000, seed: int = 0,
                       lexical: bool = False) -> Path:
    """Write a tiny sentence-transformers model to ``out_dir`` (reused if already there)."""
    out_dir = Path(out_dir)
    if (out_dir / "modules.json").exists():
        return out_dir
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(texts, WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    hf_dir = out_dir / "hf"
    BertTokenizerFast(tokenizer_object=tok, model_max_length=128).save_pretrained(hf_dir)

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    model = BertModel(config)
    if lexical:
        with torch.no_grad():
            model.embeddings.position_embeddings.weight.zero_()
            model.embeddings.token_type_embeddings.weight.zero_()
            for layer in model.encoder.layer:
                for dense in (layer.attention.output.dense, layer.output.dense):
                    dense.weight.zero_()
                    dense.bias.zero_()
    model.save_pretrained(hf_dir)

    word = Transformer(str(hf_dir), max_seq_length=128)
    pool = Pooling(config.hidden_size, pooling_mode="mean")
    SentenceTransformer(modules=[word, pool], device="cpu").save(str(out_dir))
    (out_dir / "TINY.json").write_text(json.dumps({"vocab_size": vocab_size, "seed": seed, "lexical": lexical}) + "\n")
    return out_dir
