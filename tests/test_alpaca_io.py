"""Reading sources and mapping columns (workbench.dataset.alpaca_io), on literal files with exact expected rows."""

from __future__ import annotations

import json

import pytest

from workbench.common.errors import ConfigError, DocumentError, NotFoundError
from workbench.dataset.alpaca import DatasetConfig
from workbench.dataset.alpaca_io import apply_column_map, parse_column_map, read_source, resolve_column_map


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


def test_a_row_with_more_cells_than_the_header_is_an_error_never_shifted_data(tmp_path):
    """Issue #23: pandas took the extra first cell as the row index, so `Can I pay cash?` was lost and `Yes` became the
    instruction, with exit 0."""
    path = tmp_path / "faq.csv"
    path.write_text("instruction,output\nWhere?,Here\nCan I pay cash?,Yes, cash is fine.\n", encoding="utf-8")
    with pytest.raises(DocumentError) as e:
        read_source(path)
    assert str(e.value).startswith(f"{path}: line 3 has more cells (3) than the header (2: instruction, output)")
    assert "\n" not in str(e.value) and e.value.ko and "3번째 줄" in e.value.ko
    path.write_text("instruction,output\nCan I pay cash?,Yes, cash is fine.\n", encoding="utf-8")  # the only row too
    with pytest.raises(DocumentError, match="line 2 has more cells"):
        read_source(path)
    tsv = tmp_path / "faq.tsv"
    tsv.write_text("instruction\toutput\nQ\tA\tB\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="A tab inside a value needs double quotes"):
        read_source(tsv)


def test_csv_cells_keep_their_columns(tmp_path):
    path = tmp_path / "qa.csv"
    # a quoted comma, trailing empty cells (a spreadsheet's), a short row, a repeated column name, a blank line
    path.write_text('instruction,output,output\n"Can I pay cash?","Yes, cash is fine.",x,,\nShort?\n\nQ,"A ""quoted""",y\n',
                    encoding="utf-8")
    assert read_source(path)[0] == [
        {"instruction": "Can I pay cash?", "output": "Yes, cash is fine.", "output.1": "x"},
        {"instruction": "Short?", "output": "", "output.1": ""},
        {"instruction": "Q", "output": 'A "quoted"', "output.1": "y"},
    ]
    path.write_text('instruction,output\nQ1,"A1\nQ2,A2\nQ3,A3\n', encoding="utf-8")  # a quote never closed
    with pytest.raises(DocumentError, match="a double quote opened on line 2 is never closed"):
        read_source(path)
