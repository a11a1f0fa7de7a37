from __future__ import annotations

from pathlib import Path

import pytest

from workbench.common.errors import DocumentError
from workbench.kb.documents import load_bytes, load_file, load_paths, save_uploads

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"
KO = "현금으로 결제가 가능한가요? 네, 카드와 현금 모두 받습니다.\n주차는 두 시간 무료입니다."


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF (Helvetica text, one string per page), xref offsets computed."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                    f"/Contents {5 + 2 * i} 0 R >>".encode())
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("결제 안내", level=1)
    d.add_paragraph("현금과 카드 모두 받습니다.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "수단", "가능"
    table.cell(1, 0).text, table.cell(1, 1).text = "수표", "불가"
    d.add_paragraph("Cash and cards are accepted.")
    d.save(path)
    return path


@pytest.mark.parametrize("name,data,pattern", [
    ("empty.md", b"", r"empty\.md: the file is empty"),
    ("blank.txt", b"  \n\n ", r"blank\.txt: the file is empty"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage", r"broken\.pdf: is not a readable PDF"),
    ("sheet.xlsx", b"PK\x03\x04", r"sheet\.xlsx: file type '\.xlsx' is not supported"),
    ("README", b"text", r"README: file type '\(no extension\)' is not supported"),
    ("broken.docx", b"not a zip file", r"broken\.docx: is not a readable DOCX"),
    ("header.csv", "이름,가격\n".encode(), r"header\.csv: the CSV has a header but no rows"),
])
def test_bad_files_name_the_file_and_the_problem(name, data, pattern):
    with pytest.raises(DocumentError, match=pattern):
        load_bytes(name, data)


def test_pdf_one_document_per_page():
    docs = load_bytes("guide.pdf", make_pdf(["Cash is accepted at every counter.", "Parking is free for two hours."]))
    assert [(d.page_content, d.metadata) for d in docs] == [
        ("Cash is accepted at every counter.", {"source": "guide.pdf", "file_type": "pdf", "page": 1}),
        ("Parking is free for two hours.", {"source": "guide.pdf", "file_type": "pdf", "page": 2}),
    ]


def test_pdf_without_text_layer_is_an_error():
    with pytest.raises(DocumentError, match="no text layer"):
        load_bytes("scan.pdf", make_pdf([""]))


def test_docx_paragraphs_and_tables_in_order(tmp_path):
    (doc,) = load_file(make_docx(tmp_path / "pay.docx"))
    assert doc.page_content == "결제 안내\n\n현금과 카드 모두 받습니다.\n\n수단 | 가능\n\n수표 | 불가\n\nCash and cards are accepted."
    assert doc.metadata == {"source": "pay.docx", "file_type": "docx", "title": "결제 안내"}


def test_csv_one_document_per_row_in_cp949():
    data = "상품,가격(원)\n바나나,3500\n우유,2800\n".encode("cp949")
    docs = load_bytes("prices.csv", data)
    assert [d.page_content for d in docs] == ["상품: 바나나\n가격(원): 3500", "상품: 우유\n가격(원): 2800"]
    assert [d.metadata["row"] for d in docs] == [1, 2] and docs[0].metadata["encoding"] == "cp949"


def test_html_text_without_scripts_and_with_title():
    html = ("<html><head><title>공지</title><style>p{color:red}</style></head><body><script>alert(1)</script>"
            "<h1>영업 <b>시간</b></h1><p>평일 <a href='#'>09:00</a>~21:00</p>"
            "<table><tr><th>요일</th><th>시간</th></tr><tr><td>토</td><td>10:00</td></tr></table></body></html>")
    (doc,) = load_bytes("notice.html", html.encode("utf-8"))
    assert doc.page_content == "영업 시간\n평일 09:00~21:00\n요일 | 시간\n토 | 10:00"
    assert doc.metadata["title"] == "공지"


@pytest.mark.parametrize("name,text,title", [
    ("a.md", "소개 문단\n\n## 결제 안내\n\n# 두 번째", "결제 안내"),
    ("b.md", "제목 없는 글.", None),
    ("c.txt", "행복마트 영업시간 안내\n=====\n\n평일 9시", "행복마트 영업시간 안내"),
    ("d.txt", "현금으로 결제가 가능합니다.\n카드도 됩니다.", None),
    ("e.html", "<body><h1>공지 <b>사항</b></h1><p>본문</p></body>", "공지 사항"),
])
def test_titles_travel_with_the_document(name, text, title):
    (doc,) = load_bytes(name, text.encode("utf-8"))
    assert doc.metadata.get("title") == title


def test_one_bad_file_does_not_stop_the_others(tmp_path):
    (tmp_path / "a.txt").write_bytes(KO.encode("cp949"))
    (tmp_path / "b.md").write_text("# 제목\n\n본문", encoding="utf-8")
    (tmp_path / "c.pdf").write_bytes(b"%PDF-broken")
    (tmp_path / "d.txt").write_bytes(b"")
    (tmp_path / "e.exe").write_bytes(b"MZ\x00\x00")
    report = load_paths([tmp_path / "a.txt", tmp_path / "b.md", tmp_path / "c.pdf", tmp_path / "d.txt", tmp_path / "e.exe"])
    assert report.sources == ["a.txt", "b.md"]
    assert [d.page_content for d in report.documents] == [KO, "# 제목\n\n본문"]
    assert [(e.source, e.message.split(":")[0]) for e in report.errors] == [("c.pdf", "c.pdf"), ("d.txt", "d.txt"), ("e.exe", "e.exe")]


def test_folders_give_relative_source_names(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "top.txt").write_text("위", encoding="utf-8")
    (tmp_path / "sub" / "low.md").write_text("아래", encoding="utf-8")
    (tmp_path / "sub" / "skip.bin").write_bytes(b"\x00\x01")
    report = load_paths([tmp_path])
    assert report.sources == ["sub/low.md", "top.txt"] and report.errors == []


def test_uploads_cannot_escape_the_workspace(workspace):
    written, errors = save_uploads(
        [("ok.txt", b"fine"), ("../../evil.txt", b"x"), ("/etc/evil.txt", b"x"), ("sub/../../evil.md", b"x"),
         ("tool.exe", b"x")],
        "vectorstore/uploads/shop", workspace,
    )
    assert written == [workspace.root.resolve() / "vectorstore" / "uploads" / "shop" / "ok.txt"]
    assert written[0].read_bytes() == b"fine"
    assert [e.source for e in errors] == ["../../evil.txt", "/etc/evil.txt", "sub/../../evil.md", "tool.exe"]
    assert "not safe" in errors[0].message and "not supported" in errors[3].message
    assert not (workspace.root.parent / "evil.txt").exists() and not (workspace.root / "evil.txt").exists()


@pytest.mark.skipif(not SHOP.is_dir(), reason="the sample shop documents are not there")
def test_the_sample_shop_loads_completely():
    report = load_paths([SHOP])
    assert report.errors == []
    assert sorted(report.sources) == sorted(p.name for p in SHOP.iterdir() if p.is_file())
    encodings = {d.metadata["source"]: d.metadata.get("encoding") for d in report.documents}
    assert "cp949" in encodings.values()  # the sample ships one CP949 file on purpose
    assert all("\ufffd" not in d.page_content for d in report.documents)


@pytest.mark.parametrize("name", ["a" * 300 + ".txt", "가" * 100 + ".md", "문서 " * 60 + ".csv"])
def test_over_long_upload_names_are_shortened_uniquely_and_remembered(workspace, name):
    from workbench.kb.documents import MAX_NAME_BYTES, original_name

    data = b"q,a\nx,y\n" if name.endswith(".csv") else "본문 text".encode()
    files = [(name, data), (name[:-8] + "Z" + name[-7:], data), ("ok.txt", b"fine")]
    written, errors = save_uploads(files, "vectorstore/uploads/c", workspace)
    assert errors == [] and len(written) == 3 and len({p.name for p in written}) == 3
    assert all(len(p.name.encode()) <= MAX_NAME_BYTES and p.suffix == Path(n).suffix for p, (n, _) in zip(written, files))
    assert original_name(written[0]) == name and original_name(written[2]) is None
    report = load_paths([workspace.root / "vectorstore/uploads/c"])
    assert report.errors == [] and {d.metadata.get("original_name") for d in report.documents} == {name, files[1][0], None}


def test_a_nul_in_an_upload_name_is_cleaned_not_a_crash(workspace):
    written, errors = save_uploads([("fa\x00q.txt", b"x"), ("\x00", b"x"), ("ok.txt", b"y")], "up", workspace)
    assert [p.name for p in written] == ["faq.txt", "ok.txt"]
    assert [e.message for e in errors] == [": refused, the name is not safe ('\\x00' is not a plain file name). Rename the file."]


def test_an_over_long_path_is_a_file_error_not_an_oserror(tmp_path):
    (tmp_path / "ok.txt").write_text("fine", encoding="utf-8")
    report = load_paths([tmp_path / ("a" * 300 + ".txt"), tmp_path / "ok.txt"])
    assert report.sources == ["ok.txt"]
    assert len(report.errors) == 1 and report.errors[0].message.endswith(": cannot be opened (File name too long). Rename or move it.")


def test_load_paths_warns_about_guessed_encodings_and_large_files(tmp_path, monkeypatch):
    from workbench.kb import documents

    monkeypatch.setattr(documents, "LARGE_FILE_BYTES", 1000)
    (tmp_path / "big.txt").write_text("문장입니다. " * 300, encoding="utf-8")
    (tmp_path / "greek.txt").write_bytes("Καλημέρα κόσμε, αυτό είναι ένα ελληνικό κείμενο για δοκιμή.".encode("cp1253"))
    (tmp_path / "menu.txt").write_bytes("Café crème brûlée naïve".encode("latin-1"))
    report = load_paths([tmp_path])
    assert report.errors == [] and sorted(report.sources) == ["big.txt", "greek.txt", "menu.txt"]
    warnings = {w.source: w.message for w in report.warnings}
    assert set(warnings) == {"big.txt", "greek.txt"}
    assert warnings["big.txt"].startswith("big.txt: 0.0 MB is large: about ") and "Cancel and split the file" in warnings["big.txt"]
    assert warnings["greek.txt"].startswith("greek.txt: not UTF-8; its encoding was guessed as ")
    menu = next(d for d in report.documents if d.metadata["source"] == "menu.txt")
    assert (menu.page_content, menu.metadata["encoding"]) == ("Café crème brûlée naïve", "latin-1")


def test_large_file_warning_says_chunks_and_time():
    from workbench.kb.documents import large_file_warning

    # ASCII: one byte a character
    assert large_file_warning("big.txt", 50 * 1024 * 1024, 50 * 1024 * 1024) == (
        "big.txt: 50.0 MB is large: about 104,857 chunks of 500 characters, roughly 87 min of embedding on a CPU "
        "(20 chunks/s). Cancel and split the file if that is too long.")
    # Korean: three bytes a syllable, a third of the chunks (issue #23: the estimate divided the bytes, ~2.6x too long)
    assert large_file_warning("큰.txt", 50 * 1024 * 1024, 50 * 1024 * 1024 // 3).startswith(
        "큰.txt: 50.0 MB is large: about 34,952 chunks of 500 characters, roughly 29 min of embedding")


def test_the_large_file_estimate_counts_the_characters_read(tmp_path, monkeypatch):
    from workbench.kb import documents

    monkeypatch.setattr(documents, "LARGE_FILE_BYTES", 1000)
    text = "가게는 아홉 시에 엽니다. " * 1000  # 15,000 characters, 36,000 bytes
    (tmp_path / "hours.txt").write_text(text, encoding="utf-8")
    (warning,) = load_paths([tmp_path / "hours.txt"]).warnings
    assert "about 30 chunks of 500 characters" in warning.message  # not 72 (the bytes over 500)


def _upload(folder, barrier, tag, results):  # a forked child: one upload with a long name per round
    from workbench.common.config import Workspace

    ws = Workspace(folder)
    for n in range(50):
        barrier.wait()
        written, errors = save_uploads([(f"{tag}{n}-{i}-" + "가" * 100 + ".txt", b"body") for i in range(10)],
                                       f"uploads/r{n}", ws)
        results.put((n, len(written), len(errors)))
        barrier.wait()


def test_two_uploads_into_one_folder_at_once_keep_both_original_names(tmp_path):
    """Issue #23: concurrent uploads lost `.names.json` entries (2 of 10 rounds). 50 rounds of two real processes
    saving ten long-named files each into one folder at the same moment."""
    import json
    import multiprocessing

    from workbench.common.config import Workspace

    ws = Workspace(tmp_path / "ws").ensure()
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_upload, args=(ws.root, barrier, tag, results)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in range(100)]
    for p in procs:
        p.join(30)
    assert all(w == 10 and e == 0 for _, w, e in got)
    for n in range(50):
        names = json.loads((ws.root / "uploads" / f"r{n}" / ".names.json").read_text(encoding="utf-8"))
        assert sorted(names.values()) == sorted(f"{tag}{n}-{i}-" + "가" * 100 + ".txt" for tag in "ab" for i in range(10)), \
            (n, len(names))
