"""The Dataset every stage takes: a corpus, queries, and graded judgements per split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass
class Dataset:
    """``corpus {doc_id: {"title", "text"}}``, ``queries {qid: text}``, ``qrels {split: {qid: {doc_id: grade}}}``.

    Ids are always strings. A grade > 0 means relevant; every judged doc of a query (any grade) is
    excluded from its negatives.
    """

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    name: str = "dataset"
    path: str | None = None

    def doc_text(self, doc_id: str) -> str:
        """The text an encoder sees: ``title + " " + text`` (BEIR's convention)."""
        doc = self.corpus[doc_id]
        return f"{doc.get('title', '')} {doc['text']}".strip()

    def split(self, name: str) -> dict[str, dict[str, int]]:
        if name not in self.qrels:
            from syneg_dspy.errors import InputError

            known = ", ".join(sorted(self.qrels)) or "none"
            raise InputError(f"no qrels split {name!r} (known: {known})", file=self.path)
        return self.qrels[name]

    def positives(self, split: str) -> list[tuple[str, str]]:
        """(qid, doc_id) for every relevant judgement of a split, in file order."""
        return [(q, d) for q, docs in self.split(split).items() for d, g in docs.items() if g > 0]

    def to_hf(self):
        """BEIR's Hub layout as a ``datasets.DatasetDict`` (corpus, queries, qrels_<split>), ids typed as strings."""
        import datasets

        string = datasets.Value("string")

        def table(columns: dict[str, list], types: dict) -> datasets.Dataset:
            return datasets.Dataset.from_dict(columns, features=datasets.Features(types))

        tables = {
            "corpus": table(
                {
                    "_id": list(self.corpus),
                    "title": [d.get("title", "") for d in self.corpus.values()],
                    "text": [d["text"] for d in self.corpus.values()],
                },
                {"_id": string, "title": string, "text": string},
            ),
            "queries": table({"_id": list(self.queries), "text": list(self.queries.values())}, {"_id": string, "text": string}),
        }
        for split, judged in self.qrels.items():
            rows = [(q, d, g) for q, docs in judged.items() for d, g in docs.items()]
            tables[f"qrels_{split}"] = table(
                {"query-id": [r[0] for r in rows], "corpus-id": [r[1] for r in rows], "score": [r[2] for r in rows]},
                {"query-id": string, "corpus-id": string, "score": datasets.Value("int32")},
            )
        return datasets.DatasetDict(tables)

    def corpus_fingerprint(self) -> str:
        """Stable hash of ids and texts: the key of every on-disk embedding cache."""
        h = hashlib.sha256()
        for doc_id in sorted(self.corpus):
            h.update(doc_id.encode())
            h.update(b"\0")
            h.update(self.doc_text(doc_id).encode())
            h.update(b"\1")
        return h.hexdigest()[:16]
