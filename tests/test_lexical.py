"""The lexical index beside each collection: saved subwords reused only by an index of the same format."""

from __future__ import annotations

from test_vectordb import CFG, PARK, PAY, doc  # noqa: E402  (tests/ is on sys.path under pytest)

from workbench.kb import ingest, lexical, vectordb


def test_saved_subwords_are_reused_only_by_an_index_of_the_same_format(workspace):
    import json

    docs = [doc(PAY, "pay.txt"), doc(PARK, "park.txt")]
    report = ingest.ingest_documents(docs, "subwords", CFG, workspace=workspace)
    assert report.embed_seconds > 0 and report.write_seconds > 0 and report.lexical_seconds > 0
    assert report.to_dict()["lexical_seconds"] == round(report.lexical_seconds, 3)
    chunks = vectordb.get_chunks("subwords", workspace)
    lex_dir = workspace.vectorstore / "subwords.bm25"
    cache = lex_dir / "subwords.json"
    saved = json.loads(cache.read_text(encoding="utf-8"))
    assert saved == {c.id: m for c, m in zip(chunks, lexical.subword_tokens([c.text for c in chunks]))}
    assert ["▁현금", "으로", "▁결제", "가", "▁가능합니다", ".", "▁카드", "도"] in saved.values()  # particles split off

    # A rebuild of the same format tokenizes only chunks it has no subwords for...
    planted = {**saved, chunks[0].id: ["planted"]}
    cache.write_text(json.dumps(planted, ensure_ascii=False), encoding="utf-8")
    lex = lexical.LexicalIndex(lex_dir)
    lex.mark_stale()
    lexical.lexical_index("subwords", workspace)
    assert json.loads(cache.read_text(encoding="utf-8")) == planted
    # ...while an index written under other settings (an earlier format's Kiwi morphemes, say) is tokenized again.
    cache.write_text(json.dumps(planted, ensure_ascii=False), encoding="utf-8")
    (lex_dir / "version.json").write_text(json.dumps({**lexical.LEXICAL_FORMAT, "format": 2}), encoding="utf-8")
    lexical.lexical_index("subwords", workspace)
    assert json.loads(cache.read_text(encoding="utf-8")) == saved
