"""Generation: one loaded base model serving base and fine-tuned answers, streamed or in batches.

- `load_generator(base_model)` loads the base model and tokenizer once. `Generator.attach_adapter(name, dir)`
  adds a LoRA adapter to that same model (PEFT), and every call picks what answers: `adapter=None` is the
  base model (adapters disabled with `disable_adapter()`), `adapter="name"` switches that adapter on. Four
  answer sources (base, fine-tuned, and both with retrieved context) therefore cost one model in memory.
- An answer ends at a stop token (`workbench.models.prompts.stop_token_ids`), at its prompt format's boundary
  (`prompts.stop_strings`) or where it starts to loop (`GenerationConfig.loop_tokens`): `workbench.models.stopping` decides,
  on GENERATED tokens only. The tutorial's `StopOnToken` looked at the whole sequence, so any stop token inside the
  prompt (every chat prompt has end-of-turn tokens from the system and user turns) ended generation after one token.
- `Generator.instruct` says whether the base model follows instructions or only continues text (a pretrained base):
  `answer_template` is the template its own answers are asked with (`chat`, or the `completion` examples).
- `Generator.stream` yields text pieces from a generation thread (token ids through `stopping.TokenQueue`, cut by the
  same rules); after the last piece its `.result` holds latency, token counts and tokens/s. `Generator.stream_many`
  streams several answers of one batched generation (rows of different adapters and templates: Compare's columns on a
  GPU). `Generator.generate_batch` answers many prompts in left-padded batches (with `workbench.models.attention`'s CPU
  attention for padded rows).

Prompts are built by `workbench.models.prompts`; which source answers what by `workbench.answers.answer`. torch / transformers /
peft are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.common.config import BaseConfig, Workspace, setting
from workbench.common.errors import ConfigError, ModelError, NotFoundError
from workbench.common.texts import state_ko
from workbench.models.attention import use_padded_attention
from workbench.models.prompts import (
    AnswerTemplate,
    PromptTemplate,
    format_prompt,
    preflight_check,
    stop_strings,
    stop_token_ids,
)
from workbench.models.stopping import AnswerCutter, Stopped, TokenQueue, stop_criteria

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# The default n of GenerationConfig.loop_tokens, chosen by measurement (docs/benchmarks.md, "Readers that answer and
# stop"): the smallest n that cuts none of the sample shop's 499 reference answers with either packaged tokenizer
# (SmolLM2 spends 2-3 tokens per Hangul syllable: n = 12 would cut 3 of them, n = 8 28).
LOOP_TOKENS = 16


@dataclasses.dataclass
class GenerationConfig(BaseConfig):
    """Settings of one generation, shared by every answer source so that the comparison is fair."""

    max_new_tokens: int = setting(128, "Most tokens to generate for one answer.",
                                  help_ko="한 답변에서 생성할 최대 토큰 수.", min=1, max=8192,
                                  label="Max new tokens", label_ko="최대 생성 토큰", step=16)
    do_sample: bool = setting(False, "Sample instead of greedy decoding. Greedy is deterministic: the same question "
                              "gives the same answer, which makes comparisons repeatable.",
                              help_ko="탐욕적 디코딩 대신 샘플링합니다. 탐욕적 디코딩은 결정적이라 같은 질문에 같은 답을 주므로 "
                              "비교를 반복할 수 있습니다.", label="Sample", label_ko="샘플링")
    temperature: float = setting(0.7, "Sampling temperature (only with sampling): lower is more focused.",
                                 help_ko="샘플링 온도 (샘플링할 때만): 낮을수록 집중된 답.", min=0.01, max=2.0,
                                 label="Temperature", label_ko="온도", step=0.05)
    top_p: float = setting(0.9, "Nucleus sampling: sample from the smallest set of tokens whose probability adds up to "
                           "top_p (only with sampling).",
                           help_ko="누클리어스 샘플링: 확률 합이 top_p가 되는 가장 작은 토큰 집합에서 샘플링 (샘플링할 때만).",
                           min=0.01, max=1.0, label="Top-p", label_ko="top_p", step=0.05)
    repetition_penalty: float = setting(1.0, "Above 1 discourages repeating tokens. It also penalises copying from "
                                        "the retrieved context, so keep it near 1 for RAG.",
                                        help_ko="1보다 크면 토큰 반복을 억제합니다. 검색된 문맥을 옮겨 쓰는 것도 억제하므로 "
                                        "RAG에서는 1 근처로 두세요.", min=0.5, max=2.0,
                                        label="Repetition penalty", label_ko="반복 패널티", step=0.05)
    seed: int = setting(123, "Random seed for sampling.", help_ko="샘플링 난수 시드.", min=0, label="Seed", label_ko="시드")
    loop_tokens: int = setting(LOOP_TOKENS, "Cut an answer once it repeats a run of this many tokens: it keeps what came "
                               "before the repetition (0: never cut; the answer then runs to the max new tokens).",
                               help_ko="답변이 이만큼의 토큰 묶음을 되풀이하기 시작하면 거기서 자릅니다: 되풀이 앞까지만 남깁니다 "
                               "(0: 자르지 않음; 그러면 최대 생성 토큰까지 이어집니다).", min=0, max=256,
                               label="Cut loops of (tokens)", label_ko="반복 자르기 (토큰)")
    stop_at_blank_line: bool = setting(True, "End an answer at its first blank line. Short answers (an FAQ, Alpaca rows) "
                                       "end there; turn it off for answers of several paragraphs. Answers asked with "
                                       "question -> answer examples always end at their line break.",
                                       help_ko="답을 첫 빈 줄에서 끝냅니다. 짧은 답(FAQ, Alpaca 행)은 거기서 끝납니다. 여러 "
                                       "문단으로 된 답이면 끄세요. 질문 → 답변 예시로 묻는 답은 언제나 줄바꿈에서 끝납니다.",
                                       label="Stop at a blank line", label_ko="빈 줄에서 멈추기")

    _label = "GenerationConfig"


@dataclasses.dataclass
class GenerationResult:
    """One answer and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    tokens_per_s: float
    # stop_token / stop_string: the answer ended by itself (a stop token, its format's boundary); loop: cut where it
    # began to repeat itself; max_new_tokens: it ran to the cap
    stopped: Stopped = "stop_token"
    adapter: str | None = None
    prompt: str = ""
    batch_size: int = 1  # answers generated together in one call (latency_s is then the time per answer)
    ids: list[int] | None = None  # every generated token id, when asked for (`Generator.generate_batch(keep_ids=True)`)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- the generator -------------------------------------------------------------------------------------------


class GenerationStream:
    """An iterator over text pieces of one streamed answer; `.result` is set once it is exhausted."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self._pieces = pieces
        self.result: GenerationResult | None = None

    def __iter__(self) -> "GenerationStream":
        return self

    def __next__(self) -> str:
        return next(self._pieces)


@dataclasses.dataclass
class _Adapter:
    path: Path
    tokenizer: Any | None  # the tokenizer saved with the adapter (None: use the base one)
    stamp: float = 0.0  # modification time of the weights, to notice a re-trained adapter


def _adapter_stamp(adapter_dir: Path) -> float:
    files = list(adapter_dir.glob("adapter_model.*"))
    return max((f.stat().st_mtime for f in files), default=0.0)


class Generator:
    """A base model and tokenizer loaded once, plus any number of LoRA adapters on top of it.

    Thread-safe: one lock serialises generations, because switching adapters changes the shared model.
    """

    def __init__(self, model: "PreTrainedModel", tokenizer: "PreTrainedTokenizerBase", base_model: str = "",
                 instruct: bool | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.base_model = base_model
        # Follows instructions (instruction- or chat-tuned) or only continues text (a pretrained base): None = judge by
        # the chat template (`models.instruction_tuned` knows the registry's models and common names)
        self.instruct = bool(getattr(tokenizer, "chat_template", None)) if instruct is None else instruct
        self.adapters: dict[str, _Adapter] = {}
        self._lock = threading.RLock()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        use_padded_attention(model)

    @property
    def default_template(self) -> PromptTemplate:
        """The training template a run on this model uses unless told otherwise (what an adapter without a run was
        most likely trained with)."""
        return "chat" if getattr(self.tokenizer, "chat_template", None) else "alpaca"

    @property
    def answer_template(self) -> AnswerTemplate:
        """How the base model itself is asked: an instruction-tuned model through its chat template (the Alpaca one
        without a chat template), a pretrained base through question -> answer examples it can continue."""
        if not self.instruct:
            return "completion"
        return self.default_template

    @property
    def batches_columns(self) -> bool:
        """Whether Compare's columns are generated in one batch (`stream_many`): on a GPU, where a batch of four
        costs about one answer; not on a CPU, where it cost 1.18x the four one after another (median of 6 questions,
        Gemma 3 270M, 2 cores: bench/four_columns.py) because the padded long RAG prompts and the rows that wait for
        the longest answer are paid in full."""
        return next(self.model.parameters()).device.type == "cuda"

    # --- adapters ----------------------------------------------------------------------------------------------
    def attach_adapter(self, name: str, adapter_dir: str | Path) -> None:
        """Load a PEFT LoRA adapter onto the base model under `name` (again: replaced).

        Raises:
            NotFoundError: no adapter_config.json in `adapter_dir`.
            ModelError: PEFT cannot load it onto this base model (another architecture, a resized vocabulary).
        """
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise NotFoundError(f"{adapter_dir} has no adapter_config.json: it is not a LoRA adapter folder. "
                                f"Finish (or resume) the training run that writes it.",
                                ko=f"{adapter_dir}에 adapter_config.json이 없습니다: LoRA 어댑터 폴더가 아닙니다. "
                                   f"이 폴더를 쓰는 학습 실행을 끝내거나 재개하세요.")
        tok = None
        if (adapter_dir / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(adapter_dir))
            if len(tok) != len(self.tokenizer):
                raise ModelError(f"The adapter in {adapter_dir} was trained with a vocabulary of {len(tok)} tokens, the base "
                                 f"model has {len(self.tokenizer)}: use its merged model instead of the adapter.",
                                 ko=f"{adapter_dir}의 어댑터는 {len(tok)}개 토큰의 어휘로 학습되었고 기본 모델은 "
                                    f"{len(self.tokenizer)}개입니다: 어댑터 대신 병합된 모델을 쓰세요.")
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            # Training saves its max_seq_length here; prompts at inference (RAG context) may be longer, up to
            # what the model's positions allow (checked in `_prepare`).
            tok.model_max_length = self.tokenizer.model_max_length
        with self._lock:
            try:
                if isinstance(self.model, PeftModel):
                    if name in self.model.peft_config:
                        self.model.delete_adapter(name)
                    self.model.load_adapter(str(adapter_dir), adapter_name=name)
                else:
                    self.model = PeftModel.from_pretrained(self.model, str(adapter_dir), adapter_name=name)
            except (ValueError, RuntimeError, KeyError, OSError) as exc:
                raise ModelError(f"Cannot load the adapter in {adapter_dir} onto {self.base_model or 'this base model'}: "
                                 f"{exc}. Was it trained on the same base model?",
                                 ko=f"{adapter_dir}의 어댑터를 {self.base_model or '이 기본 모델'}에 불러올 수 "
                                    f"없습니다: {exc}. 같은 기본 모델로 학습했나요?") from exc
            self.model.eval()
        self.adapters[name] = _Adapter(adapter_dir, tok, _adapter_stamp(adapter_dir))

    def ensure_adapter(self, name: str, adapter_dir: str | Path) -> None:
        """`attach_adapter` unless the same files are attached under `name` already (cheap to call on every rerun)."""
        adapter_dir = Path(adapter_dir)
        current = self.adapters.get(name)
        if current is not None and current.path == adapter_dir and current.stamp == _adapter_stamp(adapter_dir):
            return
        self.attach_adapter(name, adapter_dir)

    def tokenizer_for(self, adapter: str | None) -> "PreTrainedTokenizerBase":
        """The tokenizer to format prompts for `adapter` (its own saved tokenizer when it has one)."""
        if adapter is None:
            return self.tokenizer
        self._check_adapter(adapter)
        return self.adapters[adapter].tokenizer or self.tokenizer

    def _check_adapter(self, adapter: str) -> None:
        if adapter not in self.adapters:
            known = ", ".join(self.adapters) or "none"
            raise NotFoundError(f"No adapter named {adapter!r} is attached (attached: {known}). Attach it first.",
                                ko=f"{adapter!r}라는 어댑터가 붙어 있지 않습니다 (붙은 것: {known}). 먼저 붙이세요.")

    # --- prompts -----------------------------------------------------------------------------------------------
    def format_prompt(self, instruction: str, input: str = "", *, adapter: str | None = None,
                      template: AnswerTemplate | None = None) -> str:
        """`prompts.format_prompt` with the tokenizer of `adapter` (the base one for None)."""
        return format_prompt(instruction, input, template=template or self.default_template,
                             tokenizer=self.tokenizer_for(adapter))

    def preflight(self, template: AnswerTemplate, adapter: str | None = None) -> list[str]:
        training = self.adapters[adapter].tokenizer if adapter in self.adapters else None
        return preflight_check(self.tokenizer, template, training_tokenizer=training)  # type: ignore[arg-type]

    # --- generation --------------------------------------------------------------------------------------------
    def _encode(self, prompt: str, tok: "PreTrainedTokenizerBase", settings: GenerationConfig) -> list[int]:
        # The prompt text already holds any BOS the template writes; adding special tokens again would double it.
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int) and len(ids) + settings.max_new_tokens > limit:
            raise ConfigError(f"The prompt has {len(ids)} tokens and {settings.max_new_tokens} more may be generated, but "
                              f"{self.base_model or 'the model'} reads at most {limit}. Retrieve fewer chunks (k), use "
                              f"smaller chunks, or lower max_new_tokens.",
                              ko=f"프롬프트가 {len(ids)}토큰이고 {settings.max_new_tokens}토큰을 더 생성할 수 "
                                 f"있는데, {self.base_model or '모델'}은(는) 최대 {limit}토큰까지 읽습니다. 청크를 "
                                 f"덜 가져오거나(k), 청크를 작게 하거나, max_new_tokens를 낮추세요.")
        return list(ids)

    def cutter(self, adapter: str | None, template: AnswerTemplate | None, settings: GenerationConfig | None = None,
               stop_ids: Sequence[int] | None = None, strings: Sequence[str] | None = None) -> AnswerCutter:
        """The end-of-answer rules of one source: the template's stop tokens and stop strings (`stop_ids` and
        `strings` override them), and the loop cut of `settings`, with the tokenizer of `adapter`."""
        tok = self.tokenizer_for(adapter)
        template = template or self.default_template
        stops = list(stop_ids) if stop_ids is not None else stop_token_ids(tok, template)
        settings = settings or GenerationConfig()
        strings = stop_strings(template, blank_line=settings.stop_at_blank_line) if strings is None else tuple(strings)
        return AnswerCutter(tok, stops, strings, settings.loop_tokens)

    def _generate_kwargs(self, rows: Sequence[Sequence[int]], tok: "PreTrainedTokenizerBase", settings: GenerationConfig,
                         cutter: AnswerCutter | Sequence[AnswerCutter]) -> tuple[dict[str, Any], int]:
        """`model.generate` arguments for token rows, left-padded to one width (B, T); returns them and T. `cutter`:
        the end-of-answer rules of every row, or one per row."""
        import torch

        width = max(len(r) for r in rows)
        pad = tok.pad_token_id
        device = next(self.model.parameters()).device
        # Left padding: every row's last prompt token sits at the same position, where generation continues. The
        # attention mask hides the padding, and generate derives position ids from it, so a padded row sees what it
        # would see alone.
        input_ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows], dtype=torch.long, device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long, device=device)
        kwargs: dict[str, Any] = dict(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            repetition_penalty=settings.repetition_penalty,
            pad_token_id=pad,
            stopping_criteria=_criteria_list(stop_criteria(cutter, width)),  # per row, generated tokens only
        )
        if settings.do_sample:
            kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
            torch.manual_seed(settings.seed)
        else:
            # Greedy: unset the sampling knobs a model's generation_config may carry, so transformers does not warn.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs, width

    def _prepare(self, prompt: str, adapter: str | None, settings: GenerationConfig | None,
                 template: AnswerTemplate | None, stop_ids: Sequence[int] | None) -> tuple[dict[str, Any], int, AnswerCutter]:
        settings = settings or GenerationConfig()
        tok = self.tokenizer_for(adapter)
        cutter = self.cutter(adapter, template, settings, stop_ids)
        kwargs, prompt_len = self._generate_kwargs([self._encode(prompt, tok, settings)], tok, settings, cutter)
        return kwargs, prompt_len, cutter

    def _run(self, kwargs: dict[str, Any], adapter: str | None) -> "torch.Tensor":
        import torch

        with self._lock, torch.inference_mode():
            if adapter is None:
                if self.adapters:
                    with self.model.disable_adapter():
                        return self.model.generate(**kwargs)
                return self.model.generate(**kwargs)
            self._check_adapter(adapter)
            self.model.set_adapter(adapter)
            return self.model.generate(**kwargs)

    def _answer(self, new: list[int], prompt_tokens: int, cutter: AnswerCutter, latency: float, adapter: str | None,
                prompt: str, tokens_per_s: float | None = None, batch_size: int = 1) -> GenerationResult:
        # Cut at the first stop token, stop string or loop: a padded or over-run tail is not part of the answer.
        cut = cutter.cut(new)
        if tokens_per_s is None:
            tokens_per_s = cut.tokens / latency if latency > 0 else 0.0
        return GenerationResult(text=cut.text, prompt_tokens=prompt_tokens, completion_tokens=cut.tokens,
                                latency_s=round(latency, 3), tokens_per_s=round(tokens_per_s, 2), stopped=cut.stopped,
                                adapter=adapter, prompt=prompt, batch_size=batch_size)

    def _result(self, out: "torch.Tensor", prompt_len: int, cutter: AnswerCutter, t0: float, adapter: str | None,
                prompt: str) -> GenerationResult:
        return self._answer(out[0, prompt_len:].tolist(), prompt_len, cutter, time.perf_counter() - t0, adapter, prompt)

    def generate(self, prompt: str, *, adapter: str | None = None, settings: GenerationConfig | None = None,
                 template: AnswerTemplate | None = None, stop_ids: Sequence[int] | None = None) -> GenerationResult:
        """Answer a formatted `prompt` with the base model (`adapter=None`) or an attached adapter.

        `template` picks the stop tokens and stop strings (default: the base tokenizer's chat template if it has
        one, else alpaca); `stop_ids` overrides the stop tokens.
        """
        kwargs, prompt_len, cutter = self._prepare(prompt, adapter, settings, template, stop_ids)
        t0 = time.perf_counter()
        out = self._run(kwargs, adapter)
        return self._result(out, prompt_len, cutter, t0, adapter, prompt)

    def generate_batch(self, prompts: Sequence[str], *, adapter: str | None = None, settings: GenerationConfig | None = None,
                       template: AnswerTemplate | None = None, stop_ids: Sequence[int] | None = None,
                       batch_size: int | None = None, strings: Sequence[str] | None = None,
                       keep_ids: bool = False) -> list[GenerationResult]:
        """Answer several formatted prompts with batched `model.generate` calls; results in the order of `prompts`.

        The prompts are sorted by token length and cut into batches of `batch_size` (None: one batch), so that a
        batch holds prompts of similar length and little padding. Rows are left-padded, and each row ends on its
        own (the same rules as `generate`: `workbench.models.stopping`) while the others go on.
        Greedy answers equal those of one-at-a-time `generate` up to the float rounding that a different matrix
        shape brings (checked on SmolLM2); sampled ones are another random draw. With a repetition penalty, the
        padding token of a padded row counts as seen.

        Cost: every result's `latency_s` is its batch's wall time divided by the answers in it (the time per answer),
        `tokens_per_s` the batch's throughput (all its generated tokens / wall time), `batch_size` its size.

        `strings` overrides the template's stop strings (() for none); `keep_ids` keeps every generated token id in
        each result's `ids` (a benchmark then tries other end-of-answer rules on the same generations).

        Raises:
            ConfigError: a prompt plus max_new_tokens exceeds the model's positions.
            NotFoundError: `adapter` is not attached.
        """
        settings = settings or GenerationConfig()
        prompts = list(prompts)
        if not prompts:
            return []
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size = {batch_size}: use 1 or more (1 answers one prompt at a time).",
                              ko=f"batch_size = {batch_size}: 1 이상을 쓰세요 (1이면 프롬프트를 하나씩 답합니다).")
        tok = self.tokenizer_for(adapter)
        cutter = self.cutter(adapter, template, settings, stop_ids, strings)
        encoded = [self._encode(p, tok, settings) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        size = batch_size or len(prompts)
        results: list[GenerationResult | None] = [None] * len(prompts)
        for start in range(0, len(order), size):
            batch = order[start:start + size]
            kwargs, width = self._generate_kwargs([encoded[i] for i in batch], tok, settings, cutter)
            t0 = time.perf_counter()
            out = self._run(kwargs, adapter)
            wall = time.perf_counter() - t0
            news = [out[r, width:].tolist() for r in range(len(batch))]
            answers = [self._answer(new, len(encoded[i]), cutter, wall / len(batch), adapter, prompts[i], batch_size=len(batch))
                       for i, new in zip(batch, news)]
            throughput = sum(a.completion_tokens for a in answers) / wall if wall > 0 else 0.0
            for i, a, new in zip(batch, answers, news):
                a.tokens_per_s = round(throughput, 2)
                a.ids = new if keep_ids else None
                results[i] = a
        return [r for r in results if r is not None]

    def stream(self, prompt: str, *, adapter: str | None = None, settings: GenerationConfig | None = None,
               template: AnswerTemplate | None = None, stop_ids: Sequence[int] | None = None) -> GenerationStream:
        """Like `generate`, but yields text pieces as they are generated; `.result` is set at the end. The pieces add
        up to the result's text (`stopping.AnswerCutter.stream`)."""
        return self.stream_many([StreamRequest(prompt, adapter, template)], settings=settings, stop_ids=stop_ids)[0]

    def stream_many(self, requests: Sequence["StreamRequest"], *, settings: GenerationConfig | None = None,
                    stop_ids: Sequence[int] | None = None) -> list[GenerationStream]:
        """Several answers generated together, in ONE batched `model.generate` call, each streamed on its own: the
        four columns of Compare at once. Rows may use different adapters (PEFT's mixed-adapter batch: "__base__" for
        the base model's rows) and different templates (each row ends by its own rules, `stopping.stop_criteria`).

        The generation starts when any stream is first iterated; a stream's pieces come as its row's tokens do, so
        iterating the streams in turn (`answer.interleave`) shows them all growing together. Each result's
        `latency_s` is the time until that row's answer was complete, `batch_size` the rows generated together.
        Greedy answers equal one-at-a-time ones up to the float rounding of a padded batch (as `generate_batch`).

        Raises:
            ConfigError: a prompt plus max_new_tokens exceeds the model's positions.
            NotFoundError: an adapter is not attached.
        """
        settings = settings or GenerationConfig()
        if not requests:
            return []
        toks = [self.tokenizer_for(r.adapter) for r in requests]
        cutters = [self.cutter(r.adapter, r.template, settings, stop_ids) for r in requests]
        encoded = [self._encode(r.prompt, tok, settings) for r, tok in zip(requests, toks)]
        kwargs, _ = self._generate_kwargs(encoded, self.tokenizer, settings, cutters)
        tokens = TokenQueue(len(requests))
        kwargs["streamer"] = tokens
        adapters = [r.adapter for r in requests]
        run = _SharedRun(lambda: self._run(kwargs, adapters[0]) if len(set(adapters)) == 1
                         else self._run_mixed(kwargs, adapters), tokens, len(requests))

        def pieces(i: int) -> Iterator[str]:
            run.start()
            ids: list[int] = []

            def row() -> Iterator[list[int]]:
                for new in tokens.rows(i):
                    ids.extend(new)
                    yield new

            yield from cutters[i].stream(row())
            latency = time.perf_counter() - run.t0
            run.finish()
            r = requests[i]
            streams[i].result = self._answer(ids, len(encoded[i]), cutters[i], latency, r.adapter, r.prompt,
                                             batch_size=len(requests))

        streams = [GenerationStream(pieces(i)) for i in range(len(requests))]
        return streams

    def _run_mixed(self, kwargs: dict[str, Any], adapters: Sequence[str | None]) -> "torch.Tensor":
        """`model.generate` over rows of different adapters at once (None: the base model, PEFT's "__base__")."""
        import torch

        for a in adapters:
            if a is not None:
                self._check_adapter(a)
        with self._lock, torch.inference_mode():
            return self.model.generate(**kwargs, adapter_names=[a or "__base__" for a in adapters])


@dataclasses.dataclass
class StreamRequest:
    """One answer of `Generator.stream_many`: its formatted prompt, its adapter (None: the base model) and its template
    (None: the base tokenizer's default), which decides its stop rules."""

    prompt: str
    adapter: str | None = None
    template: AnswerTemplate | None = None


class _SharedRun:
    """The one generation thread behind the `streams` streams of `stream_many`: started by the first stream that is
    read, joined by the last one to finish (a process must not exit while the thread is inside the model: the C++
    runtime aborts); its error is raised in every stream that finishes after it."""

    def __init__(self, work: Any, tokens: TokenQueue, streams: int) -> None:
        self._work, self._tokens, self._open = work, tokens, streams
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.t0 = 0.0

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self.t0 = time.perf_counter()
            self._thread = threading.Thread(target=self._target, name="workbench-generate", daemon=True)
            self._thread.start()

    def _target(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # handed to the streams' consumer, which re-raises it
            self.error = exc
        finally:
            self._tokens.end()

    def finish(self) -> None:
        """One stream has its answer: the last one waits for the generation to end. Re-raises its error (a row's
        tokens end early when the generation failed)."""
        with self._lock:
            self._open -= 1
            last = self._open == 0
        if (last or self.error is not None) and self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise self.error


def _criteria_list(*criteria: Any) -> Any:
    from transformers import StoppingCriteriaList

    return StoppingCriteriaList(list(criteria))


def load_generator(base_model: str, workspace: Workspace | None = None, progress: Any = None) -> Generator:
    """Load a base model (registry key, local folder or Hub id) and its tokenizer once.

    Raises:
        ModelError / OfflineError: from `workbench.models.registry.load_causal_lm`.
    """
    from workbench.models.registry import instruction_tuned, load_causal_lm

    model, tokenizer = load_causal_lm(base_model, workspace, progress=progress)
    return Generator(model, tokenizer, base_model, instruct=instruction_tuned(base_model, tokenizer, workspace))


def run_base_model(run: Any) -> str:
    """The base model a training run actually loaded (status), else what its config names."""
    status = getattr(run, "status", None) or {}
    return str(status.get("resolved_base_model") or run.config.base_model)


def load_generator_for_run(run: Any, workspace: Workspace | None = None, progress: Any = None,
                           base_model: str | None = None) -> Generator:
    """A generator on the run's base model with the run's adapter attached under the run id.

    Raises:
        NotFoundError: the run has no adapter yet.
    """
    if getattr(run, "adapter_dir", None) is None:
        raise NotFoundError(f"Run {run.id} has no adapter yet (state: {(run.status or {}).get('state', '?')}). "
                            f"Wait for it to finish, or resume it.",
                            ko=f"실행 {run.id}에는 아직 어댑터가 없습니다 (상태: {state_ko((run.status or {}).get('state', '?'))}). "
                               f"끝나기를 기다리거나 재개하세요.")
    gen = load_generator(base_model or run_base_model(run), workspace, progress)
    gen.attach_adapter(run.id, run.adapter_dir)
    return gen
