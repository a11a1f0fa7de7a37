"""Files -> LangChain `Document`s: type and text-encoding detection, one clear error per bad file.

Supported: .txt .md (.markdown), .csv, .html (.htm), .pdf, .docx. Text files may be UTF-8, UTF-8
with a BOM, UTF-16 with a BOM, or CP949 / EUC-KR (the usual Korean Windows encodings; CP949 is a
superset of EUC-KR). One `Document` per file, except PDFs (one per page, metadata `page`) and CSVs
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
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from langchain_core.documents import Document

from workbench.config import Workspace
from workbench.errors import ConfigError, DocumentError
from workbench.progress import Progress
from workbench.textcodec import decode_text


FILE_TYPES: dict[str, str] = {
    ".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".csv": "csv",
    ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx",
}
SUPPORTED_SUFFIXES = tuple(FILE_TYPES)

@dataclasses.dataclass(frozen=True)
class FileError:
    """A file that could not be loaded, and why (the message names the file and the fix)."""

    source: str
    message: str


@dataclasses.dataclass
class LoadReport:
    """What `load_paths` read: the documents, the sources they came from, and the files it could not read."""

    documents: list[Document]
    sources: list[str]
    errors: list[FileError]


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
            f"Use one of {', '.join(SUPPORTED_SUFFIXES)}."
        )
    return FILE_TYPES[suffix]


def load_bytes(name: str, data: bytes, source: str | None = None) -> list[Document]:
    """Read one file's bytes as documents.

    Args:
        name: the file name (its suffix picks the reader).
        data: the file's content.
        source: the name the knowledge base keeps in metadata (defaults to `name`).

    Raises:
        DocumentError: unsupported type, binary or undecodable text, empty file, broken PDF or DOCX.
    """
    source = source or name
    kind = file_type(name)
    if not data.strip():
        raise DocumentError(f"{name}: the file is empty. Remove it from the upload or add text to it.")
    title = ""
    if kind == "pdf":
        docs, title = _read_pdf(name, data)
    elif kind == "docx":
        body, title = _read_docx(name, data)
        docs = [Document(page_content=body, metadata={})]
    else:
        text, encoding = decode_text(data, name)
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
        raise DocumentError(f"{name}: has no text in it (an empty {kind} file?). Remove it or add text to it.")
    for d in docs:
        d.metadata = {"source": source, "file_type": kind, **d.metadata}
    return docs


def load_file(path: str | Path, source: str | None = None) -> list[Document]:
    """Read one file from disk (see `load_bytes`).

    Raises:
        DocumentError: the file is missing or cannot be read (and everything `load_bytes` raises).
    """
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"{path}: no such file. Check the path.")
    file_type(path.name)  # an unsupported type fails before reading a possibly large file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror}).") from exc
    return load_bytes(path.name, data, source=source or path.name)


def _read_pdf(name: str, data: bytes) -> list[Document]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{name}: the PDF is password-protected. Save an unprotected copy and upload that.")
        pages = [(i + 1, page.extract_text() or "") for i, page in enumerate(reader.pages)]
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError, IndexError) as exc:
        # pypdf raises a mix of its own and builtin errors on damaged files.
        raise DocumentError(f"{name}: is not a readable PDF (damaged or not a PDF: {exc}). Export it again.") from exc
    docs = [Document(page_content=text, metadata={"page": number}) for number, text in pages if text.strip()]
    if not docs:
        raise DocumentError(f"{name}: the PDF has no text layer (a scan?). Run OCR on it first.")
    return docs, title


def _read_docx(name: str, data: bytes) -> tuple[str, str]:
    import zipfile

    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentError(f"{name}: is not a readable DOCX file ({exc}). Save it again as .docx.") from exc
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
        raise DocumentError(f"{name}: the CSV has a header but no rows. Add rows or remove the file.")
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
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in FILE_TYPES and not f.name.startswith("."):
                    out.append((f, f.relative_to(p).as_posix()))
        else:
            out.append((p, p.name))
    return out


def load_paths(paths: Sequence[str | Path], progress: Progress | None = None) -> LoadReport:
    """Read files and folders; a bad file is reported in `errors` and the others still load."""
    files = expand_paths(paths)
    report = LoadReport(documents=[], sources=[], errors=[])
    for i, (path, source) in enumerate(files):
        if progress:
            progress(f"reading {source}", i / max(len(files), 1))
        try:
            report.documents.extend(load_file(path, source=source))
            report.sources.append(source)
        except DocumentError as exc:
            report.errors.append(FileError(source, str(exc)))
    return report


def save_uploads(
    files: Iterable[tuple[str, bytes]], folder: str | Path, workspace: Workspace
) -> tuple[list[Path], list[FileError]]:
    """Write uploaded files under `folder` (relative to the workspace) without letting a name escape it.

    Returns:
        The written paths, and one `FileError` per file whose name was unsafe or unsupported.
    """
    base = workspace.inside(folder)
    written: list[Path] = []
    errors: list[FileError] = []
    for name, data in files:
        try:
            if not name or Path(name).is_absolute() or "\x00" in name:
                raise ConfigError(f"{name!r} is not a plain file name")
            file_type(name)
            target = workspace.inside(base.relative_to(workspace.root.resolve()) / name)
            if base not in target.parents:
                raise ConfigError(f"{name!r} points outside the upload folder")
        except ConfigError as exc:
            errors.append(FileError(name, f"{name}: refused, the name is not safe ({exc}). Rename the file."))
            continue
        except DocumentError as exc:
            errors.append(FileError(name, str(exc)))
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written, errors
