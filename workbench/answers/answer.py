"""Who answers what: the answer sources of the comparison, and the one path every answer takes.

Sources: `base` (the base model), `ft` (a training run's LoRA adapter on it), `rag` and `ft_rag` (the same two with
retrieved chunks in the prompt), and optionally `api` / `api_rag` (an OpenAI-compatible endpoint).

- `prepare(...)` resolves once what the sources need: the generator with the run's adapter attached, the prompt
  templates (the fine-tuned sources: the run's own template unless another is asked for, with a warning then; the
  base sources: the way the base model can follow, its chat template if it is instruction-tuned, question -> answer
  examples if it is a pretrained base), the collection and its retrieval settings, the endpoint, and the warnings the
  preflight check finds.
- `ask(question, sources, setup, settings)` streams one question through every source (the Compare page, the
  Fine-tune page's "try it", `workbench ask`); `answer_block(items, source, setup, settings)` answers many rows with
  one source in batches (`workbench evaluate`). Both build every prompt with `prompt_for`, so one row gets the same
  prompt bytes on the page, in the CLI and in the batch evaluation.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, NotFoundError
from workbench.common.texts import Text
from workbench.models.endpoints import Endpoint, Reply
from workbench.models.prompts import (
    ANSWER_TEMPLATES,
    TEMPLATES,
    answer_prompt,
    completion_prompt,
    context_prompt,
    user_message,
)

if TYPE_CHECKING:  # pragma: no cover
    from workbench.answers.inference import GenerationConfig, GenerationResult, GenerationStream, Generator
    from workbench.common.progress import Progress
    from workbench.kb.retrieval import RetrievalConfig, RetrievedChunk

SOURCES: tuple[str, ...] = ("base", "ft", "rag", "ft_rag", "api", "api_rag")
DEFAULT_SOURCES: tuple[str, ...] = ("base", "ft", "rag", "ft_rag")
SOURCE_LABELS: dict[str, tuple[str, str]] = {  # (English, Korean)
    "base": ("base", "기본 모델"),
    "ft": ("fine-tuned", "파인튜닝"),
    "rag": ("base + RAG", "RAG"),
    "ft_rag": ("fine-tuned + RAG", "파인튜닝 + RAG"),
    "api": ("endpoint", "엔드포인트"),
    "api_rag": ("endpoint + RAG", "엔드포인트 + RAG"),
}
RAG_SOURCES = frozenset({"rag", "ft_rag", "api_rag"})
FT_SOURCES = frozenset({"ft", "ft_rag"})
API_SOURCES = frozenset({"api", "api_rag"})

# Chunks given to a RAG prompt by default (the Compare page, `ask` and `evaluate` alike): a small model reads three
# chunks better and faster than five, and three already hold the source of most questions (docs/compare.md).
DEFAULT_K = 3


def source_label(source: str, lang: str = "en") -> str:
    """A source's name for people, in "en" or "ko"."""
    en, ko = SOURCE_LABELS.get(source, (source, source))
    return ko if lang == "ko" else en


def available_sources(*, adapter: bool, collection: bool, endpoint: bool) -> list[str]:
    """The sources that can answer with what is there: a fine-tuned adapter, a collection, an endpoint."""
    out = ["base"] + (["ft"] if adapter else []) + (["rag"] if collection else [])
    out += ["ft_rag"] if adapter and collection else []
    out += (["api"] + (["api_rag"] if collection else [])) if endpoint else []
    return out


def default_collection(run: Any, collections: Sequence[str], workspace: Workspace | None = None) -> str:
    """The collection a run's questions are best answered from: the one its dataset was generated from (a generated
    dataset's meta.json `source.collection`) when it is still there, else the first one; "" when there is none."""
    from workbench.dataset.alpaca import dataset_info

    if not collections:
        return ""
    dataset = getattr(getattr(run, "config", None), "dataset", None)
    if dataset:
        try:
            origin = dataset_info(dataset, workspace).source.get("collection")
        except NotFoundError:  # the dataset was deleted after training
            origin = None
        if origin in collections:
            return str(origin)
    return collections[0]


def run_template(run: Any) -> str | None:
    """The prompt template a training run was trained with (None without a run)."""
    template = getattr(getattr(run, "config", None), "prompt_template", None)
    return template if template in TEMPLATES else None


def context_note(context: Mapping[str, Any]) -> Text:
    """Why the fine-tuned + RAG answer of a run trained with context is asked differently from base + RAG: with the
    run's own training prompt (its instruction language, its k numbered chunks), the prompt the adapter learned."""
    lang_en, lang_ko = {"ko": ("Korean", "한국어"), "en": ("English", "영어")}.get(context["lang"], (context["lang"],) * 2)
    return Text(f"Fine-tuned + RAG is asked with this run's own training prompt ({lang_en} instruction, "
                f"{context['k']} numbered chunks): the prompt its adapter learned. Base + RAG gets the default RAG "
                f"prompt in the question's language.",
                f"파인튜닝 + RAG는 이 실행이 학습한 프롬프트 그대로 묻습니다 ({lang_ko} 지시문, 번호 붙은 청크 "
                f"{context['k']}개): 어댑터가 배운 프롬프트입니다. 기본 모델 + RAG는 질문 언어의 기본 RAG 프롬프트를 씁니다.")


def run_context(run: Any) -> dict[str, Any] | None:
    """How a run trained with retrieved context (TrainConfig.context) saw it: {"k", "max_chars", "lang",
    "collection"}; None for a run trained on bare questions (or no run)."""
    config = getattr(run, "config", None)
    if config is None or getattr(config, "context", "none") == "none":
        return None
    return {"k": config.context_k, "max_chars": config.context_max_chars, "lang": config.context_lang,
            "collection": config.context_collection}


def context_warnings(context: dict[str, Any], collection: str, k: int) -> list[str]:
    """Warnings when a run trained with retrieved context (`context`, as recorded) is asked with fewer chunks than it
    trained on, or with another collection."""
    out = []
    if k < context["k"]:
        out.append(f"The run was trained with {context['k']} chunks per prompt but only {k} are retrieved: its "
                   f"fine-tuned + RAG answers read fewer than in training. Retrieve at least {context['k']}.")
    if collection and context["collection"] and collection != context["collection"]:
        out.append(f"The run was trained with context from collection {context['collection']!r}; answers now read "
                   f"{collection!r}.")
    return out


def choose_template(requested: str | None, trained_with: str | None, default: str, *, fine_tuned: bool) -> tuple[str, list[str]]:
    """The template to prompt with, and a warning when a fine-tuned adapter is prompted with another than its own.

    `requested` (None or "auto": no choice) wins, else the run's own template, else the model's `default`.
    """
    requested = None if requested in (None, "", "auto") else requested
    if requested is not None and requested not in ANSWER_TEMPLATES:
        raise ConfigError(f"prompt_template = {requested!r} is not one of auto, {', '.join(ANSWER_TEMPLATES)}.",
                          ko=f"prompt_template = {requested!r}은(는) auto, {', '.join(ANSWER_TEMPLATES)} 중 하나가 아닙니다.")
    template = requested or trained_with or default
    warnings = []
    if fine_tuned and trained_with and template != trained_with:
        warnings.append(Text(f"The adapter was trained with the {trained_with!r} template but is prompted with {template!r}: "
                             f"it answers prompts it never saw, so fine-tuning may look like it did nothing. "
                             f"Choose 'auto' (the run's own template).",
                             f"어댑터는 {trained_with!r} 템플릿으로 학습했는데 {template!r}(으)로 묻고 있습니다: 본 적 없는 "
                             f"프롬프트에 답하므로 파인튜닝이 아무 효과가 없는 것처럼 보일 수 있습니다. '자동'(실행의 템플릿)을 "
                             f"고르세요."))
    return template, warnings


@dataclasses.dataclass
class AnswerSetup:
    """What the sources need, resolved once by `prepare`."""

    workspace: Workspace
    generator: "Generator | None" = None
    adapter: str | None = None  # the name the run's adapter is attached under (ft sources)
    template: str = "alpaca"  # the fine-tuned sources' template (the run's own unless another was asked for)
    base_template: str = "alpaca"  # the base sources' template: the way the base model itself can follow
    collection: str = ""
    retrieval: "RetrievalConfig | None" = None
    rag_template: str = ""
    lang: str = "auto"
    endpoint: "EndpointAnswerer | None" = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    # a run trained with retrieved context: its fine-tuned + RAG prompts are built as its training rows were
    context: dict[str, Any] | None = None
    # the sources that answer with `context`'s prompt rule: the run's fine-tuned + RAG. A control sets both explicitly
    # (bench/compare_loop.py --control-short-context: base + RAG, or a plain run's fine-tuned + RAG, asked with a
    # context run's prompt), so that the prompt alone and the training alone can be told apart
    context_sources: tuple[str, ...] = ("ft_rag",)

    def template_for(self, source: str) -> str:
        """The template `source` is asked with: the fine-tuned sources', else the base model's own."""
        return self.template if source in FT_SOURCES else self.base_template

    def check(self, sources: Sequence[str]) -> None:
        """Raises ConfigError when a source lacks what it needs (a model, an adapter, a collection, an endpoint)."""
        unknown = [s for s in sources if s not in SOURCES]
        if unknown:
            raise ConfigError(f"Unknown answer source {', '.join(unknown)}: use some of {', '.join(SOURCES)}.",
                              ko=f"알 수 없는 답변 소스 {', '.join(unknown)}: {', '.join(SOURCES)} 중에서 쓰세요.")
        bare = [s for s in self.context_sources if s not in RAG_SOURCES]
        if bare:
            raise ConfigError(f"context_sources {', '.join(bare)}: only RAG sources ({', '.join(sorted(RAG_SOURCES))}) "
                              f"read retrieved context.",
                              ko=f"context_sources {', '.join(bare)}: 검색 문맥은 RAG 소스"
                                 f"({', '.join(sorted(RAG_SOURCES))})만 읽습니다.")
        for s in sources:
            if s in API_SOURCES and self.endpoint is None:
                raise ConfigError(f"Source {s!r} needs an OpenAI-compatible endpoint: give its URL and model name.",
                                  ko=f"소스 {s!r}에는 OpenAI 호환 엔드포인트가 필요합니다: URL과 모델 이름을 "
                                     f"입력하세요.")
            if s not in API_SOURCES and self.generator is None:
                raise ConfigError(f"Source {s!r} needs a local model.",
                                  ko=f"소스 {s!r}에는 로컬 모델이 필요합니다.")
            if s in FT_SOURCES and not self.adapter:
                raise ConfigError(f"Source {s!r} needs a fine-tuned adapter: pick a training run.",
                                  ko=f"소스 {s!r}에는 파인튜닝 어댑터가 필요합니다: 학습 실행을 고르세요.")
            if s in RAG_SOURCES and not self.collection:
                raise ConfigError(f"Source {s!r} needs a knowledge-base collection to retrieve from: pick one.",
                                  ko=f"소스 {s!r}에는 검색할 지식 베이스 컬렉션이 필요합니다: 하나를 고르세요.")


def prepare(sources: Sequence[str], workspace: Workspace, *, run: Any = None, adapter_dir: str = "", base_model: str = "",
            template: str | None = None, collection: str = "", retrieval: "RetrievalConfig | None" = None,
            rag_template: str = "", lang: str = "auto", endpoint: "EndpointAnswerer | None" = None,
            generator: "Generator | None" = None, progress: "Progress | None" = None) -> AnswerSetup:
    """Resolve what `sources` need. A generator passed in (a page's cached one) is used as is; otherwise the base model
    (given, else the run's, else the offline default) is loaded when a local source needs it. The run's adapter (or
    `adapter_dir`) is attached under the run id when a fine-tuned source needs it.

    Raises:
        NotFoundError: the run has no adapter yet. ConfigError: a source lacks what it needs; a broken RAG template.
        ModelError / OfflineError: the model cannot be loaded.
    """
    from workbench.kb.retrieval import collection_config

    ft = bool(FT_SOURCES & set(sources))
    local = any(s not in API_SOURCES for s in sources)
    adapter_path = adapter_dir or (str(run.adapter_dir) if run is not None and run.adapter_dir is not None else "")
    if ft and not adapter_path:
        state = (getattr(run, "status", None) or {}).get("state", "?") if run is not None else "-"
        raise NotFoundError(f"No fine-tuned adapter: run {getattr(run, 'id', '-')} has none yet (state: {state}). "
                            f"Wait for training to finish, or drop ft / ft_rag.",
                            ko=f"파인튜닝 어댑터가 없습니다: 실행 {getattr(run, 'id', '-')}에는 아직 어댑터가 "
                               f"없습니다 (상태: {state}). 학습이 끝나기를 기다리거나 파인튜닝 / 파인튜닝 + RAG를 "
                               f"빼세요.")
    if local and generator is None:
        from workbench.answers.inference import load_generator, run_base_model
        from workbench.models.registry import DEFAULT_MODEL

        generator = load_generator(base_model or (run_base_model(run) if run is not None else DEFAULT_MODEL), workspace,
                                   progress)
    adapter = None
    if ft and generator is not None:
        adapter = getattr(run, "id", None) or "adapter"
        generator.ensure_adapter(adapter, adapter_path)
    default = generator.default_template if generator is not None else "alpaca"
    chosen, warnings = choose_template(template, run_template(run), default, fine_tuned=ft)
    base_template, _ = choose_template(template, None, generator.answer_template if generator is not None else default,
                                       fine_tuned=False)
    if generator is not None:
        checked = {chosen: adapter} if ft else {}
        if any(s not in API_SOURCES and s not in FT_SOURCES for s in sources) and base_template != "completion":
            checked.setdefault(base_template, None)
        warnings = [w for t, a in checked.items() for w in generator.preflight(t, a)] + warnings  # type: ignore[arg-type]
    retrieval = retrieval or collection_config(collection, workspace, k=DEFAULT_K)
    context = run_context(run) if "ft_rag" in sources else None
    if context is not None:
        warnings += context_warnings(context, collection, retrieval.k)
    setup = AnswerSetup(workspace, generator, adapter, chosen, base_template, collection, retrieval, rag_template, lang,
                        endpoint, warnings, context)
    setup.check(sources)
    answer_prompt("q", "", [], rag=True, rag_template=rag_template, lang=lang)  # a broken template fails now
    return setup


# --- prompts ---------------------------------------------------------------------------------------------------


def retrieve_context(setup: AnswerSetup, question: str, row_input: str = "") -> tuple[list["RetrievedChunk"], float]:
    """The chunks a RAG source reads for a question (and a row's input), and the seconds the retrieval took."""
    from workbench.kb.retrieval import retrieve

    t0 = time.perf_counter()
    chunks = retrieve(setup.collection, f"{question}\n{row_input}".strip(), setup.retrieval, setup.workspace)
    return chunks, time.perf_counter() - t0


def prompt_for(setup: AnswerSetup, source: str, question: str, row_input: str = "",
               chunks: Sequence[Any] = ()) -> tuple[str, str, str]:
    """(instruction, input, prompt text) of one source for one question: the same bytes on every path.

    Local sources get the text of their template (`AnswerSetup.template_for`; with the adapter's own tokenizer for
    fine-tuned ones): `completion` puts the question (and the retrieved chunks before it) into question -> answer
    examples; the others wrap it in the RAG template. Endpoint sources get instruction and input as one user message.
    A run trained with retrieved context answers as fine-tuned + RAG with its training's prompt
    (`prompts.context_prompt`: its k, chunk length and language), whatever the RAG template; so does any RAG source in
    `setup.context_sources` when a control sets it.
    """
    template = setup.template_for(source)
    if template == "completion" and source not in API_SOURCES and not (setup.context is not None and source in setup.context_sources):
        assert setup.generator is not None
        text = completion_prompt(question, row_input, list(chunks) if source in RAG_SOURCES else None,
                                 tokenizer=setup.generator.tokenizer_for(_adapter(setup, source)))
        return question, row_input, text
    if setup.context is not None and source in setup.context_sources:  # the prompt rule the run was trained with
        instruction, input = context_prompt(question, row_input, chunks, k=setup.context["k"],
                                            max_chars=setup.context["max_chars"], lang=setup.context["lang"])
    else:
        instruction, input = answer_prompt(question, row_input, chunks, rag=source in RAG_SOURCES,
                                           rag_template=setup.rag_template, lang=setup.lang)
    if source in API_SOURCES:
        return instruction, input, user_message(instruction, input)
    assert setup.generator is not None
    text = setup.generator.format_prompt(instruction, input, adapter=_adapter(setup, source), template=template)  # type: ignore[arg-type]
    return instruction, input, text


def _adapter(setup: AnswerSetup, source: str) -> str | None:
    return setup.adapter if source in FT_SOURCES else None


# --- one question, every source, streamed -------------------------------------------------------------------------


@dataclasses.dataclass
class Asked:
    """One question put to several sources. `streams` start generating only when iterated; `together`: the local ones
    are one batched generation (read them in turn, `pieces`), else each its own (read one after another)."""

    question: str
    row_input: str
    chunks: list[Any]
    retrieval_s: float | None
    prompts: dict[str, str]
    streams: dict[str, "GenerationStream"]
    together: bool = False

    def pieces(self) -> Iterator[tuple[str, str]]:
        """(source, piece) as the answers grow: all columns together when generated together, else column by column
        (a stream read before the one ahead of it has finished would wait for it: one model generates at a time)."""
        if self.together:
            yield from interleave(self.streams)
        else:
            for source, stream in self.streams.items():
                for piece in stream:
                    yield source, piece

    def results(self) -> dict[str, "GenerationResult"]:
        """Run every stream to its end; the results by source."""
        out = {}
        for source, stream in self.streams.items():
            for _ in stream:
                pass
            assert stream.result is not None
            out[source] = stream.result
        return out


def ask(question: str, sources: Sequence[str], setup: AnswerSetup, settings: "GenerationConfig", *,
        row_input: str = "") -> Asked:
    """Put `question` (and a dataset row's `row_input`) to every source; retrieval runs once for all RAG sources.

    Raises:
        ConfigError: an empty question, or a source that lacks what it needs.
    """
    if not question.strip():
        raise ConfigError("The question is empty. Type a question, or pick a test-split row.",
                          ko="질문이 비어 있습니다. 질문을 입력하거나 테스트 행을 고르세요.")
    setup.check(sources)
    chunks, seconds = retrieve_context(setup, question, row_input) if RAG_SOURCES & set(sources) else ([], None)
    from workbench.answers.inference import StreamRequest

    prompts: dict[str, str] = {}
    streams: dict[str, GenerationStream] = {}
    requests: dict[str, StreamRequest] = {}
    for source in sources:
        instruction, input, prompts[source] = prompt_for(setup, source, question, row_input, chunks)
        if source in API_SOURCES:
            streams[source] = setup.endpoint.stream(instruction, input, settings)  # type: ignore[union-attr]
        else:
            requests[source] = StreamRequest(prompts[source], _adapter(setup, source), setup.template_for(source))  # type: ignore[arg-type]
    gen = setup.generator
    together = bool(requests) and gen is not None and gen.batches_columns
    if together:  # one batched generation: base and fine-tuned rows side by side (a GPU's way)
        streams.update(zip(requests, gen.stream_many(list(requests.values()), settings=settings)))  # type: ignore[union-attr]
    else:  # one after another: on a CPU a padded batch of four costs more than the four alone
        streams.update({s: gen.stream(r.prompt, adapter=r.adapter, settings=settings, template=r.template)  # type: ignore[union-attr]
                        for s, r in requests.items()})
    return Asked(question, row_input, list(chunks), seconds, prompts, {s: streams[s] for s in sources}, together)


def interleave(streams: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(source, piece) from several streams in turn, until all are exhausted: the columns of one batched generation
    grow together instead of one after another."""
    live = dict(streams)
    while live:
        for source, stream in list(live.items()):
            try:
                yield source, next(stream)
            except StopIteration:
                del live[source]


# --- many rows, one source, batched -------------------------------------------------------------------------------


@dataclasses.dataclass
class Item:
    """One row to answer: its question, its input, and the chunks retrieved for it (empty without RAG)."""

    question: str
    row_input: str = ""
    chunks: Sequence[Any] = ()


def answer_block(items: Sequence[Item], source: str, setup: AnswerSetup, settings: "GenerationConfig", *,
                 batch_size: int | None = None) -> list["GenerationResult"]:
    """Answer every item with one source: local sources in batched `generate` calls (`batch_size` prompts at once,
    None: all), the endpoint one request at a time. Results in the order of `items`.

    Raises:
        ConfigError: the source lacks what it needs, or a prompt is too long for the model.
    """
    setup.check([source])
    prompts = [prompt_for(setup, source, it.question, it.row_input, it.chunks) for it in items]
    if source in API_SOURCES:
        return [setup.endpoint.generate(instruction, input, settings) for instruction, input, _ in prompts]  # type: ignore[union-attr]
    gen = setup.generator
    assert gen is not None
    texts = [p for _, _, p in prompts]
    template = setup.template_for(source)
    if batch_size == 1:
        return [gen.generate(p, adapter=_adapter(setup, source), settings=settings, template=template)  # type: ignore[arg-type]
                for p in texts]
    return gen.generate_batch(texts, adapter=_adapter(setup, source), settings=settings,
                              template=template, batch_size=batch_size)  # type: ignore[arg-type]


# --- the api source: an endpoint answering through the same interface as a Generator ---------------------------


class EndpointAnswerer:
    """An OpenAI-compatible chat endpoint as an answer source (a vLLM / Ollama deployment, or a hosted model).

    It answers the same (instruction, input) pair the local sources get, as one user message; greedy settings map
    to temperature 0.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        self.base_url, self.model = base_url, model
        self.endpoint = Endpoint(base_url, model, api_key, role="answer", timeout=timeout)

    def _sampling(self, settings: "GenerationConfig") -> dict[str, Any]:
        if settings.do_sample:
            return dict(temperature=settings.temperature, top_p=settings.top_p, seed=settings.seed)
        return dict(temperature=0)

    def _result(self, reply: Reply, latency: float, prompt: str) -> "GenerationResult":
        from workbench.answers.inference import GenerationResult
        from workbench.models.stopping import clean_answer

        return GenerationResult(
            text=clean_answer(reply.text), prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
            latency_s=round(latency, 3),
            tokens_per_s=round(reply.completion_tokens / latency, 2) if latency > 0 and reply.completion_tokens else 0.0,
            stopped="max_new_tokens" if reply.finish_reason in ("length", "max_tokens") else "stop_token", adapter=None,
            prompt=prompt)

    def generate(self, instruction: str, input: str = "", settings: "GenerationConfig | None" = None) -> "GenerationResult":
        """One answer with the endpoint's token counts (from `usage`, when it reports them).

        Raises:
            OfflineError / ConfigError: the endpoint cannot be reached, refuses the request or the model.
        """
        from workbench.answers.inference import GenerationConfig

        settings = settings or GenerationConfig()
        prompt = user_message(instruction, input)
        t0 = time.perf_counter()
        reply = self.endpoint.complete([{"role": "user", "content": prompt}], max_tokens=settings.max_new_tokens,
                                       **self._sampling(settings))
        return self._result(reply, time.perf_counter() - t0, prompt)

    def stream(self, instruction: str, input: str = "", settings: "GenerationConfig | None" = None) -> "GenerationStream":
        """A `GenerationStream` of the text pieces the endpoint sends; its `.result` is set at the end."""
        from workbench.answers.inference import GenerationConfig, GenerationStream

        settings = settings or GenerationConfig()
        prompt = user_message(instruction, input)

        def pieces() -> Iterator[str]:
            t0 = time.perf_counter()
            box = Reply("")
            yield from self.endpoint.stream([{"role": "user", "content": prompt}], max_tokens=settings.max_new_tokens,
                                            into=box, **self._sampling(settings))
            stream.result = self._result(box, time.perf_counter() - t0, prompt)

        stream = GenerationStream(pieces())
        return stream
