"""Encoders, the embedding cache, faiss and bm25s indexes: real components, a tiny local encoder."""

import dataclasses
from unittest import mock

import numpy as np
import pytest
import torch

from syneg_dspy.errors import InputError
from syneg_dspy.retrieval import (
    BM25Index,
    DenseIndex,
    corpus_embeddings,
    embedded_model_path,
    encode_queries,
    load_encoder,
    model_id,
)


def counting(encoder):
    """The real encoder, with encode_document wrapped in a call-counting mock."""
    encoder.encode_document = mock.Mock(wraps=encoder.encode_document)
    return encoder


def test_embedded_encoder_is_minilm():
    encoder = load_encoder()
    assert embedded_model_path().joinpath("model.safetensors").exists()
    assert encoder.get_embedding_dimension() == 384 and encoder.max_seq_length == 256
    assert model_id(encoder).startswith("all-MiniLM-L6-v2-")
    assert model_id(load_encoder("minilm")) == model_id(encoder)


def test_unknown_model_name_is_input_error():
    with pytest.raises(InputError, match="not in the local Hugging Face cache"):
        load_encoder("no-such-org/no-such-model")


def test_model_id_follows_weights_not_objects(tiny_encoder_path):
    a, b = load_encoder(tiny_encoder_path), load_encoder(str(tiny_encoder_path))
    assert model_id(a) == model_id(b)
    with torch.no_grad():
        next(b.parameters()).add_(0.01)
    assert model_id(b) != model_id(a)


def test_cache_hit_does_not_encode(tiny_encoder_path, ds, tmp_path):
    encoder = counting(load_encoder(tiny_encoder_path))
    first = corpus_embeddings(encoder, ds, cache_dir=tmp_path, show_progress=False)
    second = corpus_embeddings(encoder, ds, cache_dir=tmp_path, show_progress=False)
    assert encoder.encode_document.call_count == 1 and first.encoded and not second.encoded
    assert first.path == second.path and first.path.is_relative_to(tmp_path)
    np.testing.assert_array_equal(first.matrix, second.matrix)
    assert second.matrix.dtype == np.float32 and second.matrix.shape == (len(ds.corpus), 64)
    np.testing.assert_allclose(np.linalg.norm(second.matrix, axis=1), 1.0, atol=1e-5)
    assert second.doc_ids == sorted(ds.corpus)
    # rows really belong to their doc ids: re-encoding one doc gives its cached row
    doc = second.doc_ids[7]
    direct = encoder.encode_document([ds.doc_text(doc)], normalize_embeddings=True)[0]
    np.testing.assert_allclose(second.matrix[7], direct, atol=1e-5)


def test_cache_key_changes_with_corpus_model_and_length(tiny_encoder_path, ds, tmp_path):
    ds = dataclasses.replace(ds, corpus={d: ds.corpus[d] for d in sorted(ds.corpus)[:40]})  # 4 encodes: keep them small
    encoder = counting(load_encoder(tiny_encoder_path))
    base = corpus_embeddings(encoder, ds, cache_dir=tmp_path, show_progress=False).path
    doc = next(iter(ds.corpus))
    edited = dataclasses.replace(ds, corpus={**ds.corpus, doc: {"title": "", "text": "changed"}})
    assert corpus_embeddings(encoder, edited, cache_dir=tmp_path, show_progress=False).path != base
    encoder.max_seq_length = 32
    assert corpus_embeddings(encoder, ds, cache_dir=tmp_path, show_progress=False).path != base
    assert encoder.encode_document.call_count == 3
    other = load_encoder(tiny_encoder_path)
    with torch.no_grad():
        next(other.parameters()).mul_(2)
    assert corpus_embeddings(other, ds, cache_dir=tmp_path, show_progress=False).encoded


@pytest.fixture(scope="module")
def emb(tiny_encoder_path, ds, tmp_path_factory):
    encoder = load_encoder(tiny_encoder_path)
    cached = corpus_embeddings(encoder, ds, cache_dir=tmp_path_factory.mktemp("emb"), show_progress=False)
    queries = encode_queries(encoder, list(ds.queries.values())[:20])
    return cached, queries


def test_flat_index_is_exact(emb):
    cached, queries = emb
    scores, ids = DenseIndex(cached.matrix, cached.doc_ids).search(queries, 10)
    full = queries @ cached.matrix.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), atol=1e-5)
    # ids may swap between near-ties, so check each returned id by its exact score
    row = cached.row_of()
    got = np.array([[full[q, row[d]] for d in qids] for q, qids in enumerate(ids)])
    np.testing.assert_allclose(got, scores, atol=1e-5)
    assert DenseIndex(cached.matrix, cached.doc_ids).search(queries, 10_000)[0].shape == (20, len(cached.doc_ids))


def test_ivf_and_hnsw_approximate_flat(emb):
    cached, queries = emb
    _, exact = DenseIndex(cached.matrix, cached.doc_ids).search(queries, 10)
    # IVF scanning every cell is exact; defaults and HNSW are close on a small corpus
    ivf_all = DenseIndex(cached.matrix, cached.doc_ids, index="ivf", nlist=8, nprobe=8)
    np.testing.assert_array_equal(ivf_all.search(queries, 10)[1], exact)
    for index in (DenseIndex(cached.matrix, cached.doc_ids, index="ivf"), DenseIndex(cached.matrix, cached.doc_ids, index="hnsw")):
        scores, ids = index.search(queries, 10)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
        assert overlap >= 0.8, (index.kind, overlap)
        assert np.all(np.diff(scores, axis=1) <= 1e-6)
    with pytest.raises(InputError, match="unknown index"):
        DenseIndex(cached.matrix, cached.doc_ids, index="lsh")


def test_bm25_finds_a_doc_by_its_title_and_scores_agree(ds):
    bm25 = BM25Index.from_dataset(ds)
    doc = sorted(ds.corpus)[3]
    title = ds.corpus[doc]["title"]
    scores, ids = bm25.search([title, "qqqzzz unknownword"], 5)
    assert ids[0][0] == doc and scores[0][0] > scores[0][1]
    full = bm25.scores(title)
    row = {d: i for i, d in enumerate(bm25.doc_ids)}
    np.testing.assert_allclose(scores[0], [full[row[d]] for d in ids[0]], rtol=1e-6)
    assert np.all(scores[1] == 0)  # no known word: nothing matches, and no crash


def test_bm25_uses_a_given_stemmer():
    texts = ["vitamin deficiencies in adults", "solar panels on roofs"]
    plain = BM25Index(texts, ["a", "b"], stemmer=None)
    stemmed = BM25Index(texts, ["a", "b"], stemmer=lambda word: word.rstrip("s").replace("ie", "y"))
    assert plain.search(["deficiency"], 1)[0][0][0] == 0
    scores, ids = stemmed.search(["deficiency"], 1)
    assert ids[0][0] == "a" and scores[0][0] > 0
