"""Compare: base, fine-tuned, RAG and fine-tuned + RAG (and optionally an endpoint) answer the same question;
batch evaluation on the test split; the knowledge-freshness experiment (workbench.evaluation, workbench.inference)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from workbench import eval_jobs
from workbench import evaluation as ev
from workbench.alpaca import TEMPLATES, list_datasets, load_split
from workbench.config import PROJECT_DIR
from workbench.embeddings import DEFAULT_EMBEDDING, EMBEDDING_REGISTRY
from workbench.inference import DEFAULT_RAG_TEMPLATES, GenerationConfig, run_base_model
from workbench.models import DEFAULT_MODEL, REGISTRY
from workbench.retrieval import RetrievalConfig, retrieve
from workbench.ui import resources
from workbench.ui.common import config_help, user_errors, workspace
from workbench.ui.i18n import lang, t

ws = workspace()
SAMPLE = PROJECT_DIR / "examples" / "shop"


# Labels are computed once per run: AppTest calls format_func outside the script, where the language is unknown.
LABELS = {s: t(*ev.SOURCE_LABELS[s]) for s in ev.SOURCES}
label = LABELS.__getitem__


st.title(t("Compare", "비교"))
st.caption(t(
    "One loaded base model answers as itself and with a run's LoRA adapter switched on; the RAG columns get the "
    "retrieved chunks in their prompt. Same question, same generation settings, side by side.",
    "한 번 불러온 기본 모델이 그대로, 그리고 실행의 LoRA 어댑터를 켠 채로 답합니다. RAG 열은 검색된 청크를 프롬프트에 "
    "받습니다. 같은 질문, 같은 생성 설정으로 나란히 비교합니다.",
))

# --- what answers ------------------------------------------------------------------------------------------
runs: dict[str, Any] = {}
collections: list[str] = []
with user_errors():
    from workbench.runs import list_runs
    from workbench.vectordb import list_collections

    runs = {r.id: r for r in list_runs(ws) if r.adapter_dir is not None}
    collections = [c.name for c in list_collections(ws)]

c1, c2, c3 = st.columns(3)
no_run, no_collection = t("(none: no fine-tuned columns)", "(없음: 파인튜닝 열 없음)"), t("(none: no RAG columns)", "(없음: RAG 열 없음)")
run_id = c1.selectbox(t("Fine-tuned run", "파인튜닝 실행"), ["", *runs], key="compare.run", format_func=lambda r: r or no_run)
run = runs.get(run_id)
collection = c2.selectbox(t("Knowledge-base collection", "지식 베이스 컬렉션"), ["", *collections], key="compare.collection",
                          format_func=lambda c: c or no_collection)
if run is not None:
    base_model = run_base_model(run)
    c3.text_input(t("Base model (from the run)", "기본 모델 (실행에서)"), base_model, disabled=True, key="compare.base_fixed")
else:
    base_model = c3.selectbox(t("Base model", "기본 모델"), list(REGISTRY), key="compare.base_model",
                              index=list(REGISTRY).index(DEFAULT_MODEL), format_func=lambda k: REGISTRY[k].label)
if not runs:
    st.caption(t("No finished training run with an adapter yet: train one on the Fine-tune page for the fine-tuned columns.",
                 "어댑터가 있는 학습 실행이 아직 없습니다: 파인튜닝 열을 보려면 파인튜닝 페이지에서 학습하세요."))

with st.expander(t("OpenAI-compatible endpoint (optional 5th column)", "OpenAI 호환 엔드포인트 (선택, 5번째 열)")):
    e1, e2, e3 = st.columns(3)
    api_url = e1.text_input(t("Base URL", "기본 URL"), key="compare.api_url", placeholder="http://127.0.0.1:8000/v1")
    api_model = e2.text_input(t("Model name", "모델 이름"), key="compare.api_model")
    api_key = e3.text_input(t("API key (kept in memory only)", "API 키 (메모리에만 보관)"), type="password", key="compare.api_key")
endpoint = ev.EndpointAnswerer(api_url.strip(), api_model.strip(), api_key or None) if api_url.strip() and api_model.strip() else None

available = ["base"] + (["ft"] if run else []) + (["rag"] if collection else []) + (["ft_rag"] if run and collection else [])
available += (["api"] + (["api_rag"] if collection else [])) if endpoint else []
if "compare.sources" in st.session_state:  # keep only what can still answer (a run or collection was unselected)
    st.session_state["compare.sources"] = [s for s in st.session_state["compare.sources"] if s in available]
else:
    st.session_state["compare.sources"] = [s for s in available if s not in ev.API_SOURCES]
sources: list[str] = st.multiselect(t("Answer sources", "답변 소스"), available, key="compare.sources", format_func=label,
                                    max_selections=5)

# --- shared settings ---------------------------------------------------------------------------------------
with st.expander(t("Generation settings (shared by every column)", "생성 설정 (모든 열 공통)")):
    g = st.columns(6)
    max_new = g[0].number_input(t("Max new tokens", "최대 생성 토큰"), 1, 4096, 96, key="compare.max_new_tokens",
                                help=config_help(GenerationConfig, "max_new_tokens"))
    do_sample = g[1].checkbox(t("Sample", "샘플링"), key="compare.do_sample", help=config_help(GenerationConfig, "do_sample"))
    temperature = g[2].number_input(t("Temperature", "온도"), 0.01, 2.0, 0.7, step=0.05, key="compare.temperature",
                                    disabled=not do_sample, help=config_help(GenerationConfig, "temperature"))
    top_p = g[3].number_input("top_p", 0.01, 1.0, 0.9, step=0.05, key="compare.top_p", disabled=not do_sample,
                              help=config_help(GenerationConfig, "top_p"))
    rep = g[4].number_input(t("Repetition penalty", "반복 패널티"), 0.5, 2.0, 1.0, step=0.05, key="compare.repetition_penalty",
                            help=config_help(GenerationConfig, "repetition_penalty"))
    seed = g[5].number_input(t("Seed", "시드"), 0, 2**31 - 1, 123, key="compare.seed", help=config_help(GenerationConfig, "seed"))
    run_template = getattr(run.config, "prompt_template", None) if run is not None else None
    template = st.selectbox(t("Prompt template", "프롬프트 템플릿"), TEMPLATES, key="compare.template",
                            index=TEMPLATES.index(run_template) if run_template in TEMPLATES else TEMPLATES.index("chat"),
                            help=t("The run's training template is preselected: answers are prompted the way the adapter was trained.",
                                   "실행의 학습 템플릿이 미리 선택됩니다: 어댑터가 학습된 방식 그대로 묻습니다."))
settings = None
with user_errors():
    settings = GenerationConfig(max_new_tokens=int(max_new), do_sample=do_sample, temperature=float(temperature),
                                top_p=float(top_p), repetition_penalty=float(rep), seed=int(seed))

with st.expander(t("Retrieval and the RAG prompt", "검색과 RAG 프롬프트"), expanded=False):
    r1, r2 = st.columns([1, 3])
    mode = r1.radio(t("Retrieval", "검색 방식"), RetrievalConfig.choices("mode"), key="compare.mode",
                    index=list(RetrievalConfig.choices("mode")).index("hybrid"), help=config_help(RetrievalConfig, "mode"))
    k = r1.number_input(t("Chunks (k)", "청크 수 (k)"), 1, 20, 3, key="compare.k", help=config_help(RetrievalConfig, "k"))
    if "compare.rag_template" not in st.session_state or st.session_state.pop("compare.rag_reset_now", False):
        st.session_state["compare.rag_template"] = DEFAULT_RAG_TEMPLATES[lang()]
    rag_template = r2.text_area(t("RAG prompt template: {question} is replaced by the question; the numbered chunks go "
                                  "into the prompt's input section, or where you write {context}",
                                  "RAG 프롬프트 템플릿: {question} 자리에 질문이 들어가고, 번호 붙은 청크는 프롬프트의 input "
                                  "부분이나 {context}를 쓴 자리에 들어갑니다"), key="compare.rag_template", height=130)
    if r2.button(t("Reset to the default for this language", "이 언어의 기본값으로 되돌리기"), key="compare.rag_reset"):
        st.session_state["compare.rag_reset_now"] = True
        st.rerun()
retrieval = RetrievalConfig(mode=mode, k=int(k), fetch_k=max(20, int(k)))


def _generator() -> Any:
    gen = resources.generator(base_model, str(ws.root))
    if run is not None:
        gen.ensure_adapter(run.id, run.adapter_dir)
    return gen


def _answer(question: str, srcs: list[str], *, stream_into: list[Any] | None = None) -> dict[str, Any]:
    """Answer `question` with every source (streamed into `stream_into` placeholders when given)."""
    gen = None
    if any(s not in ev.API_SOURCES for s in srcs):
        with st.spinner(t("Loading the model…", "모델을 불러오는 중…")):
            gen = _generator()
    chunks = retrieve(collection, question, retrieval, ws) if collection and ev.RAG_SOURCES & set(srcs) else []
    answers: dict[str, Any] = {}
    for i, src in enumerate(srcs):
        instr, inp = ev.source_prompt(src, question, "", chunks, rag_template=rag_template, lang=lang())
        stream = ev.answer_stream(src, instr, inp, settings=settings, generator=gen, adapter=run.id if run else None,
                                  template=template, endpoint=endpoint)
        text = ""
        for piece in stream:
            text += piece
            if stream_into is not None:
                stream_into[i].text(text)
        r = stream.result
        answers[src] = {**r.to_dict(), "rag": src in ev.RAG_SOURCES}
    return {"question": question, "answers": answers,
            "chunks": [{"text": c.text, "score": c.score, "source": Path(str(c.metadata.get("source", ""))).name}
                       for c in chunks],
            "warnings": gen.preflight(template, run.id if run else None) if gen is not None else []}


def _stats(a: dict[str, Any]) -> str:
    return t(f"{a['latency_s']:.2f} s · {a['completion_tokens']} tokens · {a['tokens_per_s']:.1f} tokens/s · "
             f"prompt {a['prompt_tokens']} tokens" + (" · hit max tokens" if a["stopped"] == "max_new_tokens" else ""),
             f"{a['latency_s']:.2f}초 · {a['completion_tokens']} 토큰 · 초당 {a['tokens_per_s']:.1f} 토큰 · "
             f"프롬프트 {a['prompt_tokens']} 토큰" + (" · 최대 토큰 도달" if a["stopped"] == "max_new_tokens" else ""))


def _show_answers(result: dict[str, Any]) -> None:
    for w in result["warnings"]:
        st.warning(w)
    cols = st.columns(len(result["answers"]))
    for col, (src, a) in zip(cols, result["answers"].items()):
        with col:
            st.markdown(f"**{label(src)}**")
            st.text(a["text"] or t("(empty answer)", "(빈 답변)"))
            st.caption(_stats(a))
            if a["rag"]:
                with st.expander(t(f"Retrieved chunks ({len(result['chunks'])})", f"검색된 청크 ({len(result['chunks'])}개)")):
                    st.dataframe(pd.DataFrame([{"#": i, t("score", "점수"): round(c["score"], 3), t("source", "출처"): c["source"],
                                                t("text", "내용"): c["text"]} for i, c in enumerate(result["chunks"], 1)]),
                                 hide_index=True, width="stretch")
            with st.expander(t("Prompt", "프롬프트")):
                st.code(a["prompt"], language=None, wrap_lines=True)


tab_ask, tab_eval, tab_fresh = st.tabs([t("Ask", "질문하기"), t("Batch evaluation", "일괄 평가"),
                                        t("Knowledge freshness", "지식 최신성")])
split_datasets = [d.name for d in list_datasets(ws) if d.split]

# --- ask ---------------------------------------------------------------------------------------------------
with tab_ask:
    qmodes = {"type": t("Type a question", "직접 입력"), "test": t("Pick a test-split row", "테스트 행 고르기")}
    qmode = st.radio(t("Question", "질문"), list(qmodes), key="compare.qmode", horizontal=True, format_func=qmodes.__getitem__)
    reference = None
    if qmode == "test" and not split_datasets:
        st.info(t("No split dataset yet: split one on the Dataset page.", "분할된 데이터셋이 아직 없습니다: 데이터셋 페이지에서 분할하세요."))
        question = ""
    elif qmode == "test":
        ds = st.selectbox(t("Dataset", "데이터셋"), split_datasets, key="compare.dataset")
        rows: list[dict[str, Any]] = []
        with user_errors():
            rows = load_split(ds, "test", ws)
        idx = st.selectbox(t("Test row", "테스트 행"), list(range(len(rows))), key="compare.row",
                           format_func=lambda i: f"{i + 1}. {rows[i]['instruction'][:90]}")
        question = ""
        if rows and idx is not None:
            row = rows[idx]
            question = str(row["instruction"]) + (f"\n\n{row['input']}" if str(row.get("input") or "").strip() else "")
            reference = str(row["output"])
            st.text(question)
            st.caption(t("Reference answer", "참고 답변"))
            st.text(reference)
    else:
        if "compare.question" not in st.session_state:
            st.session_state["compare.question"] = ev.FRESHNESS_QUESTIONS[lang()]
        question = st.text_area(t("Your question", "질문"), key="compare.question", height=80)
    asked = st.button(t("Ask every source", "모든 소스에 묻기"), type="primary", key="compare.ask",
                      disabled=not question.strip() or not sources or settings is None)
    if asked:
        placeholders = []
        cols = st.columns(len(sources))
        for col, src in zip(cols, sources):
            col.markdown(f"**{label(src)}**")
            placeholders.append(col.empty())
        with user_errors():
            st.session_state["compare.result"] = {**_answer(question.strip(), sources, stream_into=placeholders),
                                                  "reference": reference}
            st.rerun()
    result = st.session_state.get("compare.result")
    if result:
        if result.get("reference"):
            scores = {s: ev.score_answer(a["text"], result["reference"]) for s, a in result["answers"].items()}
            st.dataframe(pd.DataFrame([{t("source", "소스"): label(s), **v} for s, v in scores.items()]), hide_index=True)
        _show_answers(result)

# --- batch evaluation --------------------------------------------------------------------------------------
with tab_eval:
    if not split_datasets:
        st.info(t("No split dataset yet: split one on the Dataset page, then evaluate every source on its test split.",
                  "분할된 데이터셋이 아직 없습니다: 데이터셋 페이지에서 분할한 뒤, 테스트 split으로 모든 소스를 평가하세요."))
    else:
        b = st.columns([3, 2, 2, 3, 2])
        eval_ds = b[0].selectbox(t("Dataset", "데이터셋"), split_datasets, key="compare.eval_dataset")
        limit = b[1].number_input(t("Rows (0 = all)", "행 수 (0 = 전부)"), 0, 100_000, 20, key="compare.eval_limit",
                                  help=ev.EvalConfig.help("limit", lang()))
        batch_size = b[4].number_input(t("Batch size", "배치 크기"), 1, 256, 8, key="compare.eval_batch_size",
                                       help=ev.EvalConfig.help("batch_size", lang()))
        emb_options = ["", *EMBEDDING_REGISTRY]
        skip = t("(skip)", "(생략)")
        emb = b[2].selectbox(t("Embedding similarity", "임베딩 유사도"), emb_options, key="compare.eval_embedding",
                             index=emb_options.index(DEFAULT_EMBEDDING),
                             format_func=lambda e: EMBEDDING_REGISTRY[e].label if e else skip)
        with b[3].popover(t("LLM judge (optional)", "LLM 심사 (선택)")):
            judge_url = st.text_input(t("Judge base URL", "심사 기본 URL"), key="compare.judge_url")
            judge_model = st.text_input(t("Judge model", "심사 모델"), key="compare.judge_model")
        if st.button(t("Start the evaluation", "평가 시작"), type="primary", key="compare.eval_start",
                     disabled=not sources or settings is None):
            with user_errors():
                cfg = ev.EvalConfig(
                    dataset=eval_ds, run_id=run.id if run else "", base_model="" if run else base_model,
                    collection=collection, sources=tuple(sources), limit=int(limit), prompt_template=template,
                    rag_template=rag_template, lang=lang(), generation=settings.to_dict(),  # type: ignore[union-attr]
                    retrieval=retrieval.to_dict() if collection else {}, embedding_model=emb, batch_size=int(batch_size),
                    judge_base_url=judge_url.strip(), judge_model=judge_model.strip(),
                    endpoint_base_url=api_url.strip() if endpoint else "", endpoint_model=api_model.strip() if endpoint else "")
                folder = eval_jobs.start_evaluation(cfg, ws, env={"OPENAI_API_KEY": api_key} if api_key else None)
                st.session_state["compare.eval_pick"] = str(folder)
                st.rerun()

    folders = [str(p) for p in reversed(eval_jobs.list_evaluations(ws))]
    if folders:
        if st.session_state.get("compare.eval_pick") not in folders:
            st.session_state["compare.eval_pick"] = folders[0]
        pick = st.selectbox(t("Evaluation", "평가"), folders, key="compare.eval_pick",
                            format_func=lambda f: f"{Path(f).name} ({Path(f).parent.parent.name if Path(f).parent.name == 'eval' else '-'})")
        status = eval_jobs.evaluation_status(pick)

        if status["state"] in ("pending", "running"):
            @st.fragment(run_every=1.0)
            def _watch() -> None:
                s = eval_jobs.evaluation_status(pick)
                if s["state"] not in ("pending", "running"):
                    st.rerun(scope="app")
                total = s.get("total") or 0
                st.progress(min((s.get("done") or 0) / total, 1.0) if total else 0.0,
                            text=s.get("message") or t("Starting…", "시작하는 중…"))
                if st.button(t("Cancel", "취소"), key="compare.eval_cancel"):
                    with user_errors():
                        eval_jobs.cancel_evaluation(pick)

            _watch()
        elif status["state"] == "failed":
            st.error(t(f"The evaluation failed: {status.get('error')}", f"평가 실패: {status.get('error')}"), icon="⚠️")
        summary = ev.load_summary(pick)
        if summary:
            if summary["cancelled"]:
                st.warning(t(f"Cancelled: {summary['rows']} of {summary['rows_total']} rows answered.",
                             f"취소됨: {summary['rows_total']}행 중 {summary['rows']}행에 답했습니다."))
            st.dataframe(pd.DataFrame(ev.summary_table(summary)), hide_index=True, width="stretch")
            st.caption(summary["notes"]["ci"])
            data = pd.DataFrame(ev.chart_data(summary))
            if not data.empty:
                base = alt.Chart(data).encode(x=alt.X("source:N", title=None, sort=None), color=alt.Color("source:N", sort=None))
                chart = alt.layer(base.mark_bar().encode(y=alt.Y("mean:Q", title=None, scale=alt.Scale(domain=[0, 1]))),
                                  base.mark_rule(color="black").encode(y="lo:Q", y2="hi:Q")).properties(width=140, height=220)
                st.altair_chart(chart.facet(column=alt.Column("metric:N", title=None, sort=None)))
            cost = summary["cost"]
            m = st.columns(4)
            m[0].metric(t("Training time", "학습 시간"), f"{cost['train_seconds']:.0f} s" if cost.get("train_seconds") else "–")
            m[1].metric(t("Adapter size", "어댑터 크기"), f"{cost['adapter_mb']} MiB" if cost.get("adapter_mb") else "–")
            added = cost.get("prompt_tokens_added_by_retrieval", {})
            m[2].metric(t("Prompt tokens added by retrieval", "검색이 더한 프롬프트 토큰"),
                        f"{added['rag']:+.0f}" if "rag" in added else "–")
            lat = {s: v["latency_s"] for s, v in summary["per_source"].items() if v["latency_s"] is not None}
            m[3].metric(t("Latency (fastest / slowest)", "지연 시간 (가장 빠름 / 느림)"),
                        f"{min(lat.values()):.2f} / {max(lat.values()):.2f} s" if lat else "–")
            for w in summary.get("warnings", []):
                st.warning(w)
            results = ev.load_results(pick)
            filters = ["all"] + (["ft", "rag"] if {"ft", "rag"} <= set(summary["sources"]) else [])
            filter_labels = {"all": t("every question", "모든 질문"), "ft": t("where fine-tuning wins", "파인튜닝이 이기는 곳"),
                             "rag": t("where RAG wins", "RAG가 이기는 곳")}
            flt = st.radio(t("Show", "보기"), filters, key="compare.eval_filter", horizontal=True,
                           format_func=filter_labels.__getitem__)
            wide = ev.wide_results(results)
            if flt != "all":
                winners = ev.pair_winners(results, "ft", "rag")
                wide = [r for r in wide if winners.get(r["row"]) == flt]
            st.dataframe(pd.DataFrame(wide), hide_index=True, width="stretch")
            d = st.columns(3)
            folder_path = Path(pick)
            d[0].download_button("report.md", (folder_path / ev.REPORT_MD).read_bytes(), "report.md", "text/markdown",
                                 key="compare.dl_md")
            d[1].download_button("report.html", (folder_path / ev.REPORT_HTML).read_bytes(), "report.html", "text/html",
                                 key="compare.dl_html")
            d[2].download_button("results.csv", (folder_path / ev.RESULTS_FILE).read_bytes(), "results.csv", "text/csv",
                                 key="compare.dl_csv")

# --- knowledge freshness -----------------------------------------------------------------------------------
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
        fresh_sources = [s for s in ("base", "ft", "rag", "ft_rag") if s in available]
        edits = st.data_editor(pd.DataFrame([vars(e) for e in ev.ICE_CREAM_EDITS]), key="compare.fresh_edits",
                               num_rows="dynamic", hide_index=True, width="stretch")
        st.caption(t(f"Documents are read from {SAMPLE} and edited copies kept in {ev.freshness_dir(collection, ws)}.",
                     f"문서는 {SAMPLE}에서 읽고, 고친 사본은 {ev.freshness_dir(collection, ws)}에 둡니다."))
        if "compare.fresh_question" not in st.session_state:
            st.session_state["compare.fresh_question"] = ev.FRESHNESS_QUESTIONS[lang()]
        fq = st.text_input(t("Question", "질문"), key="compare.fresh_question")
        f = st.columns(4)
        fresh = st.session_state.setdefault("compare.fresh", {})
        if f[0].button(t("1. Ask before", "1. 바꾸기 전에 묻기"), key="compare.fresh_before", disabled=settings is None):
            with user_errors():
                fresh["before"] = _answer(fq, fresh_sources)
        if f[1].button(t("2. Change the fact and re-ingest", "2. 사실을 바꾸고 다시 넣기"), key="compare.fresh_change"):
            with user_errors():
                todo = [ev.FactEdit(str(r["file"]), str(r["old"]), str(r["new"])) for r in edits.to_dict("records")
                        if r.get("file") and r.get("old")]
                done = ev.change_facts(collection, todo, SAMPLE, ws)
                fresh["changed"] = done
                st.success(t(f"Changed {done['replacements']} places in {', '.join(done['files'])}; re-ingested "
                             f"({done['added']} chunks added, {done['removed']} removed).",
                             f"{', '.join(done['files'])}에서 {done['replacements']}곳을 바꾸고 다시 넣었습니다 "
                             f"(청크 {done['added']}개 추가, {done['removed']}개 삭제)."))
                if done["skipped"]:
                    st.caption(t(f"Not in this collection, left alone: {', '.join(done['skipped'])}",
                                 f"이 컬렉션에 없어 건드리지 않음: {', '.join(done['skipped'])}"))
        if f[2].button(t("3. Ask again", "3. 다시 묻기"), key="compare.fresh_after", disabled=settings is None):
            with user_errors():
                fresh["after"] = _answer(fq, fresh_sources)
        if f[3].button(t("Restore the original documents", "원래 문서로 되돌리기"), key="compare.fresh_restore",
                       disabled="changed" not in fresh):
            with user_errors():
                ev.restore_facts(collection, fresh.pop("changed")["files"], SAMPLE, ws)
                st.success(t("The original documents are back in the collection.", "원래 문서를 컬렉션에 다시 넣었습니다."))
        if "before" in fresh or "after" in fresh:
            table = [{t("source", "소스"): label(s),
                      t("before the change", "바꾸기 전"): fresh.get("before", {}).get("answers", {}).get(s, {}).get("text", ""),
                      t("after the change", "바꾼 후"): fresh.get("after", {}).get("answers", {}).get(s, {}).get("text", "")}
                     for s in fresh_sources]
            st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
