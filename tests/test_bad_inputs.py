"""Issue #14: bad input gives one line a user can act on (exit 2 from the CLI), never a traceback, never a run that
fails later, and never changes or loses what the workspace already holds.

Every case runs against a workspace seeded with one collection, one split dataset and one training run, and
compares their inventory before and after. CLI cases are real `python -m workbench` subprocesses; none of them
loads a model (the one embedding load happens once, to seed the template workspace).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, WorkbenchError
from workbench.dataset import alpaca
from workbench.dataset.alpaca import DatasetConfig, SplitConfig
from workbench.kb import ingest, vectordb
from workbench.kb.chunking import ChunkingConfig
from workbench.kb.documents import MAX_UPLOAD_MB, load_paths, save_uploads
from workbench.kb.retrieval import RetrievalConfig
from workbench.training.finetune import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
LONG_ASCII = "a" * 300 + ".txt"  # 304 bytes
LONG_HANGUL = "가" * 100 + ".txt"  # 304 bytes in UTF-8
FAQ_ROWS = [{"instruction": f"질문 {i}?", "input": "", "output": f"답변 {i}입니다."} for i in range(12)]


# --- a seeded workspace and its inventory ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Workspace:
    """One collection, one split dataset and one run, made once (the only model load of this file)."""
    from workbench.training.runs import create_run

    ws = Workspace(tmp_path_factory.mktemp("template") / "ws").ensure()
    ingest.ingest_documents([Document(page_content="현금과 카드 모두 받습니다. 주차는 두 시간 무료입니다.",
                                        metadata={"source": "faq.txt"})], "shop", ChunkingConfig(), workspace=ws)
    src = ws.root / "faq.json"
    src.write_text(json.dumps(FAQ_ROWS, ensure_ascii=False), encoding="utf-8")
    alpaca.import_dataset(src, DatasetConfig(name="faq", tokenizer=""), workspace=ws)
    alpaca.split_dataset("faq", SplitConfig(test_size=0.2), workspace=ws)
    create_run(TrainConfig(dataset="faq", max_steps=1), ws)
    return ws


@pytest.fixture()
def ws(workspace, template) -> Workspace:
    """The `workspace` fixture (a fresh WORKBENCH_HOME) holding a copy of the template's collection, dataset and run."""
    for part in ("vectorstore", "datasets", "runs"):
        shutil.copytree(template.root / part, workspace.root / part, dirs_exist_ok=True, symlinks=True)
    return workspace


def inventory(ws: Workspace) -> dict[str, list]:
    """What must not change: collections with their chunks, datasets with their rows and splits, runs with their state."""
    from workbench.training.runs import list_runs

    return {
        "collections": sorted((c.name, c.chunks, c.documents) for c in vectordb.list_collections(ws)),
        "datasets": sorted((d.name, d.rows, json.dumps(d.split, sort_keys=True, default=str)) for d in alpaca.list_datasets(ws)),
        "runs": sorted((r.id, r.state) for r in list_runs(ws)),
    }


@pytest.fixture()
def unchanged(ws):
    """Asserts after the test that the workspace still holds exactly what it held before."""
    before = inventory(ws)
    assert before["collections"] == [("shop", 1, 1)] and len(before["datasets"]) == 1 and len(before["runs"]) == 1
    yield ws
    assert inventory(ws) == before


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


# --- documents ------------------------------------------------------------------------------------------------

WESTERN = "Café crème brûlée naïve"
DOCUMENTS = [
    # (file name, bytes, expected error prefix or None, expected text, expected encoding)
    ("latin1.txt", WESTERN.encode("latin-1"), None, WESTERN, "latin-1"),
    ("cp1252.txt", (WESTERN + " – 5 €").encode("cp1252"), None, WESTERN + " – 5 €", "cp1252"),
    ("le.txt", "Hello UTF-16 without a BOM\n".encode("utf-16-le"), None, "Hello UTF-16 without a BOM\n", "utf-16-le"),
    ("be.md", "# 제목\n본문은 UTF-16 BE입니다.\n".encode("utf-16-be"), None, "# 제목\n본문은 UTF-16 BE입니다.\n", "utf-16-be"),
    ("ko.txt", "현금으로 결제가 가능한가요? 네.".encode("cp949"), None, "현금으로 결제가 가능한가요? 네.", "cp949"),
    ("bom.txt", "\ufeffUTF-8 with a BOM".encode("utf-8"), None, "UTF-8 with a BOM", "utf-8-sig"),
    # issue #23: short Shift-JIS text was stored as Hangul mojibake (밲궼돺렄…) with only a note
    ("sjis.txt", "店は何時に開きますか".encode("cp932"), None, "店は何時に開きますか", "shift_jis"),
    ("logo.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "logo.txt: looks like a binary file, not text", None, None),
    ("empty.txt", b"  \n", "empty.txt: the file is empty.", None, None),
    ("tool.exe", b"MZ", "tool.exe: file type '.exe' is not supported.", None, None),
    ("broken.pdf", b"%PDF-1.4 not really", "broken.pdf: is not a readable PDF", None, None),
    ("broken.docx", b"PK not a zip", "broken.docx: is not a readable DOCX file", None, None),
    ("header.csv", b"question,answer\n", "header.csv: the CSV has a header but no rows.", None, None),
]


@pytest.mark.parametrize("name,data,error,text,encoding", DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_documents_decode_right_or_fail_alone(unchanged, tmp_path, name, data, error, text, encoding):
    (tmp_path / name).write_bytes(data)
    (tmp_path / "good.txt").write_text("a good file in the same batch", encoding="utf-8")
    report = load_paths([tmp_path / name, tmp_path / "good.txt"])
    assert "good.txt" in report.sources  # one bad file never stops the batch
    if error:
        assert [e.source for e in report.errors] == [name] and report.errors[0].message.startswith(error)
        assert "\n" not in report.errors[0].message
    else:
        doc = next(d for d in report.documents if d.metadata["source"] == name)
        assert report.errors == [] and doc.metadata["encoding"] == encoding
        assert doc.page_content == text


@pytest.mark.parametrize("name", [LONG_ASCII, LONG_HANGUL, "missing.txt"])
def test_paths_that_cannot_be_opened_are_file_errors(unchanged, tmp_path, name):
    report = load_paths([tmp_path / name])
    assert report.documents == [] and len(report.errors) == 1
    message = report.errors[0].message
    assert message.endswith(("cannot be opened (File name too long). Rename or move it.", "no such file. Check the path."))
    assert len(message) < 200  # the 300-character name is cut in the message


def _encrypted_pdf(text: str, user_password: str) -> bytes:
    """A one-page PDF with `text`, AES-256 encrypted (an empty user password: it opens without one)."""
    import io

    from pypdf import PdfReader, PdfWriter
    from test_documents import make_pdf

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([text]))))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _docx_bomb(megabytes: int) -> bytes:
    """A DOCX whose document.xml holds one text node of `megabytes` MB: about 0.2 MB zipped."""
    import io
    import zipfile

    import docx

    plain = io.BytesIO()
    d = docx.Document()
    d.add_paragraph("PLACEHOLDER")
    d.save(plain)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "word/document.xml":
                data = data.replace(b"PLACEHOLDER", b"A" * (megabytes * 1024 * 1024))
            z.writestr(info.filename, data)
    return out.getvalue()


def test_pdfs_and_docx_that_ended_in_a_traceback_cost_only_themselves(unchanged, tmp_path):
    """Issue #23: an AES-encrypted PDF (even with an empty password) and a DOCX that inflates to 200 MB ended the whole
    batch in a traceback (pypdf's DependencyError, lxml's XMLSyntaxError)."""
    files = {"open.pdf": _encrypted_pdf("Parking is free for two hours", ""),
             "locked.pdf": _encrypted_pdf("Secret prices", "secret"),
             "bomb.docx": _docx_bomb(200),
             "good.txt": "a good file in the same batch".encode()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    report = load_paths([tmp_path / name for name in files])
    assert report.sources == ["open.pdf", "good.txt"]
    assert [d.page_content for d in report.documents if d.metadata["source"] == "open.pdf"] == [
        "Parking is free for two hours"]
    errors = {e.source: e.message for e in report.errors}
    assert errors["locked.pdf"] == "locked.pdf: the PDF is password-protected. Save an unprotected copy and upload that."
    assert re.fullmatch(r"bomb\.docx: unpacks to 20\d MB of XML, more than the 100 MB a document may have \(a zip bomb, "
                        r"or not a real document\)\. Split it, or save its text as \.txt\.", errors["bomb.docx"])
    assert all(e.message_ko and "\n" not in e.message for e in report.errors)


# --- names of uploads -----------------------------------------------------------------------------------------

UPLOAD_NAMES = [
    # (uploaded name, stored name or None when refused, message prefix when refused)
    (LONG_ASCII, "a" * 238 + "-", None),
    (LONG_HANGUL, "가" * 79 + "-", None),
    ("가" * 84 + ".md", "가" * 84 + ".md", None),  # 255 bytes: kept as is
    ("fa\x00q.txt", "faq.txt", None),
    ("line\nbreak.md", "linebreak.md", None),
    ("\x00", None, ": refused, the name is not safe"),
    ("", None, ": refused, the name is not safe"),
    ("../../escape.txt", None, "../../escape.txt: refused, the name is not safe"),
    ("/etc/escape.txt", None, "/etc/escape.txt: refused, the name is not safe"),
    ("a" * 300 + ".exe", None, "a" * 40 + "…" + "a" * 36 + ".exe: file type '.exe' is not supported."),
]


@pytest.mark.parametrize("name,stored,error", UPLOAD_NAMES, ids=[f"name{i}" for i in range(len(UPLOAD_NAMES))])
def test_upload_names_are_stored_safely_and_the_batch_survives(unchanged, name, stored, error):
    written, errors = save_uploads([("before.txt", b"one"), (name, b"body"), ("after.txt", b"two")],
                                   "vectorstore/uploads/shop", unchanged)
    names = [p.name for p in written]
    assert names[0] == "before.txt" and names[-1] == "after.txt"  # the rest of the batch is written
    assert all(len(n.encode()) <= 255 for n in names)
    if stored is None:
        assert len(written) == 2 and len(errors) == 1 and errors[0].message.startswith(error)
    else:
        assert errors == [] and len(written) == 3 and names[1].startswith(stored)
        report = load_paths(written)
        assert report.errors == [] and len(report.sources) == 3


# --- configs, from files, --set and pages ---------------------------------------------------------------------

CONFIGS = [
    (ChunkingConfig, {"chunk_size": "big"}, "ChunkingConfig.chunk_size = 'big' is not a whole number."),
    (ChunkingConfig, {"chunk_size": 0}, "ChunkingConfig.chunk_size = 0 is below the minimum 1."),
    (ChunkingConfig, {"chunk_overlap": 2.5}, "ChunkingConfig.chunk_overlap = 2.5 is not a whole number."),
    (ChunkingConfig, {"splitter": "words"}, "ChunkingConfig.splitter = 'words' is not one of"),
    (ChunkingConfig, {"chunk_size": None}, "ChunkingConfig.chunk_size is empty (null)."),
    (TrainConfig, {"max_steps": "abc"}, "TrainConfig.max_steps = 'abc' is not a whole number."),
    (TrainConfig, {"eval_steps": "abc"}, "TrainConfig.eval_steps = 'abc' is not a whole number."),
    (TrainConfig, {"max_steps": None}, "TrainConfig.max_steps is empty (null)."),
    (TrainConfig, {"learning_rate": "abc"}, "TrainConfig.learning_rate = 'abc' is not a number."),
    (TrainConfig, {"learning_rate": math.nan}, "TrainConfig.learning_rate = nan is not a finite number."),
    (TrainConfig, {"learning_rate": "inf"}, "TrainConfig.learning_rate = 'inf' is not a finite number."),
    (TrainConfig, {"lora_r": 1.5}, "TrainConfig.lora_r = 1.5 is not a whole number."),
    (TrainConfig, {"lora_r": "1.5"}, "TrainConfig.lora_r = '1.5' is not a whole number."),
    (TrainConfig, {"target_modules": 5}, "TrainConfig.target_modules = 5 is not a list."),
    (TrainConfig, {"target_modules": []}, "TrainConfig.target_modules is empty."),
    (TrainConfig, {"num_train_epochs": True}, "TrainConfig.num_train_epochs = True is not a number."),
    (TrainConfig, {"use_rslora": "maybe"}, "TrainConfig.use_rslora = 'maybe' is not true or false."),
    (TrainConfig, {"dataset": ["faq"]}, "TrainConfig.dataset = ['faq'] is not text."),
    (TrainConfig, {"base_model": ""}, "TrainConfig.base_model is empty."),
    (TrainConfig, {"backend": "gpu"}, "TrainConfig.backend = 'gpu' is not one of"),
    (TrainConfig, {"seed": -1}, "TrainConfig.seed = -1 is below the minimum 0."),
    (TrainConfig, {"lerning_rate": 1e-4}, "TrainConfig has no setting 'lerning_rate'."),
    (RetrievalConfig, {"k": "many"}, "RetrievalConfig.k = 'many' is not a whole number."),
    (RetrievalConfig, {"lambda_mult": math.inf}, "RetrievalConfig.lambda_mult = inf is not a finite number."),
    (RetrievalConfig, {"filter": "source=faq.md"}, "RetrievalConfig.filter = 'source=faq.md' is not a mapping."),
    (DatasetConfig, {"max_tokens": "long"}, "DatasetConfig.max_tokens = 'long' is not a whole number."),
    (DatasetConfig, {"encoding": "latin9"}, "DatasetConfig.encoding = 'latin9' is not one of"),
    (SplitConfig, {"test_size": "10%"}, "SplitConfig.test_size = '10%' is not a number."),
]


@pytest.mark.parametrize("cls,values,message", CONFIGS, ids=[f"{c[0].__name__}-{next(iter(c[1]))}" for c in CONFIGS])
def test_configs_are_type_checked_before_anything_starts(unchanged, cls, values, message):
    with pytest.raises(ConfigError) as e:
        cls.from_dict(values)
    assert one_line(e.value).startswith(message)


# --- metadata filters -----------------------------------------------------------------------------------------

FILTERS = [
    ({"$foo": 1}, "RetrievalConfig.filter: '$foo' is not an operator Chroma knows here."),
    ({"source": {"$regex": "^faq"}}, "RetrievalConfig.filter.source: '$regex' is not a Chroma filter operator."),
    ({"source": {"$in": []}}, "RetrievalConfig.filter.source: $in needs a non-empty list of values, got []."),
    ({"source": {"$contains": "faq"}}, "RetrievalConfig.filter.source: '$contains' is not a Chroma filter operator."),
    ({"chunk_index": {"$gt": "2"}}, 'RetrievalConfig.filter.chunk_index: $gt compares numbers, got "2".'),
    ({"source": "faq.txt", "file_type": "text"}, "RetrievalConfig.filter has 2 keys"),
    ({"$or": [{"source": "faq.txt"}]}, "RetrievalConfig.filter: $or needs a list of at least two conditions"),
    ({"source": None}, "RetrievalConfig.filter.source = null is not text, a number or true/false."),
]


@pytest.mark.parametrize("where,message", FILTERS, ids=[json.dumps(f[0])[:30] for f in FILTERS])
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_invalid_filters_are_explained_before_chroma_sees_them(unchanged, where, message, mode):
    with pytest.raises(ConfigError) as e:
        RetrievalConfig.from_dict({"mode": mode, "filter": where})
    assert one_line(e.value).startswith(message)


# --- datasets -------------------------------------------------------------------------------------------------

DATASETS = [
    ("rows.jsonl", b'{"instruction": "q", "output": "a"}\n{"instruction": "q2", "output": \n',
     "rows.jsonl, line 2: not valid JSON"),
    ("bin.csv", bytes(range(256)) * 8, "bin.csv: looks like a binary file, not text"),
    ("empty.json", b"[]", "holds no rows. Check the file."),
    ("table.xlsx", b"PK", "table.xlsx: unsupported file type .xlsx."),
    ("missing.csv", None, "is neither an existing file or folder nor a Hub dataset id"),
    # issue #23: one unquoted comma shifted the row (its question lost), exit 0
    ("shifted.csv", b"instruction,output\nCan I pay cash?,Yes, cash is fine.\n",
     "shifted.csv: line 2 has more cells (3) than the header (2: instruction, output)"),
    # issue #23: 100,000 levels of nesting ended in a RecursionError traceback
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "deep.json: the JSON is nested too deeply to read"),
    ("deep.jsonl", b'{"instruction": "q", "output": "a"}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n",
     "deep.jsonl, line 2: the JSON is nested too deeply to read"),
]


@pytest.mark.parametrize("name,data,message", DATASETS, ids=[d[0] for d in DATASETS])
def test_bad_dataset_files_import_nothing(unchanged, tmp_path, name, data, message):
    if data is not None:
        (tmp_path / name).write_bytes(data)
    with pytest.raises(WorkbenchError) as e:
        alpaca.import_dataset(tmp_path / name, DatasetConfig(name="new", tokenizer=""), workspace=unchanged)
    assert message in one_line(e.value)


def test_an_existing_dataset_is_not_replaced_by_a_bad_import(unchanged, tmp_path):
    (tmp_path / "faq.csv").write_text("instruction,output\nq,a\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        alpaca.import_dataset(tmp_path / "faq.csv", DatasetConfig(name="faq", tokenizer=""), workspace=unchanged)
    assert one_line(e.value).startswith("Dataset 'faq' already exists.")


# --- the CLI: real `python -m workbench` processes ------------------------------------------------------------


def _file(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


CLI = [
    # (id, argv with {tmp} for the test's folder, files to write first, expected last stderr line prefix)
    ("ingest-config-type", ["ingest", "{tmp}/a.txt", "--collection", "shop", "--config", "{tmp}/chunk.json"],
     {"a.txt": "text", "chunk.json": '{"chunk_size": "big"}'}, "error: ChunkingConfig.chunk_size = 'big' is not a whole number."),
    ("ingest-config-yaml", ["ingest", "{tmp}/a.txt", "--collection", "shop", "--config", "{tmp}/chunk.yaml"],
     {"a.txt": "text", "chunk.yaml": "chunk_overlap: 1.5\n"}, "error: ChunkingConfig.chunk_overlap = 1.5 is not a whole number."),
    ("ingest-config-broken", ["ingest", "{tmp}/a.txt", "--collection", "shop", "--config", "{tmp}/chunk.json"],
     {"a.txt": "text", "chunk.json": '{"chunk_size": '}, "error: Config file"),
    ("ingest-chunk-size", ["ingest", "{tmp}/a.txt", "--collection", "shop", "--chunk-size", "-5"],
     {"a.txt": "text"}, "error: ChunkingConfig.chunk_size = -5 is below the minimum 1."),
    ("ingest-long-ascii", ["ingest", "{tmp}/" + LONG_ASCII, "--collection", "shop", "--quiet"], {},
     "error: None of the 1 file(s) could be read; nothing was ingested."),
    ("ingest-long-hangul", ["ingest", "{tmp}/" + LONG_HANGUL, "--collection", "shop", "--quiet"], {},
     "error: None of the 1 file(s) could be read; nothing was ingested."),
    ("ingest-binary", ["ingest", "{tmp}/logo.txt", "--collection", "new", "--quiet"],
     {"logo.txt": b"\x89PNG" + bytes(range(256)) * 4}, "error: None of the 1 file(s) could be read; nothing was ingested."),
    ("train-max-steps-abc", ["train", "--dataset", "faq", "--set", "max_steps=abc"], {},
     "error: TrainConfig.max_steps = 'abc' is not a whole number."),
    ("train-eval-steps-abc", ["train", "--dataset", "faq", "--set", "eval_steps=abc"], {},
     "error: TrainConfig.eval_steps = 'abc' is not a whole number."),
    ("train-max-steps-null", ["train", "--dataset", "faq", "--set", "max_steps=null"], {},
     "error: TrainConfig.max_steps is empty (null)."),
    ("train-lr-abc", ["train", "--dataset", "faq", "--set", "learning_rate=abc"], {},
     "error: TrainConfig.learning_rate = 'abc' is not a number."),
    ("train-lr-nan", ["train", "--dataset", "faq", "--set", "learning_rate=NaN"], {},
     "error: TrainConfig.learning_rate = nan is not a finite number."),
    ("train-lora-r", ["train", "--dataset", "faq", "--set", "lora_r=1.5"], {},
     "error: TrainConfig.lora_r = 1.5 is not a whole number."),
    ("train-target-modules", ["train", "--dataset", "faq", "--set", "target_modules=5"], {},
     "error: TrainConfig.target_modules = 5 is not a list."),
    ("train-epochs-true", ["train", "--dataset", "faq", "--set", "num_train_epochs=true"], {},
     "error: TrainConfig.num_train_epochs = True is not a number."),
    ("train-no-equals", ["train", "--dataset", "faq", "--set", "max_steps"], {},
     "error: --set 'max_steps' must look like key=value"),
    ("train-unknown-key", ["train", "--dataset", "faq", "--set", "max_step=3"], {},
     "error: TrainConfig has no setting 'max_step'."),
    ("train-config-file", ["train", "--config", "{tmp}/train.json"], {"train.json": '{"dataset": "faq", "learning_rate": "fast"}'},
     "error: TrainConfig.learning_rate = 'fast' is not a number."),
    ("train-missing-model", ["train", "--dataset", "faq", "--base-model", "no-such-model"], {},
     "error: 'no-such-model' is neither a registered model"),
    ("train-missing-folder", ["train", "--dataset", "faq", "--base-model", "{tmp}/no-model"], {},
     "error: '{tmp}/no-model' is neither a registered model"),
    ("train-uncached-hub-id", ["train", "--dataset", "faq", "--base-model", "someone/not-cached"], {},
     "error: Cannot use base model 'someone/not-cached' (not in the local cache)"),
    ("search-filter-foo", ["search", "현금", "--collection", "shop", "--filter", '{"$foo": 1}'], {},
     "error: RetrievalConfig.filter: '$foo' is not an operator Chroma knows here."),
    ("search-filter-regex", ["search", "현금", "--collection", "shop", "--filter", '{"source": {"$regex": "faq"}}'], {},
     "error: RetrievalConfig.filter.source: '$regex' is not a Chroma filter operator."),
    ("search-filter-empty-in", ["search", "현금", "--collection", "shop", "--filter", '{"source": {"$in": []}}'], {},
     "error: RetrievalConfig.filter.source: $in needs a non-empty list of values"),
    ("search-filter-not-json", ["search", "현금", "--collection", "shop", "--filter", "source=faq.txt"], {},
     "error: --filter 'source=faq.txt' is not JSON"),
    ("search-lambda-nan", ["search", "현금", "--collection", "shop", "--lambda-mult", "nan"], {},
     "error: RetrievalConfig.lambda_mult = nan is not a finite number."),
    ("search-k-zero", ["search", "현금", "--collection", "shop", "--k", "0"], {},
     "error: RetrievalConfig.k = 0 is below the minimum 1."),
    ("ask-empty", ["ask", ""], {}, "error: The question is empty."),
    ("ask-blank", ["ask", "   "], {}, "error: The question is empty."),
    ("dataset-import-missing", ["dataset", "import", "{tmp}/nope.csv", "--name", "new"], {},
     "error: '{tmp}/nope.csv' is neither an existing file or folder nor a Hub dataset id"),
    ("dataset-import-binary", ["dataset", "import", "{tmp}/bin.csv", "--name", "new"], {"bin.csv": bytes(range(256)) * 4},
     "error: {tmp}/bin.csv: looks like a binary file, not text"),
    ("dataset-import-exists", ["dataset", "import", "{tmp}/qa.csv", "--name", "faq", "--tokenizer", ""],
     {"qa.csv": "instruction,output\nq,a\n"}, "error: Dataset 'faq' already exists. Choose another name"),
    ("dataset-import-shifted-row", ["dataset", "import", "{tmp}/qa.csv", "--name", "new", "--tokenizer", ""],
     {"qa.csv": "instruction,output\nCan I pay cash?,Yes, cash is fine.\n"},
     "error: {tmp}/qa.csv: line 2 has more cells (3) than the header"),
    ("retrieval-config-unknown-key", ["retrieval-config", "shop", "--set", "foo=1"], {},
     "error: A collection saves only the settings mode, fetch_k, lambda_mult, lexical_weight, scale; not foo."),
    ("retrieval-config-k", ["retrieval-config", "shop", "--set", "k=3"], {},
     "error: A collection saves only the settings mode, fetch_k, lambda_mult, lexical_weight, scale; not k (k and filter"),
    ("dataset-import-max-tokens", ["dataset", "import", "{tmp}/qa.csv", "--name", "new", "--max-tokens", "-1"],
     {"qa.csv": "instruction,output\nq,a\n"}, "error: DatasetConfig.max_tokens = -1 is below the minimum 0."),
]


def run_cli(argv: list[str], ws: Workspace) -> subprocess.CompletedProcess:
    env = {k: v for k, v in __import__("os").environ.items() if k != "WORKBENCH_ALLOW_PATHS"}
    env.update(WORKBENCH_HOME=str(ws.root), HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "workbench", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("argv,files,expected", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_bad_input_is_one_line_and_exit_2(unchanged, tmp_path, argv, files, expected):
    for name, content in files.items():
        _file(tmp_path, name, content)
    tmp = str(tmp_path)
    proc = run_cli([a.replace("{tmp}", tmp) for a in argv], unchanged)
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert lines and lines[-1].startswith(expected.replace("{tmp}", tmp)), proc.stderr
    assert all(line.startswith(("error: ", "skipped: ", "note: ", "warning: ", "[")) for line in lines), proc.stderr
    if argv[0] == "ingest" and "could be read" in expected:
        assert any(line.startswith("skipped: ") for line in lines)  # the file's own reason, on one line
    if argv[0] == "train":
        assert proc.stdout == ""  # no run id: nothing was started


# --- server settings ------------------------------------------------------------------------------------------


def test_streamlit_settings_are_safe_for_a_plain_streamlit_run():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["client"]["showErrorDetails"] in ("none", False)
    assert cfg["server"]["maxUploadSize"] == MAX_UPLOAD_MB


# --- a collection's retrieval settings, edited by hand ---------------------------------------------------------

BAD_SETTINGS = [
    ("[1, 2]", 'it is not a JSON object with "settings": {...}.'),
    ('{"settings": ["hybrid"]}', 'it is not a JSON object with "settings": {...}.'),
    ('{"settings": {"mode": "fast"}}', "it holds an invalid setting: RetrievalConfig.mode = 'fast' is not one of"),
    ('{"settings": {"lexical_weight": "x"}}', "it holds an invalid setting: RetrievalConfig.lexical_weight = 'x' is not"),
    ('{"settings": ', "it is not readable JSON."),
    ("[" * 100_000 + "]" * 100_000, "it is not readable JSON."),
]


@pytest.mark.parametrize("content,problem", BAD_SETTINGS, ids=[f"settings{i}" for i in range(len(BAD_SETTINGS))])
def test_a_hand_edited_retrieval_settings_file_is_named_and_can_be_cleared(unchanged, content, problem):
    """Issue #23: `vectorstore/<name>.retrieval.json` of the wrong shape crashed every search of the collection."""
    from workbench.kb.retrieval import RetrievalConfig, collection_config, retrieve, save_retrieval

    save_retrieval("shop", {"mode": "dense"}, unchanged)
    path = next(unchanged.vectorstore.glob("*.retrieval.json"))
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        collection_config("shop", unchanged)
    assert one_line(e.value).startswith(f"The saved retrieval settings of collection 'shop' ({path}) are not usable: "
                                        f"{problem}")
    assert str(e.value).endswith("Fix the file, or remove it with `workbench retrieval-config shop --clear` (the "
                                 "defaults then apply).") and e.value.ko
    if content == BAD_SETTINGS[0][0]:  # the CLI once (a process costs ~1.5 s): a search says it, --clear clears it
        proc = run_cli(["search", "현금", "--collection", "shop"], unchanged)
        assert proc.returncode == 2 and proc.stderr.startswith("error: The saved retrieval settings of collection 'shop'")
        assert run_cli(["retrieval-config", "shop", "--clear"], unchanged).returncode == 0
    else:
        save_retrieval("shop", None, unchanged)  # what --clear does
    assert not path.exists()
    assert retrieve("shop", "현금", RetrievalConfig(mode="dense", k=1), unchanged)[0].metadata["source"] == "faq.txt"


# --- a full disk: a real small file system that fills up (issue #23) ---------------------------------------------


@pytest.fixture()
def small_ws(template, tmp_path):
    """The template's collection, dataset and run in a workspace on a real 8 MiB file system of its own."""
    from conftest import MODEL_CACHE, small_disk

    with small_disk(tmp_path / "disk", 8192) as disk:
        ws = Workspace(disk / "ws").ensure()
        for part in ("vectorstore", "datasets", "runs"):
            shutil.copytree(template.root / part, ws.root / part, dirs_exist_ok=True, symlinks=True)
        ws.models.rmdir()
        ws.models.symlink_to(MODEL_CACHE.resolve(), target_is_directory=True)
        yield ws


QA_ROWS = "instruction,output\n" + "".join(f"질문 {i}번은 무엇인가요?,답변 {i}번은 이것입니다.\n" for i in range(3000))
HOURS = "".join(f"{i}번 매장은 아홉 시에 열고 밤 열 시에 닫습니다. 주차는 두 시간 무료입니다.\n" for i in range(300))
FULL_DISK = [
    # (id, argv, files, bytes left free, expected last stderr line prefix)
    ("import-replace", ["dataset", "import", "{tmp}/qa.csv", "--name", "faq", "--force", "--tokenizer", ""], {"qa.csv": QA_ROWS},
     0, "error: Saving dataset 'faq': the disk is full ({ws}/datasets). Nothing changed: dataset 'faq' is kept as it was."),
    ("import-new", ["dataset", "import", "{tmp}/qa.csv", "--name", "new", "--tokenizer", ""], {"qa.csv": QA_ROWS}, 0,
     "error: Saving dataset 'new': the disk is full ({ws}/datasets). Nothing was saved: no dataset 'new' was created."),
    ("validate-fix", ["dataset", "validate", "faq", "--fix"], {}, 0,
     "error: Saving the rows of dataset 'faq': the disk is full ({ws}/datasets/faq). Nothing changed: the dataset keeps "
     "its 12 rows as they were."),
    ("split", ["dataset", "split", "faq", "--seed", "7", "--test-size", "0.2"], {}, 0,
     "error: Splitting dataset 'faq': the disk is full ({ws}/datasets/faq). Nothing changed: the previous split (seed 42,"),
    ("ingest-open", ["ingest", "{tmp}/hours.txt", "--collection", "shop", "--quiet"], {"hours.txt": HOURS}, 0,
     "error: Opening the knowledge base: the disk is full ({ws}/vectorstore). Nothing was changed in it."),
    ("ingest", ["ingest", "{tmp}/hours.txt", "--collection", "shop", "--quiet"], {"hours.txt": HOURS}, 32 * 1024,
     "error: Ingesting into collection 'shop': the disk is full ({ws}/vectorstore). The collection keeps every chunk it "
     "had (0 of "),
]


@pytest.mark.parametrize("argv,files,leave,expected", [c[1:] for c in FULL_DISK], ids=[c[0] for c in FULL_DISK])
def test_a_full_disk_is_one_line_that_says_what_was_kept(small_ws, tmp_path, argv, files, leave, expected):
    """Before: a raw ENOSPC traceback. The workspace holds exactly what it held before, and works once space is freed."""
    from conftest import fill_disk

    for name, content in files.items():
        _file(tmp_path, name, content)
    before = inventory(small_ws)
    filler = fill_disk(small_ws.root.parent, leave)
    try:
        proc = run_cli([a.replace("{tmp}", str(tmp_path)) for a in argv], small_ws)
    finally:
        filler.unlink()
    assert "Traceback" not in proc.stderr and proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(expected.replace("{ws}", str(small_ws.root))), proc.stderr
    assert line.endswith("Free some space and try again."), line
    assert inventory(small_ws) == before
    assert [p.name for p in small_ws.datasets.rglob(".*") if not p.name.endswith(".lock")] == []  # no half-written files
    proc = run_cli([a.replace("{tmp}", str(tmp_path)) for a in argv], small_ws)  # with space again, it works
    assert proc.returncode == 0, proc.stderr


# --- an encoding that is not clear (issue #23) ----------------------------------------------------------------------


def test_an_unclear_cjk_encoding_is_a_warning_and_the_user_can_choose_it(unchanged, tmp_path):
    """EUC-JP kanji are CP949 Hangul byte for byte: the guess is said as a warning (the report's warnings, which the
    pages show, and a `warning:` line of the CLI), and --encoding reads it right."""
    (tmp_path / "tokyo.txt").write_bytes("東京都です".encode("euc_jp"))
    report = load_paths([tmp_path / "tokyo.txt"])
    assert [w.message.split(";")[0] for w in report.warnings] == ["tokyo.txt: the text encoding is not clear"]
    assert report.warnings[0].message_ko.startswith("tokyo.txt: 텍스트 인코딩이 분명하지 않습니다.")
    assert load_paths([tmp_path / "tokyo.txt"], encoding="euc-jp").documents[0].page_content == "東京都です"
    (tmp_path / "qa.csv").write_bytes("instruction,output\n東京都です,はい\n".encode("euc_jp"))
    proc = run_cli(["dataset", "import", str(tmp_path / "qa.csv"), "--name", "jp", "--tokenizer", ""], unchanged)
    assert proc.returncode == 0 and f"warning: {tmp_path / 'qa.csv'}: the text encoding is not clear" in proc.stderr
    assert json.loads(proc.stdout)["encoding_warning"].startswith(f"{tmp_path / 'qa.csv'}: the text encoding is not clear")
    proc = run_cli(["dataset", "import", str(tmp_path / "qa.csv"), "--name", "jp", "--tokenizer", "", "--force",
                    "--encoding", "euc-jp"], unchanged)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert alpaca.load_rows("jp", unchanged)[0]["instruction"] == "東京都です"
    alpaca.delete_dataset("jp", unchanged)  # the workspace holds what it held
