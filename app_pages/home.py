"""Home: what the workbench does, the workshop's path (each step done / next / later), and what this installation
has (the same facts as `doctor`)."""

from __future__ import annotations

import streamlit as st

from workbench.overview.guide import guide_steps, workspace_progress
from workbench.ui.common import progress_reporter, user_errors, workspace
from workbench.ui.i18n import t, tr
from workbench.ui.resources import doctor_facts, workspace_counts

ws = workspace()
LANGUAGE_NAMES = {"en": ("English", "영어"), "ko": ("Korean", "한국어"), "multi": ("multilingual", "다국어")}


def languages(codes: list[str]) -> str:
    return ", ".join(t(*LANGUAGE_NAMES.get(c, (c, c))) for c in codes)


st.title(t("RAG vs Fine-Tune Workbench", "RAG vs 파인튜닝 워크벤치"))
st.markdown(
    t(
        "Teach a language model your documents in two ways and compare them: **retrieval** (chunk, embed, "
        "store in Chroma, retrieve) and **fine-tuning** (an Alpaca dataset and a LoRA adapter). Then let the "
        "base model, the fine-tuned model, RAG and both together answer the same questions.",
        "언어 모델에 내 문서를 가르치는 두 가지 방법을 비교합니다: **검색 증강(RAG)** (청킹, 임베딩, Chroma 저장, "
        "검색)과 **파인튜닝** (Alpaca 데이터셋과 LoRA 어댑터). 그리고 기본 모델, 파인튜닝 모델, RAG, 둘을 합친 방식이 "
        "같은 질문에 답하는 것을 나란히 봅니다.",
    )
)

# --- start here: the workshop's path, each step's state read from the workspace's files (no Chroma: drawn at once) --
st.subheader(t("Start here", "여기서 시작하세요"))
MARKS = {"done": ("✅", t("done", "완료")), "next": ("👉", t("next", "다음 단계")), "later": ("⏳", t("later", "나중에"))}
for n, step in enumerate(guide_steps(workspace_progress(ws)), 1):
    icon, state = MARKS[step.state]
    with st.container(border=step.state == "next", key=f"home.step_{step.key}"):
        g1, g2 = st.columns([3, 1], vertical_alignment="center")
        g1.markdown(f"{icon} **{n}. {tr(step.title)}** · {state}  \n{tr(step.hint)}")
        g2.page_link(step.page, label=t("Open the page", "페이지 열기"), icon="➡️")

ws_facts = workspace_counts(str(ws.root))  # lists Chroma's collections: the first call imports chromadb (~1 s)
c1, c2, c3 = st.columns(3)
c1.metric(t("Collections", "컬렉션"), len(ws_facts["collections"]))
c2.metric(t("Datasets", "데이터셋"), len(ws_facts["datasets"]))
c3.metric(t("Training runs", "학습 실행"), len(ws_facts["runs"]))

# The device facts need torch (a second or two on first use); everything above is already on screen.
if "home.check_hub" not in st.session_state:
    st.session_state["home.check_hub"] = False
with st.spinner(t("Looking at this machine…", "이 컴퓨터를 확인하는 중…")):
    facts = doctor_facts(str(ws.root), st.session_state["home.check_hub"])

left, right = st.columns(2)
with left:
    st.subheader(t("Device", "장치"))
    d = facts["device"]
    if d["kind"] == "cuda":
        st.success(f"CUDA: {d['name']} · {d['memory_gb']} GiB" + (f" × {d['count']}" if d["count"] > 1 else ""))
    else:
        st.info(
            t(f"CPU only: `{d['name']}` · {d['memory_gb']} GiB RAM · {d['cpu_threads']} threads. "
              "Training uses the small packaged model.",
              f"CPU 전용: `{d['name']}` · RAM {d['memory_gb']} GiB · 스레드 {d['cpu_threads']}개. "
              "학습에는 작은 내장 모델을 사용합니다.")
        )
    st.caption(" · ".join(f"{k} {v}" for k, v in facts["versions"].items()))
    st.subheader(t("Backends", "백엔드"))
    for b in facts["backends"]:
        st.markdown(f"{'✅' if b['available'] else '➖'} **{b['name']}**: {tr(b['detail'])}")
    if not st.session_state["home.check_hub"] and st.button(t("Check the Hugging Face Hub", "Hugging Face Hub 연결 확인"), key="home.hub"):
        st.session_state["home.check_hub"] = True
        st.rerun()

with right:
    st.subheader(t("Models", "모델"))
    st.table(
        [{t("ready", "준비"): "✅" if m["ready"] else "", t("model", "모델"): tr(m["label"]),
          t("languages", "언어"): languages(m["languages"]), t("note", "설명"): tr(m["note"])} for m in facts["models"]],
        hide_index=True,  # a static table wraps the notes (a data grid cut them off)
        border="horizontal",
    )
    default = next(m for m in facts["models"] if m["default"])
    if not default["ready"] and st.button(t("Prepare the offline default model", "오프라인 기본 모델 준비"), key="home.prepare"):
        from workbench.models.registry import prepare_packaged_model

        report, _ = progress_reporter(t("Converting…", "변환 중…"))
        with user_errors():
            prepare_packaged_model(default["key"], ws, progress=report)
            doctor_facts.clear()
            workspace_counts.clear()
            st.rerun()
    st.subheader(t("Embedding models", "임베딩 모델"))
    st.table(
        [{t("ready", "준비"): "✅" if m["ready"] else "", t("model", "모델"): tr(m["label"]) + (" ★" if m["default"] else ""),
          t("languages", "언어"): languages(m["languages"]), t("note", "설명"): tr(m["note"])} for m in facts["embeddings"]],
        hide_index=True,
        border="horizontal",
    )

if any(ws_facts[k] for k in ("collections", "datasets", "runs")):
    st.subheader(t("In this workspace", "이 작업 공간의 내용"))
    for key, label in (("collections", t("Collections", "컬렉션")), ("datasets", t("Datasets", "데이터셋")), ("runs", t("Runs", "실행"))):
        if ws_facts[key]:
            st.markdown(f"**{label}**: " + ", ".join(f"`{n}`" for n in ws_facts[key]))
