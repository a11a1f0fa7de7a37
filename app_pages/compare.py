"""Compare: base, fine-tuned, RAG and fine-tuned + RAG (and optionally an endpoint) answer the same question;
batch evaluation on the test split; the knowledge-freshness experiment. Every answer goes through
`workbench.answers.answer` (the same prompts as `workbench ask` and `workbench evaluate`)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from workbench.answers import answer as an
from workbench.answers.answer import EndpointAnswerer
from workbench.answers.inference import GenerationConfig, run_base_model
from workbench.compare import eval_jobs
from workbench.compare import evaluation as ev
from workbench.compare import freshness as fr
from workbench.compare.metrics import score_answer
from workbench.dataset.alpaca import list_datasets, load_split
from workbench.kb.embeddings import EMBEDDING_REGISTRY
from workbench.kb.retrieval import RetrievalConfig, collection_config
from workbench.models.prompts import ANSWER_TEMPLATES, DEFAULT_RAG_TEMPLATES, custom_rag_template
from workbench.models.registry import DEFAULT_MODEL, REGISTRY, instruction_tuned
from workbench.ui import compare_views as views
from workbench.ui import freshness_views, resources, retrieval_views
from workbench.ui.common import user_errors, workspace
from workbench.ui.forms import build_config, config_field, config_form
from workbench.ui.i18n import lang, t, tabs  # not `pick`: the page uses that name
from workbench.ui.i18n import pick as text_in

ws = workspace()
DEMO = fr.load_demo()
# Labels are computed once per run: AppTest calls format_func outside the script, where the language is unknown.
LABELS = {s: an.source_label(s, lang()) for s in an.SOURCES}
label = LABELS.__getitem__

st.title(t("Compare", "비교"))
st.caption(t("One loaded base model answers as itself and with a run's LoRA adapter switched on; the RAG columns get the "
             "retrieved chunks in their prompt. Same question, same generation settings, side by side.",
             "한 번 불러온 기본 모델이 그대로, 그리고 실행의 LoRA 어댑터를 켠 채로 답합니다. RAG 열은 검색된 청크를 프롬프트에 "
             "받습니다. 같은 질문, 같은 생성 설정으로 나란히 비교합니다."))

# --- what answers ------------------------------------------------------------------------------------------
runs: dict[str, Any] = {}
collections: list[str] = []
with user_errors():
    from workbench.kb.vectordb import list_collections
    from workbench.training.runs import list_runs

    runs = {r.id: r for r in list_runs(ws) if r.adapter_dir is not None}
    collections = [c.name for c in list_collections(ws)]
c1, c2, c3 = st.columns(3)
no_run, no_collection = t("(none: no fine-tuned columns)", "(없음: 파인튜닝 열 없음)"), t("(none: no RAG columns)", "(없음: RAG 열 없음)")
views.restore_choice("compare.run", ["", *runs], next(iter(runs), ""))  # the newest finished run
run = runs.get(c1.selectbox(t("Fine-tuned run", "파인튜닝 실행"), ["", *runs], key="compare.run", format_func=lambda r: r or no_run))
views.restore_choice("compare.collection", ["", *collections], an.default_collection(run, collections, ws))
collection = c2.selectbox(t("Knowledge-base collection", "지식 베이스 컬렉션"), ["", *collections], key="compare.collection",
                          format_func=lambda c: c or no_collection)
if run is not None:
    base_model = run_base_model(run)
    c3.text_input(t("Base model (from the run)", "기본 모델 (실행에서)"), base_model, disabled=True, key="compare.base_fixed")
else:
    base_model = c3.selectbox(t("Base model", "기본 모델"), list(REGISTRY), key="compare.base_model",
                              index=list(REGISTRY).index(DEFAULT_MODEL), format_func=lambda k, _l=lang(): text_in(REGISTRY[k].label, _l))
if not runs:
    st.caption(t("No finished training run with an adapter yet: train one on the Fine-tune page for the fine-tuned columns.",
                 "어댑터가 있는 학습 실행이 아직 없습니다: 파인튜닝 열을 보려면 파인튜닝 페이지에서 학습하세요."))

with st.expander(t("OpenAI-compatible endpoint (optional 5th column)", "OpenAI 호환 엔드포인트 (선택, 5번째 열)")):
    e1, e2, e3 = st.columns(3)
    api_url = e1.text_input(t("Base URL", "기본 URL"), key="compare.api_url", placeholder="http://127.0.0.1:8000/v1").strip()
    api_model = e2.text_input(t("Model name", "모델 이름"), key="compare.api_model").strip()
    api_key = e3.text_input(t("API key (kept in memory only)", "API 키 (메모리에만 보관)"), type="password", key="compare.api_key")
endpoint = EndpointAnswerer(api_url, api_model, api_key or None) if api_url and api_model else None

available = an.available_sources(adapter=run is not None, collection=bool(collection), endpoint=endpoint is not None)
views.restore_sources(available)
sources: list[str] = st.multiselect(t("Answer sources", "답변 소스"), available, key="compare.sources", format_func=label,
                                    max_selections=5)
views.keep_choices({"compare.run": ["", *runs], "compare.collection": ["", *collections], "compare.sources": available})

# --- shared settings: drawn from GenerationConfig / RetrievalConfig ------------------------------------------
with st.expander(t("Generation settings (shared by every column)", "생성 설정 (모든 열 공통)")):
    gen_values = config_form(GenerationConfig, ["max_new_tokens", "do_sample", "temperature", "top_p",
                                                "repetition_penalty", "seed"], key_prefix="compare.", columns=6)
    trained_with = an.run_template(run)
    auto_label = (t(f"auto: the run's own ({trained_with})", f"자동: 실행의 템플릿 ({trained_with})") if trained_with
                  else t("auto: the model's default", "자동: 모델 기본값"))
    template = st.selectbox(t("Prompt template", "프롬프트 템플릿"), ["auto", *ANSWER_TEMPLATES], key="compare.template",
                            format_func=lambda x: auto_label if x == "auto" else x,
                            help=t("auto prompts a fine-tuned adapter the way it was trained, and the base model the way "
                                   "it can follow: an instruction-tuned model through its chat template, a pretrained "
                                   "one through question -> answer examples (completion). Another template for a run's "
                                   "adapter shows a warning: it answers prompts it never saw.",
                                   "자동은 파인튜닝 어댑터를 학습한 방식 그대로, 기본 모델은 따라올 수 있는 방식으로 묻습니다: "
                                   "지시 학습된 모델은 채팅 템플릿으로, 사전학습만 된 모델은 질문 → 답변 예시(completion)로. "
                                   "실행의 어댑터에 다른 템플릿을 고르면 경고가 나옵니다: 본 적 없는 형식의 프롬프트에 답하게 "
                                   "됩니다."))
    if template == "auto" and not instruction_tuned(base_model, None, ws):
        st.caption(t("This base model is pretrained, not instruction-tuned: its own answers (base, base + RAG) are "
                     "asked with short question -> answer examples, the retrieved chunks before the question; the RAG "
                     "prompt template below is not used for them.",
                     "이 기본 모델은 지시 학습 없이 사전학습만 된 모델입니다: 모델 자체의 답(기본 모델, RAG)은 짧은 질문 → "
                     "답변 예시로 묻고, 검색된 청크는 질문 앞에 둡니다. 아래의 RAG 프롬프트 템플릿은 이 답들에 쓰지 "
                     "않습니다."))
settings = build_config(GenerationConfig, gen_values)

with st.expander(t("Retrieval and the RAG prompt", "검색과 RAG 프롬프트"), expanded=False):
    r1, r2 = st.columns([1, 3])
    retrieval_views.follow_saved(collection, ws, {"mode": "compare.mode"}, "compare.saved_for")  # the lab's saved mode
    mode = config_field(RetrievalConfig, "mode", key="compare.mode", container=r1, widget="radio")
    k = config_field(RetrievalConfig, "k", key="compare.k", container=r1, value=an.DEFAULT_K, max_value=20)
    if "compare.rag_template" not in st.session_state or st.session_state.pop("compare.rag_reset_now", False):
        st.session_state["compare.rag_template"] = DEFAULT_RAG_TEMPLATES[lang()]
    rag_template = r2.text_area(t("RAG prompt template: {question} is replaced by the question; the retrieved chunks go "
                                  "into the prompt's input section, or where you write {context}. Left as the default, "
                                  "each question gets the default of its own language",
                                  "RAG 프롬프트 템플릿: {question} 자리에 질문이 들어가고, 검색된 청크는 프롬프트의 input "
                                  "부분이나 {context}를 쓴 자리에 들어갑니다. 기본값 그대로면 질문마다 그 언어의 "
                                  "기본값을 씁니다"), key="compare.rag_template", height=130)
    rag_template = custom_rag_template(rag_template)
    if r2.button(t("Reset to the default for this language", "이 언어의 기본값으로 되돌리기"), key="compare.rag_reset"):
        st.session_state["compare.rag_reset_now"] = True
        st.rerun()
retrieval = collection_config(collection, ws, mode=mode, k=int(k))  # with the collection's saved weights


def _setup(srcs: list[str]) -> an.AnswerSetup:
    """What `srcs` need (`answer.prepare`), with the page's cached model."""
    gen = None
    if any(s not in an.API_SOURCES for s in srcs):
        with st.spinner(t("Loading the model…", "모델을 불러오는 중…")):
            gen = resources.generator(base_model, str(ws.root))
    return an.prepare(srcs, ws, run=run, base_model=base_model, template=template, collection=collection,
                      retrieval=retrieval, rag_template=rag_template, endpoint=endpoint, generator=gen)


def _answer(question: str, srcs: list[str], *, row_input: str = "") -> dict[str, Any]:
    """Answer with every source through `workbench.answers.answer`, streaming into one column per source."""
    setup = _setup(srcs)
    return views.stream_answers(an.ask(question, srcs, setup, settings, row_input=row_input), setup, label)  # type: ignore[arg-type]


tab_ask, tab_eval, tab_fresh = tabs("compare.tab", [("Ask", "질문하기"), ("Batch evaluation", "일괄 평가"),
                                                    ("Knowledge freshness", "지식 최신성")])
split_datasets = [d.name for d in list_datasets(ws) if d.split]

with tab_ask:
    qmodes = {"type": t("Type a question", "직접 입력"), "test": t("Pick a test-split row", "테스트 행 고르기")}
    qmode = st.radio(t("Question", "질문"), list(qmodes), key="compare.qmode", horizontal=True, format_func=qmodes.__getitem__)
    question, row_input, reference = "", "", None
    if qmode == "test" and not split_datasets:
        st.info(t("No split dataset yet: split one on the Dataset page.", "분할된 데이터셋이 아직 없습니다: 데이터셋 페이지에서 분할하세요."))
    elif qmode == "test":
        ds = st.selectbox(t("Dataset", "데이터셋"), split_datasets, key="compare.dataset")
        rows: list[dict[str, Any]] = []
        with user_errors():
            rows = load_split(ds, "test", ws)
        idx = st.selectbox(t("Test row", "테스트 행"), list(range(len(rows))), key="compare.row",
                           format_func=lambda i: f"{i + 1}. {rows[i]['instruction'][:90]}")
        if rows and idx is not None:  # the row's instruction and input stay apart, as training and evaluation keep them
            question, row_input, reference = str(rows[idx]["instruction"]), str(rows[idx].get("input") or ""), str(rows[idx]["output"])
            st.text(question + (f"\n\n{row_input}" if row_input.strip() else ""))
            st.caption(t("Reference answer", "참고 답변"))
            st.text(reference)
    else:
        st.session_state.setdefault("compare.question", DEMO.questions[lang()])
        question = st.text_area(t("Your question", "질문"), key="compare.question", height=80)
    if st.button(t("Ask every source", "모든 소스에 묻기"), type="primary", key="compare.ask",
                 disabled=not question.strip() or not sources or settings is None):
        with user_errors():
            # A test row is asked as it is stored (as `ask` and `evaluate` ask it); a typed question without its margins.
            result = _answer(question if qmode == "test" else question.strip(), sources, row_input=row_input)
            st.session_state["compare.result"] = {**result, "reference": reference, "asked": (question.strip(), row_input)}
            st.rerun()
    if st.session_state.get("compare.result", {}).get("asked", (question.strip(), row_input)) != (question.strip(), row_input):
        del st.session_state["compare.result"]  # answers to another question or row
    result = st.session_state.get("compare.result")
    if result:
        if result.get("reference"):
            scores = {s: score_answer(a["text"], result["reference"]) for s, a in result["answers"].items()}
            st.dataframe(views.score_table(scores, label), hide_index=True)
        views.show_answers(result, label)

with tab_eval:
    if not split_datasets:
        st.info(t("No split dataset yet: split one on the Dataset page, then evaluate every source on its test split.",
                  "분할된 데이터셋이 아직 없습니다: 데이터셋 페이지에서 분할한 뒤, 테스트 분할로 모든 소스를 평가하세요."))
    else:
        b = st.columns([3, 2, 2, 3, 2])
        eval_ds = b[0].selectbox(t("Dataset", "데이터셋"), split_datasets, key="compare.eval_dataset")
        limit = config_field(ev.EvalConfig, "limit", key="compare.eval_limit", container=b[1], value=20)
        skip = t("(skip)", "(생략)")  # AppTest calls format_func outside the script, where the language is unknown
        emb = config_field(ev.EvalConfig, "embedding_model", key="compare.eval_embedding", container=b[2],
                           options=["", *EMBEDDING_REGISTRY], format_func=lambda e: EMBEDDING_REGISTRY[e].label if e else skip)
        with b[3].popover(t("LLM judge (optional)", "LLM 심사 (선택)")):
            judge_url = config_field(ev.EvalConfig, "judge_base_url", key="compare.judge_url").strip()
            judge_model = config_field(ev.EvalConfig, "judge_model", key="compare.judge_model").strip()
        batch_size = config_field(ev.EvalConfig, "batch_size", key="compare.eval_batch_size", container=b[4])
        if st.button(t("Start the evaluation", "평가 시작"), type="primary", key="compare.eval_start",
                     disabled=not sources or settings is None):
            with user_errors():
                cfg = ev.EvalConfig(
                    dataset=eval_ds, run_id=run.id if run else "", base_model="" if run else base_model,
                    collection=collection, sources=tuple(sources), limit=int(limit),
                    prompt_template=None if template == "auto" else template, rag_template=rag_template,
                    generation=settings.to_dict(), retrieval=retrieval.to_dict() if collection else {},  # type: ignore[union-attr]
                    embedding_model=emb, batch_size=int(batch_size), judge_base_url=judge_url, judge_model=judge_model,
                    endpoint_base_url=api_url if endpoint else "", endpoint_model=api_model if endpoint else "")
                folder = eval_jobs.start_evaluation(cfg, ws, env={"OPENAI_API_KEY": api_key} if api_key else None)
                st.session_state["compare.eval_pick"] = str(folder)
                st.rerun()
    folders = [str(p) for p in reversed(eval_jobs.list_evaluations(ws))]
    if folders:
        if st.session_state.get("compare.eval_pick") not in folders:
            st.session_state["compare.eval_pick"] = folders[0]
        pick = st.selectbox(t("Evaluation", "평가"), folders, key="compare.eval_pick", format_func=views.evaluation_name)
        status: dict[str, Any] = {}
        with user_errors():
            status = eval_jobs.evaluation_status(pick)
        if status.get("state") in ("pending", "running"):
            views.evaluation_progress(pick)
        elif status.get("state") == "failed":
            views.evaluation_failed(status)
        summary = ev.load_summary(pick)
        if summary:
            views.show_report(pick, summary)

with tab_fresh:
    st.markdown(t(
        "**Change a fact, re-ingest, ask again.** The sample shop moves its ice cream from aisle 3 to aisle 5. "
        "RAG reads the documents at question time and follows at once; a fine-tuned model learned the old fact into "
        "its weights and keeps it until it is trained again.",
        "**사실을 바꾸고, 다시 넣고, 다시 묻기.** 예제 상점이 아이스크림을 3번 통로에서 5번 통로로 옮깁니다. RAG는 질문할 때 "
        "문서를 읽으므로 바로 따라가고, 파인튜닝 모델은 옛 사실을 가중치에 배웠기 때문에 다시 학습할 때까지 그대로 답합니다.",
    ))
    if not collection:
        st.info(t("Pick a knowledge-base collection above (the sample shop's, built on the Knowledge base page).",
                  "위에서 지식 베이스 컬렉션을 고르세요 (지식 베이스 페이지에서 만든 예제 상점 컬렉션)."))
    else:
        freshness_views.panel(DEMO, collection, [s for s in ("base", "ft", "rag", "ft_rag") if s in available],
                              _setup, settings, label, ws, run.id if run is not None else "")
