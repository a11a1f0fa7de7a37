"""Reading sources and mapping columns (workbench.alpaca_io), on literal files with exact expected rows."""

from __future__ import annotations

import json

import pytest

from workbench.alpaca import DatasetConfig
from workbench.alpaca_io import apply_column_map, parse_column_map, read_source, resolve_column_map
from workbench.errors import ConfigError, DocumentError, NotFoundError


def test_parse_column_map():
    assert parse_column_map("instruction=Q, output=A,input=") == {"instruction": "Q", "output": "A", "input": ""}
    with pytest.raises(ConfigError, match="has no '='"):
        parse_column_map("Q")
    with pytest.raises(ConfigError, match="is not one of instruction, input, output"):
        parse_column_map("answer=A")


def test_korean_and_english_column_names_are_recognised():
    assert resolve_column_map(["질문", "답변", "출처"], DatasetConfig(tokenizer="")) == \
        {"instruction": "질문", "input": "", "output": "답변"}
    assert resolve_column_map(["question", "context", "answer"], DatasetConfig(tokenizer="")) == \
        {"instruction": "question", "input": "context", "output": "answer"}
    with pytest.raises(ConfigError):
        resolve_column_map(["foo", "bar"], DatasetConfig(tokenizer=""))


def test_unmapped_columns_are_kept_and_never_shadow_the_mapped_ones():
    rows = apply_column_map([{"Q": "현금 결제?", "A": "네", "output": "old", "source": "faq.md"}],
                            {"instruction": "Q", "input": "", "output": "A"})
    assert rows == [{"instruction": "현금 결제?", "input": "", "output": "네", "orig_output": "old", "source": "faq.md"}]


def test_read_source_csv_in_cp949_and_jsonl(tmp_path):
    csv_path = tmp_path / "qa.csv"
    csv_path.write_bytes("질문,답변\n현금으로 결제가 가능한가요?,네 가능합니다\n".encode("cp949"))
    rows, src = read_source(csv_path)
    assert rows == [{"질문": "현금으로 결제가 가능한가요?", "답변": "네 가능합니다"}]
    assert (src["kind"], src["encoding"]) == ("csv", "cp949")
    jl = tmp_path / "qa.jsonl"
    jl.write_text(json.dumps({"instruction": "Q", "output": "A", "n": 5}) + "\n\n", encoding="utf-8")
    assert read_source(jl)[0] == [{"instruction": "Q", "output": "A", "n": 5}]
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n[1]\n', encoding="utf-8")
    with pytest.raises(DocumentError, match="line 2: expected a JSON object"):
        read_source(tmp_path / "bad.jsonl")
    with pytest.raises(NotFoundError, match="neither an existing file"):
        read_source(str(tmp_path / "missing.csv"))


def test_the_encoding_and_a_guess_travel_with_the_rows(tmp_path):
    (tmp_path / "menu.csv").write_bytes("instruction,output\nCafé crème?,\"Oui, à 5 €.\"\n".encode("cp1252"))
    rows, src = read_source(tmp_path / "menu.csv")
    assert rows == [{"instruction": "Café crème?", "output": "Oui, à 5 €."}]
    assert src["encoding"] == "cp1252" and "encoding_warning" not in src
    (tmp_path / "greek.csv").write_bytes("instruction,output\nΚαλημέρα κόσμε;,\"Ναι, αυτό είναι ελληνικό κείμενο.\"\n".encode("cp1253"))
    rows, src = read_source(tmp_path / "greek.csv")
    assert src["encoding_warning"].startswith(f"{tmp_path / 'greek.csv'}: not UTF-8; its encoding was guessed as ")
    (tmp_path / "le.jsonl").write_bytes('{"instruction": "Q", "output": "A"}\n'.encode("utf-16-le"))
    assert read_source(tmp_path / "le.jsonl") == ([{"instruction": "Q", "output": "A"}],
                                                  {"kind": "jsonl", "path": str(tmp_path / "le.jsonl"), "encoding": "utf-16-le"})
