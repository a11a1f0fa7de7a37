"""Inference: stop tokens on generated tokens only, one base serving base + adapter answers, streaming, RAG prompts.

The model tests use the real packaged SmolLM2 and a real LoRA adapter trained here for a few steps.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from workbench.answers.inference import GenerationConfig, load_generator
from workbench.common.errors import ConfigError, NotFoundError
from workbench.models.prompts import build_rag_prompt, format_prompt
from workbench.models.stopping import AnswerCutter, stop_criteria

GREEDY = GenerationConfig(max_new_tokens=24)
SHOP_Q = "Where is the ice cream?"
SHOP_A = "The ice cream is in aisle 5."


class TutorialStopOnToken(StoppingCriteria):
    """The tutorial's criterion, verbatim in spirit: it looks at the WHOLE sequence, prompt included."""

    def __init__(self, stop_token_id: int) -> None:
        self.stop_token_id = stop_token_id

    def __call__(self, input_ids, scores, **kwargs):
        return self.stop_token_id in input_ids[0]


@pytest.fixture(scope="module")
def tok(smollm2_dir):
    return AutoTokenizer.from_pretrained(str(smollm2_dir))


@pytest.fixture(scope="module")
def adapter_dir(smollm2_dir, tok, tmp_path_factory):
    """A real LoRA adapter: SmolLM2 + LoRA trained a few steps to answer SHOP_Q with SHOP_A, saved with its tokenizer."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"],
                                             lora_dropout=0.0, task_type="CAUSAL_LM"))
    prompt = format_prompt(SHOP_Q, template="chat", tokenizer=tok)
    ids = tok(prompt + SHOP_A + "<|im_end|>\n", return_tensors="pt", add_special_tokens=False).input_ids
    labels = ids.clone()
    labels[:, : len(tok(prompt, add_special_tokens=False).input_ids)] = -100  # loss on the answer only
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(25):
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert loss.item() < 0.5, f"the adapter did not learn the answer (loss {loss.item():.2f})"
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    del model
    return out


@pytest.fixture(scope="module")
def gen(smollm2_dir, adapter_dir):
    g = load_generator(str(smollm2_dir))
    g.attach_adapter("shop", adapter_dir)
    return g


# --- stop tokens (no model) ----------------------------------------------------------------------------------


def test_stop_criterion_ignores_the_prompt_unlike_the_tutorials():
    stop = 2
    prompt = [5, stop, 7]  # a chat prompt has an end-of-turn token after the system and user turns
    ours = stop_criteria(AnswerCutter(None, [stop]), prompt_length=len(prompt))  # type: ignore[arg-type]
    tutorial = TutorialStopOnToken(stop)
    seq = torch.tensor([prompt + [9]])
    assert bool(tutorial(seq, None)) is True  # the tutorial's bug: stops after the first generated token
    assert ours(seq, None).tolist() == [False]
    assert ours(torch.tensor([prompt + [9, stop]]), None).tolist() == [True]


# --- prompts (no model) --------------------------------------------------------------------------------------


def test_generation_config_validates_and_round_trips(tmp_path):
    with pytest.raises(ConfigError, match="temperature = 5"):
        GenerationConfig(temperature=5)
    cfg = GenerationConfig(max_new_tokens=7, do_sample=True, seed=4)
    assert GenerationConfig.load(cfg.save(tmp_path / "g.json")).to_dict() == cfg.to_dict()


# --- the real model ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tutorial_criterion_stops_at_once_ours_answers(gen, tok):
    prompt = format_prompt("Which city is the capital of France: London, Paris or Rome?", template="chat", tokenizer=tok)
    paris = tok(" Paris", add_special_tokens=False).input_ids
    assert len(paris) == 1 and paris[0] in tok(prompt, add_special_tokens=False).input_ids
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with gen.model.disable_adapter():
        old = gen.model.generate(**enc, max_new_tokens=24, do_sample=False,
                                 stopping_criteria=StoppingCriteriaList([TutorialStopOnToken(paris[0])]))
    assert old.shape[1] - enc.input_ids.shape[1] == 1  # the stop token in the prompt ended it at once
    ours = gen.generate(prompt, settings=GREEDY, stop_ids=paris)
    assert ours.stopped == "stop_token" and ours.completion_tokens > 1
    assert ours.text.endswith("Paris")  # stopped at the generated stop token, not before, not after
    plain = gen.generate(prompt, settings=GREEDY, template="chat")  # stops on <|im_end|>, well before 24 tokens
    assert plain.stopped == "stop_token" and plain.completion_tokens < 24
    assert plain.text.startswith(ours.text) and len(plain.text) > len(ours.text)


@pytest.mark.slow
def test_one_base_serves_base_and_fine_tuned_answers(gen, tmp_path):
    prompt = gen.format_prompt(SHOP_Q, template="chat")
    base = gen.generate(prompt, adapter=None, settings=GREEDY)
    ft = gen.generate(prompt, adapter="shop", settings=GREEDY)
    again = gen.generate(prompt, adapter=None, settings=GREEDY)
    assert ft.text == SHOP_A  # the adapter is on
    assert base.text != ft.text and "aisle 5" not in base.text  # ... and off again for the base answer
    assert again.text == base.text  # toggling back gives the base answer again
    assert base.prompt_tokens == ft.prompt_tokens > 0
    assert ft.completion_tokens > 0 and ft.tokens_per_s > 0 and ft.latency_s > 0
    with pytest.raises(NotFoundError, match="No adapter named 'other'"):
        gen.generate(prompt, adapter="other")
    with pytest.raises(NotFoundError, match="not a LoRA adapter folder"):
        gen.attach_adapter("x", tmp_path)


@pytest.mark.slow
def test_batched_answers_equal_one_at_a_time(gen, tok):
    long_context = "\n".join(f"[{i}] Aisle {i} has {thing}." for i, thing in enumerate(
        ["bread", "milk", "fruit", "frozen food and the ice cream", "drinks", "snacks"], 1))
    prompts = [gen.format_prompt(q, c, template="chat") for q, c in [
        (SHOP_Q, ""), ("Name three fruits.", ""), ("아이스크림이 있는 곳은?", ""),
        ("Answer from the documents: where is the ice cream?", long_context)]]
    assert len({len(tok(p).input_ids) for p in prompts}) == 4  # four lengths: three rows of every batch are padded
    stops = []
    for adapter in (None, "shop"):
        alone = [gen.generate(p, adapter=adapter, settings=GREEDY) for p in prompts]
        batched = gen.generate_batch(prompts, adapter=adapter, settings=GREEDY)
        in_pairs = gen.generate_batch(prompts, adapter=adapter, settings=GREEDY, batch_size=2)
        for a, b, c in zip(alone, batched, in_pairs):
            assert (b.text, b.completion_tokens, b.stopped, b.prompt_tokens) == (a.text, a.completion_tokens, a.stopped,
                                                                                 a.prompt_tokens)
            assert (c.text, c.stopped) == (a.text, a.stopped)
            assert b.prompt == a.prompt and b.adapter == adapter and b.batch_size == 4 and c.batch_size == 2
        stops += [r.stopped for r in alone]
        if adapter == "shop":
            assert batched[0].text == SHOP_A and batched[0].stopped == "stop_token"
    assert set(stops) == {"stop_token", "max_new_tokens"}  # rows stopped on their own while others went on
    assert gen.generate_batch([], settings=GREEDY) == []
    with pytest.raises(ConfigError, match="batch_size = 0"):
        gen.generate_batch(prompts, settings=GREEDY, batch_size=0)


@pytest.mark.slow
def test_streaming_yields_the_same_text(gen):
    """Text comes as it is generated, less the last `loop_tokens` tokens that a loop cut could still remove: an answer
    longer than that comes in several pieces."""
    prompt = gen.format_prompt("Write a short paragraph about apples.", template="chat")
    whole = gen.generate(prompt, settings=GREEDY)
    assert whole.completion_tokens > GREEDY.loop_tokens + 2
    stream = gen.stream(prompt, settings=GREEDY)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == whole.text
    assert stream.result is not None and stream.result.text == whole.text
    assert stream.result.completion_tokens == whole.completion_tokens and stream.result.tokens_per_s > 0


@pytest.mark.slow
def test_four_streams_in_one_batch_equal_the_answers_one_at_a_time(gen):
    """Compare's four columns: base and adapter rows, chat and alpaca templates, in one mixed-adapter batch; each
    stream's pieces add up to its answer, and every answer equals the one generated alone (greedy)."""
    from workbench.answers.answer import interleave
    from workbench.answers.inference import StreamRequest

    chat = gen.format_prompt(SHOP_Q, template="chat")
    alpaca = gen.format_prompt("Name three fruits.", "Fruit: apples, pears, plums.", template="alpaca")
    requests = [StreamRequest(chat, None, "chat"), StreamRequest(alpaca, None, "alpaca"),
                StreamRequest(chat, "shop", "chat"), StreamRequest(alpaca, "shop", "alpaca")]
    alone = [gen.generate(r.prompt, adapter=r.adapter, settings=GREEDY, template=r.template) for r in requests]
    streams = gen.stream_many(requests, settings=GREEDY)
    texts = ["", "", "", ""]
    order = []
    for i, piece in interleave(dict(enumerate(streams))):
        texts[i] += piece
        order.append(i)
    for a, s, text in zip(alone, streams, texts):
        assert s.result is not None and text == s.result.text
        assert (s.result.text, s.result.stopped, s.result.completion_tokens) == (a.text, a.stopped, a.completion_tokens)
        assert s.result.batch_size == 4 and s.result.adapter == a.adapter and s.result.latency_s > 0
    assert alone[2].text == SHOP_A and alone[0].text != SHOP_A  # the adapter is on for its rows only
    assert len(set(order[:4])) > 1  # the columns grow together, not one after another


@pytest.mark.slow
def test_rag_prompt_through_the_model_with_alpaca_template(gen):
    instruction, context = build_rag_prompt("Where is the ice cream?", [{"text": "Ice cream: aisle 5.", "metadata": {}}], None, "en")
    prompt = gen.format_prompt(instruction, context, template="alpaca")
    assert "### Input:\nIce cream: aisle 5.\n\n### Response:\n" in prompt  # no "[1]" header to copy
    r = gen.generate(prompt, settings=GenerationConfig(max_new_tokens=8), template="alpaca")
    assert r.prompt_tokens > 40 and 0 < r.completion_tokens <= 8
    with pytest.raises(ConfigError, match=r"reads at most 8192\. Retrieve fewer chunks"):
        gen.generate(prompt * 200, settings=GenerationConfig(max_new_tokens=8))
