"""The batch evaluation: every row of a test split answered by every chosen source, scored, and reported.

`run_evaluation` answers the rows through `workbench.answers.answer` (the same prompts as the Compare page and `workbench
ask`), scores the answers (`workbench.compare.metrics`, the optional `workbench.compare.judge`) and writes `progress.jsonl`,
`results.csv` (one line per row and source, appended as it goes), `summary.json`, `report.md` and `report.html`
(`workbench.compare.report`) into its folder: `runs/<run>/eval/<id>/`, or `evals/<id>/` for an evaluation without a training
run. `start_evaluation` runs it as a child process (`workbench evaluate --from-dir DIR`), like training.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.answers.answer import API_SOURCES, FT_SOURCES, RAG_SOURCES, source_label
from workbench.common.config import Workspace
from workbench.common.errors import NotFoundError, OfflineError
from workbench.common.progress import Progress, no_progress
from workbench.common.runfiles import now_iso, write_text
from workbench.common.texts import Text, both
from workbench.compare.eval_config import (  # noqa: F401
    CONFIG_FILE,
    DEFAULT_EVAL_K,
    LOG_FILE,
    PROGRESS_FILE,
    STATUS_FILE,
    EvalConfig,
    evals_root,
    list_evaluations,
)
from workbench.compare.metrics import embedding_similarity, retrieval_hit, score_answer
from workbench.compare.report import REPORT_HTML, REPORT_MD, RESULTS_FILE, SUMMARY_FILE, summarize, write_report  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.embeddings import Embeddings

    from workbench.answers.inference import GenerationResult, Generator

RESULT_COLUMNS = [
    "row", "source", "question", "reference", "answer", "exact_match", "char_f1", "rouge_l", "embedding_similarity",
    "judge", "retrieval_hit", "prompt_tokens", "completion_tokens", "latency_s", "tokens_per_s", "retrieval_s",
    "stopped", "retrieved", "chunk_id", "ref_source", "prompt",
]


# --- the evaluation's files: the folder layout is workbench.compare.eval_config's; the report's files report's ---

_now = now_iso  # one clock (UTC) for every file


def check_evaluation(config: EvalConfig, workspace: Workspace | None = None) -> None:
    """Fail early, before a folder or a process exists, when the dataset split, run, adapter or collection is missing.

    Raises:
        NotFoundError: what is missing, and how to make it.
    """
    from workbench.dataset.alpaca import load_split

    ws = workspace or Workspace.default()
    load_split(config.dataset, config.split, ws)  # type: ignore[arg-type]
    if config.run_id:
        run = _run_info(config.run_id, ws)
        if FT_SOURCES & set(config.sources) and not config.adapter_dir and run.adapter_dir is None:
            raise NotFoundError(f"Run {config.run_id} has no adapter yet. Wait for training to finish, or drop ft / ft_rag.",
                                ko=f"실행 {config.run_id}에는 아직 어댑터가 없습니다. 학습이 끝나기를 기다리거나 "
                                   f"파인튜닝 / 파인튜닝 + RAG를 빼세요.")
    if config.adapter_dir and not (Path(config.adapter_dir) / "adapter_config.json").is_file():
        raise NotFoundError(f"{config.adapter_dir} has no adapter_config.json: it is not a LoRA adapter folder.",
                            ko=f"{config.adapter_dir}에 adapter_config.json이 없습니다: LoRA 어댑터 폴더가 아닙니다.")
    if RAG_SOURCES & set(config.sources):
        from workbench.kb.vectordb import collection_info

        collection_info(config.collection, ws)


def load_results(folder: str | Path) -> list[dict[str, Any]]:
    """The per-row results (results.csv) with numbers parsed; empty cells become None."""
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return [_parse_result(r) for r in csv.DictReader(f)]


def load_summary(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def split_id(dataset: str, workspace: Workspace | None = None) -> str | None:
    """What identifies a dataset's current split: when it was made (a new split, a new seed, new rows: a new id)."""
    from workbench.dataset.alpaca import dataset_info

    try:
        split = dataset_info(dataset, workspace).split
    except NotFoundError:
        return None
    return str(split.get("created")) if split else None


def find_baseline(config: EvalConfig, base_model: str, base_template: str, workspace: Workspace | None = None,
                  exclude: Path | None = None) -> dict[str, Any] | None:
    """The latest finished where-you-start evaluation (no training run: base and base + RAG) of the same dataset split,
    base model and prompt rule as `config`, with the same collection for base + RAG: {"folder", "created", "results"};
    None when there is none.

    "The same split" is the split's creation time recorded in both summaries: a re-split makes old evaluations stale.
    """
    ws = workspace or Workspace.default()
    current = split_id(config.dataset, ws)
    if current is None:
        return None
    found = None
    for folder in list_evaluations(ws, ""):
        summary = load_summary(folder) if folder != exclude else None
        if not summary or summary.get("cancelled"):
            continue
        cfg = summary["config"]
        same = (cfg.get("dataset") == config.dataset and cfg.get("split") == config.split and not cfg.get("run_id")
                and summary.get("split_id") == current and summary.get("base_model") == base_model
                and summary.get("base_template") == base_template
                and ("rag" not in summary["sources"] or cfg.get("collection") == config.collection))
        if same and (found is None or summary["created"] > found[1]["created"]):
            found = (folder, summary)
    if found is None:
        return None
    return {"folder": str(found[0]), "created": found[1]["created"], "results": load_results(found[0])}


_NUMERIC = {"exact_match", "char_f1", "rouge_l", "embedding_similarity", "judge", "latency_s", "tokens_per_s", "retrieval_s"}
_INTS = {"row", "prompt_tokens", "completion_tokens"}


def _parse_result(r: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in r.items():
        if v is None or v == "":
            out[k] = None if (k in _NUMERIC or k in _INTS or k == "retrieval_hit") else (v or "")
        elif k in _INTS:
            out[k] = int(float(v))
        elif k in _NUMERIC:
            out[k] = float(v)
        elif k == "retrieval_hit":
            out[k] = v in ("1", "True", "true", "1.0")
        else:
            out[k] = v
    return out


# --- the batch evaluation ------------------------------------------------------------------------------------


def _run_info(run_id: str, workspace: Workspace) -> Any:
    from workbench.training.runs import get_run

    return get_run(run_id, workspace)


def _dir_size(path: Path | None) -> int:
    if path is None or not Path(path).is_dir():
        return 0
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin"))


class _Log:
    """progress.jsonl and results.csv of one evaluation, written as it goes (results block by block)."""

    def __init__(self, out: Path, total: int, report: Progress) -> None:
        for name in (PROGRESS_FILE, RESULTS_FILE):
            (out / name).unlink(missing_ok=True)
        self.total, self.done, self.report = total, 0, report
        self.judge_failed = ""  # the judge's first failure, reported once and in the summary's warnings
        self._csv = (out / RESULTS_FILE).open("w", encoding="utf-8", newline="")
        self._progress = (out / PROGRESS_FILE).open("a", encoding="utf-8")
        self._writer = csv.DictWriter(self._csv, fieldnames=RESULT_COLUMNS)
        self._writer.writeheader()
        self._csv.flush()

    def __call__(self, message: str, **extra: Any) -> None:
        fraction = self.done / self.total if self.total else 1.0
        self._progress.write(json.dumps({"time": _now(), "done": self.done, "total": self.total,
                                         "fraction": round(fraction, 4), **both(message), **extra},
                                        ensure_ascii=False) + "\n")
        self._progress.flush()
        self.report(message, fraction)

    def results(self, records: Sequence[Mapping[str, Any]]) -> None:
        for r in records:
            self._writer.writerow({k: _csv_value(r.get(k)) for k in RESULT_COLUMNS})
        self._csv.flush()

    def close(self) -> None:
        self._csv.close()
        self._progress.close()


def answer_setup(config: EvalConfig, ws: Workspace, run: Any, generator: "Generator | None", report: Progress) -> Any:
    """The answer sources' setup: `workbench.answers.answer.prepare` from the config (the same path as the Compare page)."""
    from workbench.answers.answer import EndpointAnswerer, prepare

    sources = list(config.sources)
    endpoint = (EndpointAnswerer(config.endpoint_base_url, config.endpoint_model)
                if API_SOURCES & set(sources) else None)
    if generator is None and any(s not in API_SOURCES for s in sources):
        report(Text(f"Loading {config.base_model or (run.config.base_model if run is not None else 'the base model')}",
                    f"{config.base_model or (run.config.base_model if run is not None else '기본 모델')} 불러오는 중"), 0.0)
    return prepare(sources, ws, run=run, adapter_dir=config.adapter_dir, base_model=config.base_model,
                   template=config.prompt_template, collection=config.collection, retrieval=config.retrieval_config(ws),
                   rag_template=config.rag_template, lang=config.lang, endpoint=endpoint, generator=generator)


def _retrieve_all(rows: Sequence[Mapping[str, Any]], sources: Sequence[str], setup: Any, log: _Log,
                  cancel: threading.Event | None) -> tuple[list[dict[str, Any]], bool]:
    """One item per row, with its chunks retrieved once (rag, ft_rag and api_rag read the same chunks)."""
    from workbench.answers.answer import Item, retrieve_context

    rag_used = bool(RAG_SOURCES & set(sources))
    items: list[dict[str, Any]] = []
    for i, row in enumerate(rows, 1):
        question, row_input = str(row.get("instruction") or ""), str(row.get("input") or "")
        item = Item(question, row_input, [])
        retrieval_s = None
        if rag_used:
            if cancel is not None and cancel.is_set():
                return items, True
            chunks, seconds = retrieve_context(setup, question, row_input)
            item.chunks, retrieval_s = chunks, round(seconds, 4)
            if i % 10 == 0 or i == len(rows):
                log(Text(f"Retrieved context for {i}/{len(rows)} rows",
                         f"{i}/{len(rows)}개 행의 문맥을 검색함"))
        items.append({"i": i, "row": row, "item": item, "reference": str(row.get("output") or ""),
                      "retrieval_s": retrieval_s, "hit": retrieval_hit(row, item.chunks)})
    return items, False


def _record(entry: Mapping[str, Any], source: str, res: "GenerationResult") -> dict[str, Any]:
    """One line of results.csv: the answer, its text scores, its cost and what was retrieved for it."""
    rag = source in RAG_SOURCES
    item, row = entry["item"], entry["row"]
    return {
        "row": entry["i"], "source": source, "question": item.question, "reference": entry["reference"],
        "answer": res.text, **score_answer(res.text, entry["reference"]), "embedding_similarity": None, "judge": None,
        "retrieval_hit": entry["hit"] if rag else None, "prompt_tokens": res.prompt_tokens,
        "completion_tokens": res.completion_tokens, "latency_s": res.latency_s, "tokens_per_s": res.tokens_per_s,
        "retrieval_s": entry["retrieval_s"] if rag else None, "stopped": res.stopped,
        "retrieved": json.dumps([{"source": Path(str(c.metadata.get("source", ""))).name, "chunk_id": c.metadata.get("chunk_id"),
                                  "score": round(float(c.score), 4)} for c in item.chunks], ensure_ascii=False) if rag else "",
        "chunk_id": str(row.get("chunk_id") or ""), "ref_source": str(row.get("source") or ""), "prompt": res.prompt,
    }


def _answer_all(items: list[dict[str, Any]], config: EvalConfig, setup: Any, log: _Log, judge: Any,
                embeddings: "Embeddings | None", cancel: threading.Event | None) -> tuple[list[dict[str, Any]], bool]:
    """Every item answered by every source, scored, and written to results.csv block by block.

    Rows go in blocks of batch_size, longest prompts first (similar lengths share a batch: little padding; a batch
    too big for memory fails at once). Within a block every source answers all its rows in one batch
    (`answer.answer_block`), so the adapter is switched once per block and source, not per row.
    """
    from workbench.answers.answer import answer_block, prompt_for

    sources, settings, size = list(config.sources), config.generation_config(), config.batch_size

    def prompt_length(entry: dict[str, Any]) -> int:
        it = entry["item"]
        longest = max((prompt_for(setup, s, it.question, it.row_input, it.chunks)[2] for s in sources), key=len)
        if setup.generator is None:
            return len(longest)
        return len(setup.generator.tokenizer(longest, add_special_tokens=False)["input_ids"])

    ordered = sorted(items, key=prompt_length, reverse=True) if size > 1 else items
    results: list[dict[str, Any]] = []
    for start in range(0, len(ordered), size):
        block = ordered[start:start + size]
        answers: dict[tuple[int, str], Any] = {}
        for source in sources:
            if cancel is not None and cancel.is_set():
                break
            # said before the source answers, so the status names what runs now, not what just finished
            numbers = sorted(e["i"] for e in block)
            en, ko = source_label(source, "en"), source_label(source, "ko")
            log(Text(f"Row {numbers[0]}/{len(items)}: answering with {en}" if len(block) == 1 else
                     f"Rows {start + 1}-{start + len(block)} of {len(items)}, longest prompts first: answering with {en}",
                     f"{numbers[0]}/{len(items)}행: {ko}(으)로 답하는 중" if len(block) == 1 else
                     f"{len(items)}행 중 {start + 1}-{start + len(block)}행, 긴 프롬프트부터: {ko}(으)로 답하는 중"),
                rows=numbers, source=source)
            res = answer_block([e["item"] for e in block], source, setup, settings, batch_size=size)
            answers.update({(e["i"], source): r for e, r in zip(block, res)})
            log.done += len(block)
        records = [_record(e, s, answers[e["i"], s]) for e in sorted(block, key=lambda x: x["i"]) for s in sources
                   if (e["i"], s) in answers]
        for r in records:
            if judge is not None:
                r["judge"] = _judge(judge, r, log)
        if embeddings is not None and records:
            sims = embedding_similarity([r["answer"] for r in records], [r["reference"] for r in records], embeddings)
            for r, sim in zip(records, sims):
                r["embedding_similarity"] = sim
        log.results(records)
        results.extend(records)
        if cancel is not None and cancel.is_set():
            return results, True
    return results, False


def _judge(judge: Any, record: Mapping[str, Any], log: _Log) -> int | None:
    """The judge's score of one answer; an endpoint that fails (after its retries) leaves it missing, not the run."""
    try:
        return judge.judge(record["question"], record["reference"], record["answer"]).score
    except OfflineError as exc:
        if not log.judge_failed:
            log.judge_failed = str(exc)
            log(Text(f"The judge failed; its scores are missing from here on where it keeps failing: {exc}",
                     f"심사 모델이 실패했습니다. 계속 실패하는 곳부터는 점수가 비어 있습니다: {exc}"))
        return None


def run_evaluation(
    config: EvalConfig,
    out_dir: str | Path,
    workspace: Workspace | None = None,
    progress: Progress | None = None,
    *,
    generator: "Generator | None" = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
    embeddings: "Embeddings | None" = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Answer every row with every source, score the answers, and write the report files into `out_dir`.

    `generator`, `rows` and `embeddings` may be passed in (already loaded); otherwise they are loaded from
    the config. Setting `cancel` stops after the current batch; the report then covers the rows done.

    Returns:
        The summary (also written to summary.json).

    Raises:
        NotFoundError: dataset, split, run, adapter or collection missing.
        OfflineError: an endpoint (judge, api source) cannot be reached.
    """
    from workbench.compare.judge import LLMJudge
    from workbench.dataset.alpaca import load_split

    ws = workspace or Workspace.default()
    report = progress or no_progress
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = list(config.sources)
    rows_from_split = rows is None
    rows = list(rows) if rows is not None else load_split(config.dataset, config.split, ws)  # type: ignore[arg-type]
    rows = rows[: config.limit] if config.limit else rows
    if not rows:
        raise NotFoundError(f"The {config.split} split of {config.dataset!r} has no rows. Split the dataset with a test share > 0.",
                            ko=f"{config.dataset!r}의 {config.split} split에 행이 없습니다. 테스트 비율을 0보다 "
                               f"크게 해서 데이터셋을 분할하세요.")
    run = _run_info(config.run_id, ws) if config.run_id else None
    setup = answer_setup(config, ws, run, generator, report)
    judge = LLMJudge(config.judge_base_url, config.judge_model, retries=config.judge_retries) if config.judge_base_url else None
    if embeddings is None and config.embedding_model:
        from workbench.kb.embeddings import load_embeddings

        report(Text(f"Loading the embedding model {config.embedding_model}",
                    f"임베딩 모델 {config.embedding_model} 불러오는 중"), 0.0)
        embeddings = load_embeddings(config.embedding_model)

    t_start = time.perf_counter()
    log = _Log(out, len(rows) * len(sources), report)
    try:
        items, cancelled = _retrieve_all(rows, sources, setup, log, cancel)
        results: list[dict[str, Any]] = []
        if not cancelled:
            log(Text(f"Answering {len(rows)} rows with {', '.join(sources)}"
                + (f", {config.batch_size} answers per batch" if setup.generator is not None and config.batch_size > 1 else ""),
                     f"{len(rows)}개 행에 {', '.join(source_label(s, 'ko') for s in sources)}(으)로 답하는 중" + (f", 배치당 {config.batch_size}개" if setup.generator is not None and config.batch_size > 1 else "")))
            results, cancelled = _answer_all(items, config, setup, log, judge, embeddings, cancel)
        log(Text("Cancelled: the report covers the rows answered so far" if cancelled else "Scoring done",
                 "취소됨: 보고서는 지금까지 답한 행만 담습니다" if cancelled else "채점 완료"))
    finally:
        log.close()

    # results.csv was appended block by block (longest prompts first); the final file reads in row order.
    order = {s: n for n, s in enumerate(sources)}
    results.sort(key=lambda r: (r["row"], order[r["source"]]))
    _write_results(out / RESULTS_FILE, results)
    summary = _summary(results, config, setup, run, ws, out, cancelled=cancelled, rows_total=len(rows),
                       seconds=time.perf_counter() - t_start, judge_failed=log.judge_failed, from_split=rows_from_split)
    write_report(out, summary, results)
    report(Text("Report written",
                "보고서를 썼습니다"), 1.0)
    return summary


def _summary(results: list[dict[str, Any]], config: EvalConfig, setup: Any, run: Any, ws: Workspace, out: Path, *,
             cancelled: bool, rows_total: int, seconds: float, judge_failed: str, from_split: bool) -> dict[str, Any]:
    """The summary of a finished (or cancelled) evaluation: `report.summarize` with what this run knows besides the
    answers (templates, training time, adapter size, the where-you-start baseline, the freshness re-ingest time), and
    what identifies it for later comparisons (the split, the base model)."""
    from workbench.compare.freshness import reingest_seconds

    sources = list(config.sources)
    adapter_dir = Path(setup.generator.adapters[setup.adapter].path) if setup.adapter else None
    warnings = setup.warnings + ([Text(f"The LLM judge failed, so some judge scores are missing: {judge_failed}",
                                      f"LLM 심사가 실패해 일부 심사 점수가 없습니다: {judge_failed}")]
                                 if judge_failed else [])
    base_model = setup.generator.base_model if setup.generator is not None else ""
    baseline = (find_baseline(config, base_model, setup.base_template, ws, exclude=out)
                if FT_SOURCES & set(sources) else None)
    summary = summarize(results, config, sources=sources, cancelled=cancelled, rows_total=rows_total, seconds=seconds,
                        template=setup.template, base_template=setup.base_template, warnings=warnings,
                        train_seconds=(run.status or {}).get("train_seconds") if run is not None else None,
                        adapter_bytes=_dir_size(adapter_dir) if FT_SOURCES & set(sources) else None, baseline=baseline,
                        reingest_seconds=reingest_seconds(config.collection, ws) if config.collection else None)
    summary["split_id"] = split_id(config.dataset, ws) if from_split else None
    summary["base_model"] = base_model
    summary["retrieval"] = setup.retrieval.to_dict() if RAG_SOURCES & set(sources) else None  # what the RAG sources got
    summary["ft_rag_context"] = setup.context  # a run trained with context: the prompt rule its ft_rag answers used
    return summary


def _write_results(path: Path, results: Sequence[Mapping[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS)
    writer.writeheader()
    for r in results:
        writer.writerow({k: _csv_value(r.get(k)) for k in RESULT_COLUMNS})
    write_text(path, buf.getvalue())


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return int(v)
    return v


