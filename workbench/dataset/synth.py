"""Generating Alpaca rows from knowledge-base chunks with an LLM (the tutorial's "make 500 Q/A pairs with GPT").

The core, `generate_rows`, takes plain `(chunk_id, text, source)` items, so it works with any chunk
source and is testable without a vector store. For each chunk it asks the model for N question /
answer pairs as JSON, parses the reply robustly (code fences, text around the JSON, truncated JSON),
retries with a corrective message when nothing usable came back, and stops at the target count, on
cancel, or when the chunks run out. Every row keeps the id and source of its chunk.

Two providers:

- `openai`: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio, `transformers serve`)
  through the `openai` package; base URL, model name and key (local servers need none);
- `anthropic`: Anthropic's Messages API through the `anthropic` package.

API keys come from the caller or the environment (OPENAI_API_KEY / ANTHROPIC_API_KEY). They are
held in memory only: configs, meta.json, results and error messages never contain them.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

from workbench.common.config import BaseConfig, Workspace, setting
from workbench.common.errors import ConfigError, GenerationError, NotFoundError, OfflineError
from workbench.common.progress import Progress, no_progress
from workbench.common.texts import Text
from workbench.models.endpoints import Endpoint, EndpointRequestError, short


class SourceChunk(NamedTuple):
    """One piece of the knowledge base to write questions about."""

    chunk_id: str
    text: str
    source: str = ""


DEFAULT_PROMPTS = {
    "en": (
        "You write training data for a customer-service assistant.\n"
        "Read the document below and write {n} question and answer pairs that a customer could ask about it. "
        "Answer only with facts from the document.\n"
        'Reply with a JSON array only, no other text: [{"question": "...", "answer": "..."}]\n\n'
        "Document ({source}):\n{chunk}"
    ),
    "ko": (
        "당신은 고객 상담 챗봇의 학습 데이터를 만듭니다.\n"
        "아래 문서를 읽고 고객이 물어볼 만한 질문과 답변 {n}쌍을 한국어로 만드세요. "
        "답변에는 문서에 있는 사실만 쓰세요.\n"
        '다른 설명 없이 JSON 배열만 출력하세요: [{"question": "...", "answer": "..."}]\n\n'
        "문서 ({source}):\n{chunk}"
    ),
}
RETRY_MESSAGES = {
    "en": 'That was not a usable JSON array. Reply again with only a JSON array of {n} objects like [{"question": "...", "answer": "..."}].',
    "ko": '사용할 수 있는 JSON 배열이 아니었습니다. [{"question": "...", "answer": "..."}] 형식의 객체 {n}개로 된 JSON 배열만 다시 출력하세요.',
}
_QUESTION_KEYS = ("question", "instruction", "q", "질문", "query", "prompt")
_ANSWER_KEYS = ("answer", "output", "a", "답변", "답", "response")
_CONSECUTIVE_REQUEST_FAILURES = 3


@dataclasses.dataclass
class SynthConfig(BaseConfig):
    """How rows are generated from chunks. The API key is deliberately not a setting (never saved)."""

    provider: Literal["openai", "anthropic"] = setting(
        "openai", "openai: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, LM Studio, transformers serve); anthropic: Claude.",
        help_ko="openai: OpenAI 호환 엔드포인트 (OpenAI, vLLM, Ollama, LM Studio, transformers serve); anthropic: Claude.",
        label="Provider", label_ko="제공자",
        widget="radio",
        choice_labels={
            "openai": ("OpenAI-compatible", "OpenAI 호환"),
            "anthropic": ("Anthropic (Claude)", "Anthropic (Claude)"),
        })
    base_url: str = setting("http://127.0.0.1:8000/v1", "Endpoint base URL (OpenAI: https://api.openai.com/v1; empty for Anthropic's default).",
                            help_ko="엔드포인트 기본 URL (OpenAI: https://api.openai.com/v1; Anthropic 기본값은 비워 두세요).",
                            label="Base URL", label_ko="기본 URL")
    model: str = setting("", "Model name as the endpoint knows it (gpt-4o-mini, claude-sonnet-4-5, a folder for transformers serve).",
                         help_ko="엔드포인트가 아는 모델 이름 (gpt-4o-mini, claude-sonnet-4-5, transformers serve는 폴더 경로).",
                         label="Model", label_ko="모델")
    n_target: int = setting(500, "How many rows to produce in total (the tutorial: about 500).",
                            help_ko="만들 행의 총 개수 (튜토리얼: 약 500).", min=1, max=100000,
                            label="Target rows", label_ko="목표 행 수", step=50)
    pairs_per_chunk: int = setting(3, "Question / answer pairs asked for per chunk.", help_ko="청크마다 요청할 질문/답변 쌍의 수.", min=1, max=50,
                                   label="Pairs per chunk", label_ko="청크당 쌍")
    language: Literal["ko", "en"] = setting("ko", "Language of the default prompt and of the questions.", help_ko="기본 프롬프트와 질문의 언어.",
                                            label="Language", label_ko="언어")
    prompt: str = setting("", "Prompt template with {chunk}, {n} and {source}; empty: the default of the language.",
                          help_ko="{chunk}, {n}, {source}가 들어간 프롬프트; 비우면 해당 언어의 기본 프롬프트.",
                          label="Prompt", label_ko="프롬프트", widget="text_area")
    max_tokens: int = setting(1024, "Most tokens the model may write per request.", help_ko="요청마다 모델이 쓸 수 있는 최대 토큰 수.", min=16, max=32768,
                              label="Max tokens per reply", label_ko="응답당 최대 토큰", step=64)
    temperature: float = setting(0.7, "Sampling temperature for OpenAI-compatible endpoints (some servers need more to sample, "
                                 "see extra_body; Anthropic's current SDK takes none).",
                                 help_ko="OpenAI 호환 엔드포인트의 샘플링 온도 (서버에 따라 extra_body 설정이 더 필요; Anthropic SDK는 받지 않음).",
                                 min=0.0, max=2.0, label="Temperature", label_ko="온도", step=0.05, widget="slider")
    retries: int = setting(2, "Extra attempts per chunk when the reply holds no usable JSON.",
                           help_ko="응답에 쓸 수 있는 JSON이 없을 때 청크마다 다시 시도할 횟수.", min=0, max=10,
                           label="Retries per chunk", label_ko="청크당 재시도")
    timeout_s: float = setting(120.0, "Seconds to wait for one reply.", help_ko="응답 하나를 기다릴 시간(초).", min=1.0, max=3600.0,
                               label="Timeout (seconds)", label_ko="제한 시간 (초)", step=10.0)
    extra_body: str = setting("", "Extra JSON fields for the request, server-specific (e.g. transformers serve sampling: "
                              '{"generation_config": "{\\"do_sample\\": true}"}).',
                              help_ko="요청에 추가할 JSON 필드 (서버별 설정).", label="Extra request JSON", label_ko="추가 요청 JSON")

    def validate(self) -> None:
        super().validate()
        if self.prompt and "{chunk}" not in self.prompt:
            raise ConfigError("SynthConfig.prompt must contain {chunk} (where the chunk text goes). Add it, or leave the prompt empty for the default.",
                              ko="SynthConfig.prompt에는 {chunk}(청크 텍스트가 들어갈 자리)가 있어야 합니다. "
                                 "넣거나, 기본값을 쓰려면 프롬프트를 비우세요.")
        if self.extra_body:
            try:
                if not isinstance(json.loads(self.extra_body), dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                raise ConfigError(f"SynthConfig.extra_body must be a JSON object ({exc}). Example: {{\"top_k\": 40}}.",
                                  ko=f"SynthConfig.extra_body는 JSON 객체여야 합니다 ({exc}). 예: {{\"top_k\": "
                                     f"40}}.") from exc
        if self.provider == "openai" and not self.base_url:
            raise ConfigError("SynthConfig.base_url is empty. Give the endpoint, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1.",
                              ko="SynthConfig.base_url이 비어 있습니다. 엔드포인트를 주세요. 예: https://api.openai.com/v1 "
                                 "또는 http://127.0.0.1:8000/v1.")

    def prompt_template(self) -> str:
        return self.prompt or DEFAULT_PROMPTS[self.language]


@dataclasses.dataclass
class ChunkFailure:
    chunk_id: str
    attempts: int
    reason: str
    last_reply: str = ""  # the start of the model's last reply, for the user to see why

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SynthResult:
    rows: list[dict[str, Any]]
    failures: list[ChunkFailure]
    requests: int
    chunks_used: int
    chunks_available: int
    cancelled: bool
    seconds: float
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("rows")
        d["rows"] = len(self.rows)
        return d


# --- parsing ------------------------------------------------------------------------------------


def _pair_from(obj: dict[str, Any]) -> tuple[str, str] | None:
    low = {str(k).strip().lower(): v for k, v in obj.items()}
    q = next((low[k] for k in _QUESTION_KEYS if k in low), None)
    a = next((low[k] for k in _ANSWER_KEYS if k in low), None)
    if isinstance(q, str) and isinstance(a, str) and q.strip() and a.strip():
        return q.strip(), a.strip()
    return None


def _collect(value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        pair = _pair_from(value)
        if pair:
            out.append(pair)
            return
        for v in value.values():  # {"pairs": [...]}, {"data": {"items": [...]}}
            _collect(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect(v, out)


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """Question / answer pairs from a model's reply, however it wrapped them.

    Handles a JSON array or object, code fences, prose before and after, keys in English or Korean
    (question/answer, instruction/output, q/a, 질문/답변), and JSON cut off by the token limit: every
    complete object before the cut is kept. When there is no JSON at all, labelled text
    ("Question: ... Answer: ...", "Q: ... A: ...", "질문: ... 답변: ...") is accepted, as small models
    often write that. Duplicates within one reply are removed.
    """
    if not text:
        return []
    decoder = json.JSONDecoder()
    pairs: list[tuple[str, str]] = []
    pos = 0
    # Scan for JSON values left to right; a value that decodes is consumed whole. A truncated outer
    # array fails to decode at its '[', so the scan moves on and picks up its complete inner objects.
    while True:
        m = re.compile(r"[\[{]").search(text, pos)
        if not m:
            break
        try:
            value, end = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            pos = m.start() + 1
            continue
        _collect(value, pairs)
        pos = end
    if not pairs:
        pairs = _labelled_pairs(text)
    seen: set[tuple[str, str]] = set()
    unique = []
    for p in pairs:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


_LABEL_RE = re.compile(r"(?i)(?<![\w])(?:\*\*)?(question|answer|q|a|질문|답변|답)\s*\d*\s*(?:\*\*)?\s*[:：]")
_TRIM = " \t\r\n*\"'`-,"


def _labelled_pairs(text: str) -> list[tuple[str, str]]:
    marks = [(m.group(1).lower() in ("question", "q", "질문"), m.start(), m.end()) for m in _LABEL_RE.finditer(text)]
    pairs = []
    for k, (is_q, _, end) in enumerate(marks[:-1]):
        nxt_is_q, nxt_start, nxt_end = marks[k + 1]
        if not is_q or nxt_is_q:
            continue
        stop = marks[k + 2][1] if k + 2 < len(marks) else len(text)
        q = text[end:nxt_start].strip(_TRIM)
        a = re.sub(r"\n\s*\d+[.)]\s*$", "", text[nxt_end:stop]).strip(_TRIM)  # drop a "2." line that numbers the next pair
        if q and a:
            pairs.append((q, a))
    return pairs


# --- the endpoint -------------------------------------------------------------------------------


def _endpoint(config: SynthConfig, api_key: str | None) -> Endpoint:
    """The generator endpoint of `config` (errors translated by `workbench.models.endpoints`, the key kept in the client)."""
    return Endpoint(config.base_url, config.model, api_key, provider=config.provider, timeout=config.timeout_s,
                    sdk_retries=1)


# --- generation ---------------------------------------------------------------------------------


def _as_chunks(chunks: Iterable[SourceChunk | Sequence[Any]]) -> list[SourceChunk]:
    out = []
    for c in chunks:
        if isinstance(c, SourceChunk):
            out.append(c)
        else:
            items = list(c)
            out.append(SourceChunk(str(items[0]), str(items[1]), str(items[2]) if len(items) > 2 else ""))
    return out


def check_model_name(config: SynthConfig) -> None:
    """Raises ConfigError when `config` names no model: what a generation needs first, checked before it starts."""
    if not config.model.strip():
        raise ConfigError("SynthConfig.model is empty. Give the model name the endpoint serves.",
                          ko="SynthConfig.model이 비어 있습니다. 엔드포인트가 제공하는 모델 이름을 주세요.")


class _ChunkAsker:
    """Asks the endpoint for question / answer pairs from one chunk at a time, with corrective retries.

    A request the endpoint fails (400 / 429 / 5xx) fails that chunk and the run goes on, unless
    `_CONSECUTIVE_REQUEST_FAILURES` requests in a row fail: then the endpoint itself is the problem.
    """

    def __init__(self, config: SynthConfig, api_key: str | None, cancel: threading.Event | None) -> None:
        self.config, self.cancel = config, cancel
        self.chat = _endpoint(config, api_key)
        self.extra = json.loads(config.extra_body) if config.extra_body else None
        self.requests = self.consecutive_errors = 0

    def pairs(self, chunk: SourceChunk, n: int, seen: set[tuple[str, str]]) -> tuple[list[tuple[str, str]], ChunkFailure | None]:
        """New pairs from `chunk` (none already in `seen`), or no pairs and why."""
        c = self.config
        messages = [{"role": "user", "content": build_prompt(c, chunk, n)}]
        reply, reason, attempts = "", "", 0
        for attempts in range(1, c.retries + 2):
            self.requests += 1
            try:
                reply = self.chat.complete(messages, max_tokens=c.max_tokens, temperature=c.temperature,
                                           extra_body=self.extra).text
            except EndpointRequestError as exc:
                self.consecutive_errors += 1
                reason = f"request failed: {exc.reason}"
                if self.consecutive_errors >= _CONSECUTIVE_REQUEST_FAILURES:
                    raise OfflineError(f"The {self.chat.where()} failed {self.consecutive_errors} requests in a row; "
                                       f"last: {reason}.",
                                       ko=f"{self.chat.where()}이(가) 요청 {self.consecutive_errors}개를 연달아 "
                                          f"실패했습니다. 마지막: {reason}.") from exc
                break
            self.consecutive_errors = 0
            got = [p for p in parse_pairs(reply) if p not in seen]
            if got:
                return got, None
            reason = "no question/answer JSON in the reply" if reply.strip() else "empty reply"
            if self.cancel is not None and self.cancel.is_set():
                break
            # A corrective turn changes the input, so even a greedy server answers differently.
            messages = messages[:1] + [{"role": "assistant", "content": reply or "(empty)"},
                                       {"role": "user", "content": RETRY_MESSAGES[c.language].replace("{n}", str(n))}]
        return [], ChunkFailure(chunk.chunk_id, attempts, reason, short(reply, 300))


def build_prompt(config: SynthConfig, chunk: SourceChunk, n: int) -> str:
    # str.replace, not str.format: the template's JSON example is full of braces.
    return config.prompt_template().replace("{n}", str(n)).replace("{source}", chunk.source or chunk.chunk_id).replace("{chunk}", chunk.text)


def generate_rows(
    chunks: Iterable[SourceChunk | Sequence[Any]],
    config: SynthConfig,
    *,
    api_key: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> SynthResult:
    """Ask the model for `pairs_per_chunk` question / answer pairs per chunk until `n_target` rows exist.

    Args:
        chunks: `SourceChunk`s or `(chunk_id, text, source)` tuples, used in order, each once.
        config: endpoint, model, prompt, counts.
        api_key: overrides OPENAI_API_KEY / ANTHROPIC_API_KEY; kept in memory only.
        progress: `(message, fraction)`; returning False stops the run like `cancel`.
        cancel: set it (from another thread) to stop after the current request.

    Returns:
        The rows so far (instruction, input, output, chunk_id, source) and every chunk that gave none.

    Raises:
        OfflineError: the endpoint cannot be reached or refuses the key.
        ConfigError: a missing key (Anthropic), an unknown model, no chunks.
    """
    items = _as_chunks(chunks)
    if not items:
        raise ConfigError("There are no chunks to generate from. Build the knowledge base first (Knowledge base page or `python -m workbench kb ...`).",
                          ko="생성에 쓸 청크가 없습니다. 먼저 지식 베이스를 만드세요 (지식 베이스 페이지 또는 "
                             "`python -m workbench kb ...`).")
    check_model_name(config)
    report = progress or no_progress
    asker = _ChunkAsker(config, api_key, cancel)
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    failures: list[ChunkFailure] = []
    seen: set[tuple[str, str]] = set()
    used = 0
    cancelled = False
    report(Text(f"0 / {config.n_target} rows",
                f"0 / {config.n_target}행"), 0.0)
    for chunk in items:
        if len(rows) >= config.n_target:
            break
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        used += 1
        got, failure = asker.pairs(chunk, min(config.pairs_per_chunk, config.n_target - len(rows)), seen)
        if failure is not None:
            failures.append(failure)
        for q, a in got[: config.n_target - len(rows)]:
            seen.add((q, a))
            rows.append({"instruction": q, "input": "", "output": a, "chunk_id": chunk.chunk_id, "source": chunk.source})
        if report(Text(f"{len(rows)} / {config.n_target} rows · chunk {used} of {len(items)} · {len(failures)} failed",
                       f"{len(rows)} / {config.n_target}행 · 청크 {used} / {len(items)} · 실패 {len(failures)}개"),
                  min(len(rows) / config.n_target, 1.0)) is False:
            cancelled = True
            break
    note = ""
    if len(rows) < config.n_target and not cancelled and used == len(items):
        note = (f"The {len(items)} chunks gave {len(rows)} of {config.n_target} rows. "
                f"Raise pairs per chunk (now {config.pairs_per_chunk}) or add documents to reach the target.")
    return SynthResult(rows, failures, asker.requests, used, len(items), cancelled, round(time.time() - t0, 2), note)


def generate_dataset(
    name: str,
    chunks: Iterable[SourceChunk | Sequence[Any]],
    config: SynthConfig,
    *,
    api_key: str | None = None,
    collection: str = "",
    workspace: Workspace | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> tuple[Any, SynthResult]:
    """`generate_rows`, then save the rows as dataset `name` (also after a cancel, if any rows exist).

    Returns (DatasetInfo, SynthResult).

    Raises:
        GenerationError: no row came out (the message shows why, with the model's last reply).
        and everything `generate_rows` raises.
    """
    from workbench.dataset.alpaca import check_name, dataset_dir, save_dataset

    check_name(name)
    if (dataset_dir(name, workspace) / "meta.json").exists() and not overwrite:
        raise ConfigError(f"Dataset {name!r} already exists. Choose another name, or replace it (--force / 'replace').",
                          ko=f"데이터셋 {name!r}이(가) 이미 있습니다. 다른 이름을 고르거나 바꿔 쓰세요 (--force "
                             f"/ 'replace').")
    result = generate_rows(chunks, config, api_key=api_key, progress=progress, cancel=cancel)
    if not result.rows:
        last = next((f for f in reversed(result.failures) if f.last_reply), None)
        raise GenerationError(
            f"{config.model!r} produced no usable question/answer pairs from {result.chunks_used} chunks in {result.requests} requests"
            + (" (cancelled)" if result.cancelled else "")
            + (f"; last failure: {result.failures[-1].reason}" if result.failures else "")
            + (f"; its last reply began: {last.last_reply[:120]!r}" if last else "")
            + ". Use a larger instruction-following model, or edit the prompt.",
            ko=f"{config.model!r}이(가) 청크 {result.chunks_used}개, 요청 {result.requests}번에서 쓸 만한 질문/답변 쌍을 하나도 만들지 못했습니다" + (" (취소됨)" if result.cancelled else "") + (f"; 마지막 실패: {result.failures[-1].reason}" if result.failures else "") + (f"; 마지막 답변의 시작: {last.last_reply[:120]!r}" if last else "") + ". 지시를 더 잘 따르는 큰 모델을 쓰거나 프롬프트를 고치세요."
        )
    source = {"kind": "generated", "collection": collection, "provider": config.provider, "base_url": config.base_url,
              "model": config.model, "config": config.to_dict(), "result": result.to_dict(),
              "failures": [f.to_dict() for f in result.failures]}
    info = save_dataset(name, result.rows, source=source, column_map={"instruction": "question", "input": "", "output": "answer"},
                        workspace=workspace, overwrite=overwrite)
    return info, result


def chunks_from_collection(collection: str, workspace: Workspace | None = None, limit: int | None = None) -> list[SourceChunk]:
    """The chunks of a knowledge-base collection as `SourceChunk`s (glue to `workbench.kb.vectordb.get_chunks`).

    Raises:
        ConfigError: the knowledge-base stage is not installed.
        NotFoundError: as `get_chunks` raises for an unknown collection.
    """
    try:
        from workbench.kb import vectordb
    except ImportError as exc:
        raise ConfigError("The knowledge-base stage (workbench.kb.vectordb) is not available in this installation.",
                          ko="이 설치에는 지식 베이스 단계(workbench.kb.vectordb)가 없습니다.") from exc
    get_chunks = getattr(vectordb, "get_chunks", None)
    if get_chunks is None:
        raise ConfigError("workbench.kb.vectordb has no get_chunks(); update the knowledge-base stage.",
                          ko="workbench.vectordb에 get_chunks()가 없습니다. 지식 베이스 단계를 업데이트하세요.")
    out = []
    for c in get_chunks(collection, workspace or Workspace.default(), limit=limit):
        meta = dict(getattr(c, "metadata", None) or {})
        out.append(SourceChunk(str(c.id), str(c.text), str(meta.get("source", ""))))
    if not out:
        raise NotFoundError(f"Collection {collection!r} has no chunks. Add documents on the Knowledge base page first.",
                            ko=f"컬렉션 {collection!r}에 청크가 없습니다. 먼저 지식 베이스 페이지에서 문서를 "
                               f"넣으세요.")
    return out
