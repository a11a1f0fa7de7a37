"""Prompts for a pretrained base model: question -> answer examples it can continue.

A pretrained model (the packaged Gemma 3 270M, Llama-3-8B without "Instruct") continues text; it does not follow
instructions. Asked "Answer the question using only the documents below ..." it recites the instruction, copies the
context's headers, or loops until max_new_tokens. Shown a pattern instead, it continues the pattern:

    질문: 도서관에서 책은 몇 권까지 빌릴 수 있나요?
    답변: 한 번에 다섯 권까지 빌릴 수 있습니다.

    질문: <the user's question>
    답변:

For the RAG sources each example starts with a short document and the answer is taken from it, and the retrieved
chunks come before the user's question, so the model reads first and answers after. The examples are generic (a
library, a museum, a bus, a post office) and teach the format only: they must never hold the user's own facts, or
the base column would learn them from its prompt and "base" and "RAG" would stop meaning what they say
(`tests/test_fewshot.py` checks them against the sample data). Their language is the question's: Korean examples for
a question with Hangul in it, English ones otherwise.

The answer ends at the pattern's boundary, its line break (`STOP_STRINGS`): every example answers in one line, and a
model that read them goes on with the next "질문:" / "Question:" line, or with the next line of its document. Measured
on the sample shop's validation rows (docs/benchmarks.md, "Readers that answer and stop"): Gemma's base + RAG answers
ended on their own 97% of the time at the line break against 42% at a blank line, char F1 0.452 against 0.316.
Nothing here imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# (question, answer) pairs: the format of a short answer, nothing about any user's data.
EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "ko": (
        ("도서관에서 책은 몇 권까지 빌릴 수 있나요?", "한 번에 다섯 권까지 빌릴 수 있습니다."),
        ("박물관 입장료는 얼마인가요?", "어른은 4,000원이고 어린이는 무료입니다."),
        ("우체국은 토요일에도 문을 여나요?", "아니요, 우체국은 토요일과 일요일에는 쉽니다."),
    ),
    "en": (
        ("How many books can I borrow from the library at once?", "You can borrow up to five books at a time."),
        ("What does a museum ticket cost?", "Adults pay 4,000 won; children get in free."),
        ("Does the post office work at weekends?", "No, it only works from Monday to Friday."),
    ),
}

# (document, question, answer): the answer is read from the document, briefly.
DOCUMENT_EXAMPLES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "ko": (
        ("시립 도서관은 화요일부터 일요일까지 오전 9시에 문을 열고 오후 6시에 닫습니다. 월요일과 공휴일에는 쉽니다. "
         "책은 한 번에 다섯 권까지 2주 동안 빌릴 수 있습니다.",
         "도서관은 언제 쉬나요?", "월요일과 공휴일에 쉽니다."),
        ("시내버스 요금은 교통카드로 1,250원입니다. 버스에서 내린 뒤 30분 안에 다른 버스로 갈아타면 환승 요금은 "
         "무료입니다.",
         "버스를 갈아탈 때 요금을 또 내야 하나요?", "아니요, 내린 뒤 30분 안에 갈아타면 무료입니다."),
    ),
    "en": (
        ("The city library opens at 9 a.m. and shuts at 6 p.m. from Tuesday to Sunday. It does not open on Mondays or "
         "national holidays. Books can be borrowed for two weeks, up to five at a time.",
         "When is the library shut?", "On Mondays and national holidays."),
        ("A city bus ride costs 1,250 won with a transit card. A transfer to another bus within 30 minutes of getting "
         "off is free.",
         "Do I pay again when I change buses?", "No, a transfer within 30 minutes of getting off is free."),
    ),
}

MARKERS: dict[str, dict[str, str]] = {
    "ko": {"document": "문서", "question": "질문", "answer": "답변"},
    "en": {"document": "Document", "question": "Question", "answer": "Answer"},
}

# Where an answer of this format ends: its line break (the next marker line of either language starts after one).
STOP_STRINGS: tuple[str, ...] = ("\n",)

_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


def language_of(text: str) -> str:
    """"ko" when `text` has Hangul in it, else "en": the language of the examples a question gets."""
    return "ko" if _HANGUL.search(text or "") else "en"


def one_block(text: str) -> str:
    """`text` without blank lines (runs of line breaks become one), so that it stays inside its example: a blank line
    separates two examples."""
    lines = [line.strip() for line in str(text).strip().splitlines()]
    return "\n".join(line for line in lines if line)


def _chunk_text(chunk: Any) -> str:
    if isinstance(chunk, dict):
        return str(chunk.get("text") or chunk.get("page_content") or "")
    text = getattr(chunk, "text", None)
    return str(text if text is not None else getattr(chunk, "page_content", ""))


def completion_text(question: str, row_input: str = "", chunks: Sequence[Any] | None = None) -> str:
    """The example prompt for `question` (a dataset row's `row_input` on the line after it): question -> answer
    examples, or document -> question -> answer examples when `chunks` is given (RAG; the retrieved chunks' texts
    become the document, without numbers or file names), ending in the answer marker the model continues after.
    The examples' language follows the question."""
    lang = language_of(question)
    m = MARKERS[lang]
    asked = one_block(question) + (f"\n{one_block(row_input)}" if (row_input or "").strip() else "")
    blocks: list[str] = []
    if chunks is None:
        blocks += [f"{m['question']}: {q}\n{m['answer']}: {a}" for q, a in EXAMPLES[lang]]
        blocks.append(f"{m['question']}: {asked}\n{m['answer']}:")
    else:
        blocks += [f"{m['document']}: {d}\n{m['question']}: {q}\n{m['answer']}: {a}" for d, q, a in DOCUMENT_EXAMPLES[lang]]
        document = "\n".join(one_block(_chunk_text(c)) for c in chunks if _chunk_text(c).strip())
        blocks.append(f"{m['document']}: {document}\n{m['question']}: {asked}\n{m['answer']}:")
    return "\n\n".join(blocks)
