"""Where an answer ends: stop tokens, the format's boundary (stop strings), and a generation that has started to loop.

A model stops by itself when it emits a stop token (EOS, the chat template's end of turn). A pretrained base model
prompted with question -> answer examples (`workbench.models.fewshot`) does not: after its answer it goes on with the next
"질문:" of the pattern, or repeats itself until max_new_tokens. So an answer also ends

- at the first stop string of its prompt format (`prompts.stop_strings`: a blank line or the next question marker for
  the example prompts, the next "### " section for the Alpaca templates), looked for after the answer's first
  non-blank character;
- where it starts to repeat itself: once the last `loop_tokens` generated tokens already occurred earlier in the
  answer, the answer is cut where that repetition began (it keeps the first occurrence).

`AnswerCutter.cut` gives the answer and why it ended from its generated token ids; the same decision is a
transformers `StoppingCriteria` (`stop_criteria`), so that generation ends there too instead of running on, and
`AnswerCutter.stream` turns a token stream into text pieces that never show what the cut removes. The decision at
each step depends only on the tokens generated so far, so a row of a batch ends where it would end alone.

torch / transformers are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import PreTrainedTokenizerBase

Stopped = Literal["stop_token", "stop_string", "loop", "max_new_tokens"]
# Ends an answer chose itself: the model emitted a stop token, or the format's boundary (the next question).
STOPPED_ON_ITS_OWN: frozenset[str] = frozenset({"stop_token", "stop_string"})

_TRAILING = " \t\r\n\ufffd"  # whitespace, and the replacement character of a multi-byte character cut off


def clean_answer(text: str) -> str:
    """An answer without surrounding whitespace, nor the broken character left when max_new_tokens cut a multi-byte
    (e.g. Korean) character in the middle of its byte-level tokens."""
    return text.strip().rstrip(_TRAILING)


def loop_start(ids: Sequence[int], n: int) -> int | None:
    """Where a repetition begins in generated `ids`: the start of the first n-gram that already occurred earlier
    (the earlier occurrence may overlap it), or None. A run of one token repeated n times counts as well
    ("....", "ㅋㅋㅋㅋ" of n+1 tokens): its second n-gram repeats the first."""
    if n <= 0 or len(ids) <= n:
        return None
    seen: set[tuple[int, ...]] = set()
    for start in range(len(ids) - n + 1):
        gram = tuple(ids[start:start + n])
        if gram in seen:
            return start
        seen.add(gram)
    return None


def _find_stop(text: str, stops: Sequence[str]) -> int | None:
    """The position of the first stop string in `text` after its first non-blank character, or None."""
    body = len(text) - len(text.lstrip())
    hits = [p for p in (text.find(s, body + 1) for s in stops if s) if p >= 0]
    return min(hits) if hits else None


@dataclasses.dataclass
class Cut:
    """An answer's text, how many of its generated tokens it keeps, and why it ended."""

    text: str
    tokens: int
    stopped: Stopped


class AnswerCutter:
    """The end-of-answer rules for one tokenizer and prompt format.

    Args:
        tokenizer: decodes the generated ids (special tokens skipped).
        stop_ids: token ids that end an answer (`prompts.stop_token_ids`).
        stop_strings: texts that end an answer (`prompts.stop_strings`); the answer is cut before them.
        loop_tokens: n of the repeated n-gram that cuts a loop (0: never cut).
    """

    def __init__(self, tokenizer: "PreTrainedTokenizerBase", stop_ids: Iterable[int], stop_strings: Sequence[str] = (),
                 loop_tokens: int = 0) -> None:
        self.tokenizer = tokenizer
        self.stop_ids = frozenset(int(i) for i in stop_ids)
        self.stop_strings = tuple(s for s in stop_strings if s)
        self.loop_tokens = int(loop_tokens)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def ended(self, ids: Sequence[int]) -> bool:
        """Whether an answer whose generated ids are `ids` has ended (the stopping criterion's question)."""
        if not ids:
            return False
        if ids[-1] in self.stop_ids or (self.loop_tokens and loop_start(ids, self.loop_tokens) is not None):
            return True
        return bool(self.stop_strings) and _find_stop(self._decode(ids), self.stop_strings) is not None

    def cut(self, ids: Sequence[int]) -> Cut:
        """The answer in generated `ids`: cut at the first stop token, stop string or loop, whichever comes first.

        `tokens` counts the generated tokens up to the end (the stop token included); `stopped` says why it ended,
        "max_new_tokens" when none of the rules did.
        """
        ids = list(ids)
        end, stopped = len(ids), "max_new_tokens"
        for j, i in enumerate(ids):
            if i in self.stop_ids:
                end, stopped = j + 1, "stop_token"
                break
        # The stop token stays in the text when it is text (a stop word such as " Paris"); a special token (EOS,
        # end of turn) is skipped by the decoder. The loop rule looks at the answer's tokens without it.
        kept = list(ids[:end])
        loop = loop_start([i for i in kept if i not in self.stop_ids], self.loop_tokens) if self.loop_tokens else None
        if loop is not None:
            kept, end, stopped = kept[:loop], loop, "loop"
        text = self._decode(kept)
        at = _find_stop(text, self.stop_strings) if self.stop_strings else None
        if at is not None:
            text, stopped = text[:at], "stop_string"
            end = self._tokens_for(kept, at)
        return Cut(clean_answer(text), end, stopped)  # type: ignore[arg-type]

    def _tokens_for(self, ids: Sequence[int], chars: int) -> int:
        """The fewest leading tokens of `ids` whose text reaches `chars` characters (where a stop string began)."""
        for n in range(1, len(ids) + 1):
            if len(self._decode(ids[:n])) >= chars:
                return n
        return len(ids)

    def stream(self, token_batches: Iterable[Sequence[int]]) -> Iterator[str]:
        """Text pieces of one answer from its generated ids as they come (each item: the new ids of one step). The
        pieces add up to exactly `cut(all ids).text`: the text that a stop string or a loop could still remove (the
        last `loop_tokens` tokens, a tail that may begin a stop string, trailing whitespace, a broken character) is
        held back until it is known to stay."""
        ids: list[int] = []
        sent = ""
        for new in token_batches:
            ids.extend(int(i) for i in new)
            if self.ended(ids):
                break
            safe = ids[: max(0, len(ids) - self.loop_tokens)] if self.loop_tokens else ids
            text = self._decode(safe).lstrip()
            held = max((len(s) - 1 for s in self.stop_strings), default=0)
            piece = _stable_prefix(text, held, self.stop_strings)
            if piece.startswith(sent) and len(piece) > len(sent):
                yield piece[len(sent):]
                sent = piece
        final = self.cut(ids).text
        if final.startswith(sent) and len(final) > len(sent):
            yield final[len(sent):]


def _stable_prefix(text: str, held: int, stops: Sequence[str]) -> str:
    """The part of a growing answer text that no later token can change: without a tail that may begin a stop string
    (at most `held` characters), trailing whitespace and a broken character."""
    cut = len(text)
    for k in range(min(held, len(text)), 0, -1):
        tail = text[-k:]
        if any(s.startswith(tail) for s in stops):
            cut = len(text) - k
            break
    return text[:cut].rstrip(_TRAILING)


def stop_criteria(cutter: "AnswerCutter | Sequence[AnswerCutter]", prompt_length: int) -> Any:
    """A transformers `StoppingCriteria` that ends each row of a batch once its cutter says its answer has ended:
    `cutter` holds for every row, or is a sequence with one per row (rows asked with different templates).

    Only tokens after `prompt_length` are looked at: stop tokens inside the prompt (a chat prompt has one after every
    earlier turn) must not end the answer before it starts.
    """
    import torch
    from transformers import StoppingCriteria

    per_row = list(cutter) if isinstance(cutter, Sequence) else None

    class StopAtAnswerEnd(StoppingCriteria):
        def __init__(self) -> None:
            cutters = per_row or [cutter]
            ids = sorted({i for c in cutters for i in c.stop_ids})
            self.same_stops = len({c.stop_ids for c in cutters}) == 1
            self.stop_ids = torch.tensor(ids, dtype=torch.long)
            self.prompt_length = int(prompt_length)
            self.text_rules = any(c.stop_strings or c.loop_tokens for c in cutters)

        def __call__(self, input_ids: "torch.LongTensor", scores: Any, **kwargs: Any) -> "torch.BoolTensor":
            generated = input_ids[:, self.prompt_length:]  # (B, T_new): never the prompt
            if per_row is None or self.same_stops:
                done = torch.isin(generated, self.stop_ids.to(input_ids.device)).any(dim=-1)
            else:  # each row its own stop tokens
                rows = generated.tolist()
                done = torch.tensor([any(i in c.stop_ids for i in r) for r, c in zip(rows, per_row)],
                                    dtype=torch.bool, device=input_ids.device)
            if self.text_rules:
                rows = generated.tolist()
                cutters = per_row or [cutter] * len(rows)
                extra = [not d and c.ended(r) for r, d, c in zip(rows, done.tolist(), cutters)]
                done = done | torch.tensor(extra, dtype=torch.bool, device=input_ids.device)
            return done

    return StopAtAnswerEnd()


class TokenQueue:
    """A transformers streamer that hands each row's new token ids to a consumer thread: `rows(i)` iterates row i's
    ids step by step (the first `put`, the prompt, is skipped). For a batch of B rows, every step puts B ids."""

    def __init__(self, batch: int, timeout: float = 600.0) -> None:
        import queue

        self._queues = [queue.Queue() for _ in range(batch)]
        self._timeout = timeout
        self._prompt_seen = False

    def put(self, value: "torch.Tensor") -> None:
        if not self._prompt_seen:  # generate puts the prompt ids first
            self._prompt_seen = True
            return
        flat = value.reshape(len(self._queues), -1).tolist()
        for q, ids in zip(self._queues, flat):
            q.put(ids)

    def end(self) -> None:
        for q in self._queues:
            q.put(None)

    def rows(self, i: int) -> Iterator[list[int]]:
        q = self._queues[i]
        while True:
            item = q.get(timeout=self._timeout)
            if item is None:
                return
            yield item
