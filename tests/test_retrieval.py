"""Encoders, the embedding cache, faiss and bm25s indexes: real components, a tiny local encoder."""

import dataclasses
from unittest import mock

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from syneg_dspy.errors import InputError
from syneg_dspy.retrieval.embeddings import cache_path, shard_dir
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


def test_bf16_embeddings_are_cached_apart_and_close_to_fp32(tiny_encoder_path, ds, tmp_path):
    encoder = load_encoder(tiny_encoder_path)
    fp32 = corpus_embeddings(encoder, ds, cache_dir=tmp_path, show_progress=False)
    bf16 = corpus_embeddings(encoder, ds, cache_dir=tmp_path, show_progress=False, bf16=True)
    assert bf16.encoded and bf16.path != fp32.path and bf16.matrix.dtype == np.float32
    assert not np.array_equal(bf16.matrix, fp32.matrix)  # autocast really ran in bfloat16
    assert (bf16.matrix * fp32.matrix).sum(axis=1).min() > 0.99
    assert not corpus_embeddings(encoder, ds, cache_dir=tmp_path, show_progress=False, bf16=True).encoded
    with pytest.raises(InputError, match="one process"):
        corpus_embeddings(encoder, ds, cache_dir=tmp_path / "pool", show_progress=False, bf16=True, processes=2)
    queries = [ds.queries[q] for q in sorted(ds.queries)[:8]]
    q32, q16 = encode_queries(encoder, queries), encode_queries(encoder, queries, bf16=True)
    assert not np.array_equal(q16, q32) and (q16 * q32).sum(axis=1).min() > 0.99


class Killed(Exception):
    """Stands in for a kill in the middle of encoding."""


def test_sharded_encoding_equals_unsharded_and_resumes_with_the_missing_shards(tiny_encoder_path, ds, tmp_path):
    encoder = load_encoder(tiny_encoder_path)
    whole = corpus_embeddings(encoder, ds, cache_dir=tmp_path / "whole", show_progress=False)
    real, done = encoder.encode_document, []

    def killed_after_three_shards(texts, **kw):
        if len(done) == 3:
            raise Killed
        done.append(len(texts))
        return real(texts, **kw)

    encoder.encode_document = killed_after_three_shards
    with pytest.raises(Killed):
        corpus_embeddings(encoder, ds, cache_dir=tmp_path / "sharded", show_progress=False, shard_size=100)
    path = cache_path(encoder, ds, tmp_path / "sharded")
    shards = shard_dir(path, 100)
    assert len(ds.corpus) == 640 and not path.exists()
    assert sorted(p.name for p in shards.iterdir()) == ["00000.npy", "00001.npy", "00002.npy"]
    (shards / "00001.npy").write_bytes(b"torn")  # a damaged shard is encoded again

    encoder.encode_document = mock.Mock(wraps=real)
    resumed = corpus_embeddings(encoder, ds, cache_dir=tmp_path / "sharded", show_progress=False, shard_size=100)
    assert [len(c.args[0]) for c in encoder.encode_document.call_args_list] == [100, 100, 100, 100, 40]  # 1, 3-6
    assert resumed.encoded and resumed.path == path and path.name == whole.path.name
    assert resumed.doc_ids == whole.doc_ids
    np.testing.assert_allclose(resumed.matrix, whole.matrix, atol=1e-6)
    assert not shards.exists()  # assembled into the one cache file
    again = corpus_embeddings(encoder, ds, cache_dir=tmp_path / "sharded", show_progress=False, shard_size=100)
    assert not again.encoded and encoder.encode_document.call_count == 5


def test_multi_process_encoding_equals_single_process(tiny_encoder_path, ds, tmp_path, monkeypatch):
    ds = dataclasses.replace(ds, corpus={d: ds.corpus[d] for d in sorted(ds.corpus)[:120]})
    encoder = load_encoder(tiny_encoder_path)
    single = corpus_embeddings(encoder, ds, cache_dir=tmp_path / "one", show_progress=False)
    start, pools = SentenceTransformer.start_multi_process_pool, []

    def spy(self, devices):  # on the class: the encoder itself is pickled into the worker processes
        pools.append(start(self, devices))
        return pools[-1]

    stop, stopped = SentenceTransformer.stop_multi_process_pool, []
    monkeypatch.setattr(SentenceTransformer, "start_multi_process_pool", spy)
    monkeypatch.setattr(SentenceTransformer, "stop_multi_process_pool", staticmethod(lambda pool: stopped.append(stop(pool))))
    pooled = corpus_embeddings(encoder, ds, cache_dir=tmp_path / "two", show_progress=False, shard_size=50, processes=2)
    assert len(pools) == 1 and len(pools[0]["processes"]) == 2  # one pool for all three shards
    assert len(stopped) == 1  # and stopped
    assert pooled.encoded and pooled.path.name == single.path.name
    np.testing.assert_allclose(pooled.matrix, single.matrix, atol=1e-5)
    with pytest.raises(InputError, match="at least 1"):
        corpus_embeddings(encoder, ds, cache_dir=tmp_path / "three", shard_size=0)


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
