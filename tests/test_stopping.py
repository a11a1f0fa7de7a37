"""Where an answer ends (workbench.models.stopping): stop tokens, stop strings, loops; the stopping criterion and the stream
agree with the final cut. Exact outputs over a character tokenizer (one id per character), so every case reads as
text; the real models are exercised in tests/test_inference.py and tests/test_answer.py."""

from __future__ import annotations

import random

import torch

from workbench.models.stopping import AnswerCutter, TokenQueue, clean_answer, loop_start, stop_criteria

END = 1  # the stop token of the character tokenizer
STOPS = ("\n\n", "\n질문:", "\nQuestion:")  # stop strings of several characters: a tail may begin one


class CharTokenizer:
    """Ids are code points; id 1 is a special stop token."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(i) for i in ids if not (skip_special_tokens and i == END))


def ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def cutter(strings=STOPS, loop=0) -> AnswerCutter:
    return AnswerCutter(CharTokenizer(), [END], strings, loop)  # type: ignore[arg-type]


def test_loop_start_is_where_the_first_repeated_ngram_begins():
    assert loop_start([1, 2, 3, 4, 1, 2, 3, 4, 1], 3) == 4
    assert loop_start([1, 2, 3, 4, 1, 2, 3, 4, 1], 4) == 4
    assert loop_start([1, 2, 3, 4, 5], 2) is None
    assert loop_start([7] * 6, 3) == 1  # a run of one token: "ㅋㅋㅋㅋ" keeps its first
    assert loop_start([1, 2, 1, 2], 0) is None  # 0: off


def test_an_answer_ends_at_its_stop_token_stop_string_or_loop():
    c = cutter()
    assert c.cut(ids("5번 통로입니다.") + [END] + ids("more")).__dict__ == {"text": "5번 통로입니다.", "tokens": 10,
                                                                       "stopped": "stop_token"}
    cut = c.cut(ids(" 5번 통로입니다.\n\n질문: 다른 질문"))
    assert (cut.text, cut.stopped, cut.tokens) == ("5번 통로입니다.", "stop_string", 10)
    assert c.cut(ids("Aisle 5.\nQuestion: next")).text == "Aisle 5."
    assert c.cut(ids("\n\n답변입니다")).text == "답변입니다"  # a blank line before the answer is not its end
    assert c.cut(ids("no end here")).stopped == "max_new_tokens"
    looped = cutter(loop=4).cut(ids("3번 통로, 3번 통로, 3번 통로, 3"))
    assert (looped.text, looped.stopped) == ("3번 통로,", "loop")
    # whichever rule comes first: a stop string before the loop wins, a loop before the stop string cuts it away
    assert cutter(loop=4).cut(ids("네.\n\nabcdabcdabcd")).stopped == "stop_string"
    assert cutter(loop=4).cut(ids("abcdabcd\n\n")).__dict__ == {"text": "abcd", "tokens": 4, "stopped": "loop"}
    assert clean_answer("  아이스크림은 5번 통로\ufffd") == "아이스크림은 5번 통로"  # a Korean character cut by max tokens


def test_the_criterion_ends_a_row_where_the_cut_does_and_rows_apart():
    c = cutter(loop=6)
    rng = random.Random(0)
    alphabet = ids("ab \n질문:") + [END]
    for _ in range(300):
        seq = [rng.choice(alphabet) for _ in range(rng.randint(1, 30))]
        first = next((k for k in range(1, len(seq) + 1) if c.ended(seq[:k])), None)
        if first is not None:  # generation stops there: what it kept is what the whole sequence gives
            assert c.cut(seq[:first]) == c.cut(seq)
    prompt = ids("Q?")
    crit = stop_criteria(c, len(prompt))
    batch = torch.tensor([prompt + ids("ok\n\nQ"), prompt + ids("okyes")])  # (B=2, T)
    assert crit(batch, None).tolist() == [True, False]
    assert crit(torch.tensor([ids("\n\n") + ids("a")]), None).tolist() == [False]  # stop strings in the prompt: ignored


def test_the_stream_shows_exactly_what_the_cut_keeps():
    for text, loop in (("5번 통로에 있습니다.\n\n질문: 다음", 0), ("  Aisle 5.\nAnswer: x", 0),
                       ("abcdeabcdeabcde", 5), ("짧은 답", 0), ("네\n", 8)):
        c = cutter(loop=loop)
        steps = [[i] for i in ids(text)]
        pieces = list(c.stream(steps))
        assert "".join(pieces) == c.cut(ids(text)).text, text
        shown = ""
        for p in pieces:
            shown += p
            assert c.cut(ids(text)).text.startswith(shown)  # never shows what a later cut removes


def test_the_token_queue_hands_each_row_its_ids():
    q = TokenQueue(2)
    q.put(torch.tensor([[5, 6], [7, 8]]))  # the prompt: skipped
    q.put(torch.tensor([10, 20]))
    q.put(torch.tensor([11, 21]))
    q.end()
    assert list(q.rows(0)) == [[10], [11]] and list(q.rows(1)) == [[20], [21]]
