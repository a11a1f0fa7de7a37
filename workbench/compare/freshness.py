"""Knowledge freshness: change a fact in a document, re-ingest it, and ask again; measured, not only shown.

RAG reads the documents at question time and follows a changed fact at once; a fine-tuned model learned the old
fact into its weights and keeps it until it is trained again. The sample shop's edit (the ice cream moves from
aisle 3 to aisle 5) is data, in `examples/freshness/shop_ice_cream.json`; any other edit is a `FactEdit`.

The measurement: the demo's `FactCheck`s are questions whose answer states the old fact or the new one (marker texts,
"3번 통로" / "5번 통로"). `ask_checks` asks each of them of every source, before and after the change, and says of each
answer which fact it states (`fact_in`) and which fact its retrieved context held; `measure` then counts, per
source, the answers that follow the new fact after the change, and flags an answer that states the old fact although
retrieval gave it the new one (a fine-tuned model overriding its context). `save_measure` keeps the result, with the
seconds the re-ingest took, beside the edited copies; the evaluation report reads them back as the cost of absorbing
a document change (`reingest_seconds`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.common.config import PROJECT_DIR, Workspace
from workbench.common.errors import ConfigError, NotFoundError
from workbench.common.progress import Progress
from workbench.common.runfiles import now_iso, write_json

if TYPE_CHECKING:  # pragma: no cover
    from workbench.answers.answer import AnswerSetup
    from workbench.answers.inference import GenerationConfig


@dataclasses.dataclass(frozen=True)
class FactEdit:
    """Replace `old` by `new` in the document `file` (its name in the collection)."""

    file: str
    old: str
    new: str


DEMO_FILE = PROJECT_DIR / "examples" / "freshness" / "shop_ice_cream.json"


@dataclasses.dataclass(frozen=True)
class FactCheck:
    """A question (per language) whose answer states the changed fact: `old` and `new` are the texts that say it
    ("3번 통로", "aisle 3"), matched without spaces and case, and not as part of a longer number."""

    questions: dict[str, str]
    old: tuple[str, ...]
    new: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class FreshnessDemo:
    """A prepared experiment: where the original documents are, the edits, the question to ask (per language), and
    the checks that measure it."""

    source_dir: Path
    edits: tuple[FactEdit, ...]
    questions: dict[str, str]
    checks: tuple[FactCheck, ...] = ()


def load_demo(path: str | Path = DEMO_FILE) -> FreshnessDemo:
    """Read a demo file (`examples/freshness/*.json`: documents folder relative to the file, questions, edits).

    Raises:
        NotFoundError: no such file. ConfigError: it is not a demo file.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"The freshness demo file {path} does not exist.",
                            ko=f"최신성 데모 파일 {path}이(가) 없습니다.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        edits = tuple(FactEdit(str(e["file"]), str(e["old"]), str(e["new"])) for e in data["edits"])
        checks = tuple(FactCheck(dict(c["questions"]), tuple(map(str, c["old"])), tuple(map(str, c["new"])))
                       for c in data.get("checks", ()))
        return FreshnessDemo((path.parent / data["documents"]).resolve(), edits, dict(data["questions"]), checks)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a freshness demo file ({exc.__class__.__name__}: {exc}): it needs "
                          f"documents, questions and edits (file, old, new).",
                          ko=f"{path}은(는) 최신성 데모 파일이 아닙니다 ({exc.__class__.__name__}: {exc}): documents, "
                             f"questions, edits(file, old, new)가 있어야 합니다.") from exc


def freshness_dir(collection: str, workspace: Workspace | None = None) -> Path:
    """Where the edited copies of a collection's documents are kept (`freshness/<collection>/`)."""
    ws = workspace or Workspace.default()
    return ws.root / "freshness" / re.sub(r"[^\w.-]", "_", collection)


def change_facts(
    collection: str,
    edits: Sequence[FactEdit],
    source_dir: str | Path,
    workspace: Workspace | None = None,
    progress: Progress | None = None,
    *,
    background: bool = False,
) -> dict[str, Any]:
    """Apply `edits` to copies of the documents from `source_dir` and re-ingest them into `collection`.

    The copies keep their file names, so ingestion replaces the old chunks of each document. Applying the
    same edits twice changes nothing more (a document already holding the new text is left as it is).
    The collection's own chunking settings and embedding model are used.

    Edits of documents the collection does not hold are skipped (listed in "skipped"), so that the experiment
    never adds documents to it.

    With `background`, the re-ingest is a job on the runner (`workbench.kb.ingest_jobs`): the result then holds its
    folder under "job" instead of "added" / "removed", which the job's report gives when it is done.

    Returns:
        {"files": changed file names, "skipped": file names, "replacements": count, "added": chunks,
         "removed": chunks, "seconds": of the re-ingest, "folder": path} (or "job": folder instead of added / removed /
         seconds)

    Raises:
        NotFoundError: the collection, or a document of an edit, does not exist.
        ConfigError: a document contains neither the old nor the new text of an edit.
    """
    from workbench.common.textcodec import decode_text
    from workbench.kb.vectordb import collection_info, list_documents

    ws = workspace or Workspace.default()
    info = collection_info(collection, ws)
    present = {Path(d.source).name for d in list_documents(collection, ws)}
    skipped = sorted({e.file for e in edits if e.file not in present})
    edits = [e for e in edits if e.file in present]  # never add a document the collection did not hold
    if not edits:
        raise ConfigError(f"Collection {collection!r} holds none of {', '.join(skipped) or 'the edited documents'}. "
                          f"Ingest the documents first (the sample shop: Knowledge base page), or edit other files.",
                          ko=f"컬렉션 {collection!r}에는 {', '.join(skipped) or '고친 문서'} 중 아무것도 없습니다. "
                             f"먼저 문서를 넣거나(예제 상점: 지식 베이스 페이지) 다른 파일을 고치세요.")
    folder = freshness_dir(collection, ws)
    folder.mkdir(parents=True, exist_ok=True)
    texts: dict[str, str] = {}
    replacements = 0
    for edit in edits:
        if edit.file not in texts:
            current = folder / edit.file
            original = Path(source_dir) / edit.file
            path = current if current.is_file() else original
            if not path.is_file():
                raise NotFoundError(f"{edit.file} is neither in {source_dir} nor in {folder}: the fact cannot be changed.",
                                    ko=f"{edit.file}이(가) {source_dir}에도 {folder}에도 없어 사실을 바꿀 수 "
                                       f"없습니다.")
            texts[edit.file] = decode_text(path.read_bytes(), edit.file)[0]
        text = texts[edit.file]
        if edit.old and edit.old in text:
            replacements += text.count(edit.old)
            texts[edit.file] = text.replace(edit.old, edit.new)
        elif edit.new not in text:
            raise ConfigError(f"{edit.file} does not contain {edit.old!r}. Copy the exact text from the document.",
                              ko=f"{edit.file}에 {edit.old!r}이(가) 없습니다. 문서의 문장을 그대로 복사하세요.")
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return {"files": sorted(texts), "skipped": skipped, "replacements": replacements, "folder": str(folder),
            **_reingest([folder / n for n in texts], collection, info, ws, progress, background)}


def restore_facts(collection: str, files: Sequence[str], source_dir: str | Path, workspace: Workspace | None = None,
                  progress: Progress | None = None, *, background: bool = False) -> dict[str, Any]:
    """Re-ingest the original documents (undo `change_facts`) and delete the edited copies (`background`: as a job,
    as in `change_facts`)."""
    from workbench.kb.vectordb import collection_info

    ws = workspace or Workspace.default()
    info = collection_info(collection, ws)
    paths = [Path(source_dir) / f for f in files]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise NotFoundError(f"The original documents {', '.join(missing)} are missing: they cannot be restored.",
                            ko=f"원래 문서 {', '.join(missing)}이(가) 없어 되돌릴 수 없습니다.")
    result = _reingest(paths, collection, info, ws, progress, background)
    for f in files:  # the originals are what is ingested now: the edited copies are done with
        (freshness_dir(collection, ws) / f).unlink(missing_ok=True)
    return {"files": list(files), **result}


def _reingest(paths: Sequence[Path], collection: str, info: Any, ws: Workspace, progress: Progress | None,
              background: bool) -> dict[str, Any]:
    """Ingest `paths` with the collection's own chunking: here ({"added", "removed"}) or as a job ({"job": folder})."""
    from workbench.kb.chunking import ChunkingConfig

    chunking = ChunkingConfig(**info.splitter) if info.splitter else None
    if background:
        from workbench.kb.ingest_jobs import start_ingest

        return {"job": str(start_ingest(paths, collection, chunking, None, ws))}
    from workbench.kb.ingest import ingest_paths

    report = ingest_paths(paths, collection, chunking, None, ws, progress)
    return {"added": report.added, "removed": report.removed, "seconds": round(report.seconds, 2)}


# --- the measurement -----------------------------------------------------------------------------------------------

Fact = Literal["new", "old", "both", "neither"]


def _says(text: str, marker: str) -> bool:
    """`marker` in `text`, spaces and case ignored, not inside a longer number ("aisle 3" is not in "aisle 35")."""
    t, m = re.sub(r"\s+", "", text).lower(), re.sub(r"\s+", "", marker).lower()
    if not m:
        return False
    return re.search(("(?<![0-9])" if m[0].isdigit() else "") + re.escape(m) + ("(?![0-9])" if m[-1].isdigit() else ""),
                     t) is not None


def fact_in(text: str, check: FactCheck) -> Fact:
    """Which fact `text` states: the new one, the old one, both, or neither."""
    old, new = any(_says(text, m) for m in check.old), any(_says(text, m) for m in check.new)
    return "both" if old and new else "new" if new else "old" if old else "neither"


def ask_checks(setup: "AnswerSetup", sources: Sequence[str], checks: Sequence[FactCheck], lang: str,
               settings: "GenerationConfig") -> list[dict[str, Any]]:
    """Every check's question (in `lang`, else English) asked of every source through the one answer path
    (`answer.answer_block`, batched per source): one record per question and source with the answer, the fact it
    states, and the fact its retrieved context held (RAG sources; "" for the others).

    Raises:
        ConfigError: a source lacks what it needs.
    """
    from workbench.answers.answer import RAG_SOURCES, Item, answer_block, retrieve_context

    items, context = [], []
    for check in checks:
        question = check.questions.get(lang) or check.questions.get("en") or next(iter(check.questions.values()))
        chunks = retrieve_context(setup, question)[0] if RAG_SOURCES & set(sources) else []
        items.append(Item(question, "", chunks))
        context.append(fact_in("\n".join(c.text for c in chunks), check) if chunks else "")
    records = []
    for source in sources:
        for check, item, ctx, res in zip(checks, items, context, answer_block(items, source, setup, settings)):
            records.append({"question": item.question, "source": source, "answer": res.text,
                            "fact": fact_in(res.text, check), "context": ctx if source in RAG_SOURCES else ""})
    return records


def measure(before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per source: how many answers stated the old fact before the change, and the new one after it; and the answers
    that state the old fact after the change although their retrieved context held the new one (`stale`), the
    sign of a fine-tuned model that overrides what retrieval gives it."""
    out: dict[str, Any] = {}
    for source in dict.fromkeys(r["source"] for r in [*before, *after]):
        b = [r for r in before if r["source"] == source]
        a = [r for r in after if r["source"] == source]
        out[source] = {
            "questions": len(a), "old_before": sum(r["fact"] in ("old", "both") for r in b),
            "new_after": sum(r["fact"] == "new" for r in a), "old_after": sum(r["fact"] in ("old", "both") for r in a),
            "stale": [r["question"] for r in a if r["fact"] in ("old", "both") and r["context"] in ("new", "both")],
        }
    return out


def measure_path(collection: str, workspace: Workspace | None = None) -> Path:
    """Where a collection's last freshness measurement is kept: beside its edited copies."""
    folder = freshness_dir(collection, workspace)
    return folder.with_name(folder.name + ".measure.json")


def save_measure(collection: str, before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]],
                 reingest_seconds: float | None, workspace: Workspace | None = None, **extra: Any) -> dict[str, Any]:
    """Write a freshness measurement (the answers before and after, the per-source counts, the re-ingest's seconds)."""
    record = {"created": now_iso(), "collection": collection, "reingest_seconds": reingest_seconds,
              "summary": measure(before, after), "before": list(before), "after": list(after), **extra}
    path = measure_path(collection, workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    return record


def load_measure(collection: str, workspace: Workspace | None = None) -> dict[str, Any] | None:
    """The last freshness measurement of `collection` (None if there is none, or it cannot be read)."""
    try:
        data = json.loads(measure_path(collection, workspace).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def reingest_seconds(collection: str, workspace: Workspace | None = None) -> float | None:
    """The seconds the last measured freshness change took to re-ingest `collection`'s changed documents."""
    data = load_measure(collection, workspace)
    value = (data or {}).get("reingest_seconds")
    return float(value) if isinstance(value, (int, float)) else None
