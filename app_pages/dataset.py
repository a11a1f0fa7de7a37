"""Dataset: import / generate / edit / validate / split / export / push Alpaca rows (workbench.alpaca, synth, hub)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from workbench import alpaca, alpaca_checks, alpaca_io
from workbench.config import PROJECT_DIR
from workbench.documents import safe_name
from workbench.ui import charts
from workbench.ui.common import config_help, metric_row, progress_reporter, user_errors, workspace
from workbench.ui.forms import build_config, config_field, config_form
from workbench.ui.i18n import t
from workbench.ui.resources import dataset_report

ws = workspace()
SAMPLES = PROJECT_DIR / "examples" / "alpaca"
DC = alpaca.DatasetConfig


def as_text(v: object) -> str | None:
    """Cells are shown as text: a number in a text column would break the Arrow table (and is itself a finding)."""
    return v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def kind_label(kind: str) -> str:
    return t(*alpaca_checks.ISSUE_LABELS.get(kind, (kind, kind)))


st.title(t("Dataset", "데이터셋"))
st.caption(t(
    "Alpaca rows (instruction / input / output) for fine-tuning: import or generate them, check and edit them, split 9:1 "
    "(scikit-learn, seed 42) into train and test plus a validation part of train, export and push to the Hub.",
    "파인튜닝용 Alpaca 행(instruction / input / output): 가져오거나 생성하고, 검사·편집한 뒤 학습/테스트로 9:1 분할(scikit-learn, "
    "시드 42)하고 학습에서 검증용을 떼어 내며, 내보내고 Hub에 올립니다.",
))

# A name chosen by an action (import, generate) is applied before the selector is drawn.
if "dataset.pending" in st.session_state:
    st.session_state["dataset.name"] = st.session_state.pop("dataset.pending")

datasets = {d.name: d for d in alpaca.list_datasets(ws)}
names = list(datasets)
if st.session_state.get("dataset.name") not in names:
    st.session_state.pop("dataset.name", None)
current = st.selectbox(t("Dataset", "데이터셋"), names, key="dataset.name", index=0 if names else None,
                       placeholder=t("No dataset yet: import or generate one", "아직 데이터셋이 없습니다: 가져오거나 생성하세요"))
info = datasets.get(current) if current else None

if info:
    metric_row((t("Rows", "행"), info.rows), (t("Train", "학습"), info.sizes.get("train", "–")),
               (t("Validation", "검증"), info.sizes.get("validation", "–")), (t("Test", "테스트"), info.sizes.get("test", "–")))
    if info.split_stale:
        st.warning(t("The rows changed after the last split: split again so training sees them.",
                     "마지막 분할 뒤에 행이 바뀌었습니다: 학습에 반영하려면 다시 분할하세요."))

tab_import, tab_gen, tab_edit, tab_split, tab_push = st.tabs(
    [t("Import", "가져오기"), t("Generate", "생성"), t("Edit & check", "편집·검사"), t("Split", "분할"), t("Export & push", "내보내기·업로드")]
)

# --- import -------------------------------------------------------------------------------------
with tab_import:
    kinds = {"sample": t("Sample dataset", "예제 데이터셋"), "upload": t("Upload a file", "파일 올리기"),
             "path": t("Path on this machine", "이 컴퓨터의 경로"), "hub": t("Hub repository", "Hub 저장소")}
    kind = st.radio(t("Source", "원본"), list(kinds), format_func=kinds.__getitem__, horizontal=True, key="dataset.source_kind")
    source: str | None = None
    label: str | None = None
    tmpdir = None
    data_files = ""
    if kind == "sample":
        samples = sorted(p.name for p in SAMPLES.glob("*.csv")) if SAMPLES.is_dir() else []
        sample = st.selectbox(t("Sample", "예제"), samples, key="dataset.sample")
        source = str(SAMPLES / sample) if sample else None
    elif kind == "upload":
        up = st.file_uploader(t("CSV, JSON or JSONL (UTF-8, UTF-16, CP949, Latin-1)", "CSV, JSON, JSONL (UTF-8, UTF-16, CP949, Latin-1)"),
                              type=["csv", "json", "jsonl"], key="dataset.upload")
        if up is not None:
            tmpdir = tempfile.TemporaryDirectory()
            # A name over 255 bytes or with a NUL cannot be written as is; the label keeps the original.
            path = Path(tmpdir.name) / (safe_name(Path(up.name).name) or "upload.csv")
            path.write_bytes(up.getvalue())
            source, label = str(path), up.name
    elif kind == "path":
        typed = st.text_input(t("File or `datasets` folder", "파일 또는 `datasets` 폴더"), key="dataset.path").strip()
        with user_errors():  # only the workspace, examples/ and WORKBENCH_ALLOW_PATHS: whoever reaches the page is not us
            source = str(ws.readable(typed)) if typed else None
    else:
        source = st.text_input(t("Hub dataset id (owner/name)", "Hub 데이터셋 id (owner/name)"), key="dataset.hub_repo").strip() or None
        data_files = config_field(DC, "data_files", key="dataset.data_files", placeholder="train_ds.csv")

    enc = config_field(DC, "encoding", key="dataset.encoding")
    columns: list[str] = []
    if source and kind != "hub":
        with user_errors():
            raw, read = alpaca_io.read_source(source, DC(encoding=enc))
            columns = list(dict.fromkeys(k for r in raw for k in r))
            st.caption(t(f"{len(raw)} rows; columns: ", f"{len(raw)}행; 열: ") + ", ".join(columns)
                       + (t("; read as ", "; 인코딩 ") + read["encoding"] if read.get("encoding") else ""))
            if read.get("encoding_warning"):
                st.warning(read["encoding_warning"])
            st.dataframe(pd.DataFrame([{k: as_text(v) for k, v in r.items()} for r in raw[:5]]), hide_index=True)
    auto = t("(auto)", "(자동)")
    mapping = {}
    for col, target in zip(st.columns(3), alpaca_io.ALPACA_COLUMNS):
        pick = {"key": f"dataset.map_{target}", "options": ["", *columns]} if columns else \
            {"key": f"dataset.map_{target}_text", "placeholder": auto}
        mapping[f"{target}_column"] = config_field(DC, f"{target}_column", container=col, format_func=lambda c: c or auto, **pick)
    # The name follows the chosen source until the user types one.
    ident = label or source or ""
    if st.session_state.get("dataset.name_for") != ident:
        st.session_state["dataset.name_for"] = ident
        st.session_state["dataset.new_name"] = DC.name_for(ident, hub=kind == "hub")
    c1, c2, c3 = st.columns(3)
    settings = {"name": config_field(DC, "name", key="dataset.new_name", container=c1),
                "tokenizer": config_field(DC, "tokenizer", key="dataset.tokenizer", container=c2),
                "max_tokens": config_field(DC, "max_tokens", key="dataset.max_tokens", container=c3)}
    replace = st.checkbox(t("Replace a dataset of the same name", "같은 이름의 데이터셋 덮어쓰기"), key="dataset.replace")
    if st.button(t("Import", "가져오기"), key="dataset.import", type="primary", disabled=not source):
        cfg = build_config(DC, {**settings, **mapping, "encoding": enc, "data_files": data_files,
                                "name": settings["name"].strip(), "tokenizer": settings["tokenizer"].strip()})
        if cfg is not None:
            report, _ = progress_reporter(t("Importing…", "가져오는 중…"))
            with user_errors():
                result = alpaca.import_dataset(source, cfg, workspace=ws, overwrite=replace, progress=report, label=label)
                s = alpaca_checks.summarize_issues(result.issues)
                st.session_state["dataset.flash"] = t(
                    f"Imported {result.info.rows} rows into '{result.info.name}': {s['errors']} rows with errors, {s['warnings']} warnings.",
                    f"'{result.info.name}'에 {result.info.rows}행을 가져왔습니다: 오류 {s['errors']}건, 경고 {s['warnings']}건.")
                st.session_state["dataset.pending"] = result.info.name
                st.rerun()
    if tmpdir is not None:
        tmpdir.cleanup()

if "dataset.flash" in st.session_state:
    st.success(st.session_state.pop("dataset.flash"))

# --- generate -----------------------------------------------------------------------------------
with tab_gen:
    from workbench.synth import DEFAULT_PROMPTS, GenerationJob, SynthConfig, chunks_from_collection

    job: GenerationJob | None = st.session_state.get("dataset.gen_job")
    if job is not None:
        @st.fragment(run_every=1.0)
        def _watch() -> None:
            state = job.state()
            st.progress(min(max(state["fraction"], 0.0), 1.0), text=state["message"])
            if not state["done"]:
                if st.button(t("Cancel", "취소"), key="dataset.gen_cancel"):
                    job.cancel()
                return
            if state["error"]:
                st.error(state["error"], icon="⚠️")
            elif job.result is not None:
                r = job.result
                st.success(t(f"{len(r.rows)} rows from {r.chunks_used} chunks in {r.seconds:.0f} s ({r.requests} requests)"
                             + (", cancelled" if r.cancelled else ""),
                             f"청크 {r.chunks_used}개에서 {len(r.rows)}행 생성, {r.seconds:.0f}초 (요청 {r.requests}회)"
                             + (", 취소됨" if r.cancelled else "")))
                if r.note:
                    st.info(r.note)
                if r.failures:
                    st.dataframe(pd.DataFrame([f.to_dict() for f in r.failures]), hide_index=True)
            if st.button(t("Done", "확인"), key="dataset.gen_clear"):
                st.session_state.pop("dataset.gen_job", None)
                if job.info is not None:
                    st.session_state["dataset.pending"] = job.info.name
                st.rerun(scope="app")

        _watch()
    else:
        collections: list[str] = []
        with user_errors():
            from workbench.vectordb import list_collections

            collections = [c.name for c in list_collections(ws)]
        if not collections:
            st.info(t("No knowledge-base collection yet: build one on the Knowledge base page first.",
                      "아직 지식 베이스 컬렉션이 없습니다: 먼저 지식 베이스 페이지에서 만드세요."))
        else:
            g1, g2 = st.columns(2)
            coll = g1.selectbox(t("Collection", "컬렉션"), collections, key="dataset.gen_collection")
            gen_name = g2.text_input(t("New dataset name", "새 데이터셋 이름"), value=f"{coll}-generated", key="dataset.gen_name")
            provider = st.radio(t("Provider", "제공자"), SynthConfig.choices("provider"), horizontal=True, key="dataset.gen_provider",
                                help=config_help(SynthConfig, "provider"))
            e1, e2, e3 = st.columns(3)
            base_url = e1.text_input(t("Base URL", "기본 URL"), value="" if provider == "anthropic" else "http://127.0.0.1:8000/v1",
                                     key=f"dataset.gen_url_{provider}", help=config_help(SynthConfig, "base_url"))
            model = e2.text_input(t("Model", "모델"), key="dataset.gen_model", help=config_help(SynthConfig, "model"))
            api_key = e3.text_input(t("API key (empty: from the environment)", "API 키 (비우면 환경 변수)"), type="password",
                                    key="dataset.gen_key")
            n1, n2, n3, n4 = st.columns(4)
            n_target = n1.number_input(t("Target rows", "목표 행 수"), 1, 100000, 500, key="dataset.gen_n", help=config_help(SynthConfig, "n_target"))
            pairs = n2.number_input(t("Pairs per chunk", "청크당 쌍"), 1, 50, 3, key="dataset.gen_pairs", help=config_help(SynthConfig, "pairs_per_chunk"))
            lang = n3.selectbox(t("Language", "언어"), SynthConfig.choices("language"), key="dataset.gen_lang")
            gen_tokens = n4.number_input(t("Max tokens per reply", "응답당 최대 토큰"), 16, 32768, 1024, key="dataset.gen_max_tokens")
            prompt = st.text_area(t("Prompt ({chunk}, {n}, {source} are filled in)", "프롬프트 ({chunk}, {n}, {source}가 채워집니다)"),
                                  value=DEFAULT_PROMPTS[lang], height=200, key=f"dataset.gen_prompt_{lang}")
            with st.expander(t("More settings", "추가 설정")):
                temperature = st.slider(t("Temperature", "온도"), 0.0, 2.0, 0.7, key="dataset.gen_temperature")
                retries = st.number_input(t("Retries per chunk", "청크당 재시도"), 0, 10, 2, key="dataset.gen_retries")
                extra_body = st.text_input(t("Extra request JSON", "추가 요청 JSON"), key="dataset.gen_extra", help=config_help(SynthConfig, "extra_body"))
                replace_gen = st.checkbox(t("Replace a dataset of the same name", "같은 이름의 데이터셋 덮어쓰기"), key="dataset.gen_replace")
            if st.button(t("Generate", "생성"), key="dataset.generate", type="primary"):
                with user_errors():
                    cfg = SynthConfig(provider=provider, base_url=base_url.strip(), model=model.strip(), n_target=int(n_target),
                                      pairs_per_chunk=int(pairs), language=lang, prompt="" if prompt == DEFAULT_PROMPTS[lang] else prompt,
                                      max_tokens=int(gen_tokens), temperature=float(temperature), retries=int(retries),
                                      extra_body=extra_body.strip())
                    alpaca.check_name(gen_name.strip())
                    chunks = chunks_from_collection(coll, ws)
                    st.session_state["dataset.gen_job"] = GenerationJob(gen_name.strip(), chunks, cfg, api_key=api_key or None,
                                                                        collection=coll, workspace=ws, overwrite=replace_gen)
                    st.rerun()

# --- edit & check -------------------------------------------------------------------------------
with tab_edit:
    if not info:
        st.info(t("Import or generate a dataset first.", "먼저 데이터셋을 가져오거나 생성하세요."))
    else:
        rows = alpaca.load_rows(info.name, ws)
        issues: list[alpaca_checks.Issue] = []
        lengths_rows: list[dict] = []
        tokenizer_name = info.settings.get("tokenizer", "")
        stamp = "-".join(str((info.path / f).stat().st_mtime_ns) for f in (alpaca.RAW_FILE, alpaca.META_FILE))
        with user_errors():
            issues, lengths_rows = dataset_report(str(ws.root), info.name, stamp)
        summary = alpaca_checks.summarize_issues(issues)
        metric_row((t("Rows with errors", "오류 행"), len(alpaca_checks.issue_rows(issues))),
                   (t("Duplicate warnings", "중복 경고"), summary["warnings"]))
        if issues:
            st.dataframe(pd.DataFrame([{t("row", "행"): i.row, t("problem", "문제"): kind_label(i.kind), t("detail", "내용"): i.message,
                                        t("repeats row", "같은 행"): i.other_row} for i in issues]),
                         hide_index=True)
            b1, b2, b3 = st.columns(3)
            err_rows = alpaca_checks.issue_rows(issues)
            dup_rows = alpaca_checks.issue_rows(issues, ["duplicate", "near_duplicate"])
            if b1.button(t("Convert non-text to text", "텍스트 아닌 값을 텍스트로"), key="dataset.fix",
                         disabled=not summary["counts"].get("non_text")):
                alpaca.save_rows(info.name, alpaca_checks.fix_rows(rows), ws, note="fixed non-text values")
                st.rerun()
            if b2.button(t(f"Drop {len(err_rows)} rows with errors", f"오류 행 {len(err_rows)}개 삭제"), key="dataset.drop_errors",
                         disabled=not err_rows):
                alpaca.drop_rows(info.name, err_rows, ws)
                st.rerun()
            if b3.button(t(f"Drop {len(dup_rows)} duplicates", f"중복 {len(dup_rows)}개 삭제"), key="dataset.drop_dups",
                         disabled=not dup_rows):
                alpaca.drop_rows(info.name, dup_rows, ws)
                st.rerun()
        else:
            st.success(t("No problems found.", "문제가 없습니다."))

        st.subheader(t("Rows", "행"))
        st.caption(t("Edit cells, add rows at the bottom, delete rows by selecting them. Saving stores every value as text; "
                     "'Reload' throws unsaved edits away.",
                     "셀을 고치고, 맨 아래에 행을 추가하고, 선택해 삭제하세요. 저장하면 모든 값이 텍스트로 저장됩니다; "
                     "'다시 불러오기'는 저장하지 않은 편집을 버립니다."))
        cols = alpaca._columns(rows)
        df = pd.DataFrame([{c: as_text(r.get(c)) for c in cols} for r in rows], columns=cols, dtype=object)
        df.index = range(1, len(df) + 1)
        edited = st.data_editor(df, num_rows="dynamic", key=f"dataset.editor.{info.name}", width="stretch",
                                column_config={c: st.column_config.TextColumn(c) for c in cols})
        s1, s2, _ = st.columns([1, 1, 3])
        if s1.button(t("Save", "저장"), key="dataset.save", type="primary"):
            new_rows = [{k: (None if (v is None or (isinstance(v, float) and v != v)) else v) for k, v in r.items()}
                        for r in edited.to_dict("records")]
            alpaca.save_rows(info.name, new_rows, ws, note="edited in the browser")
            st.session_state["dataset.flash"] = t(f"Saved {len(new_rows)} rows.", f"{len(new_rows)}행을 저장했습니다.")
            st.rerun()
        if s2.button(t("Reload saved version", "저장된 버전 다시 불러오기"), key="dataset.reload"):
            st.session_state.pop(f"dataset.editor.{info.name}", None)
            st.rerun()

        st.subheader(t("Lengths", "길이"))
        lengths = pd.DataFrame(lengths_rows)
        if not lengths.empty:
            hists = [("instruction_chars", t("question length (characters)", "질문 길이 (글자)")),
                      ("output_chars", t("answer length (characters)", "답변 길이 (글자)"))]
            if "tokens" in lengths:
                hists.append(("tokens", t(f"prompt + answer tokens ({tokenizer_name})", f"프롬프트+답변 토큰 ({tokenizer_name})")))
            for col, (field, title) in zip(st.columns(len(hists)), hists):
                col.altair_chart(charts.length_histogram(lengths, field, title, count_title=t("rows", "행 수")), width="stretch")

# --- split --------------------------------------------------------------------------------------
with tab_split:
    if not info:
        st.info(t("Import or generate a dataset first.", "먼저 데이터셋을 가져오거나 생성하세요."))
    else:
        split_values = config_form(alpaca.SplitConfig, ["test_size", "seed", "val_size", "leakage_threshold"],
                                   key_prefix="dataset.", columns=4, keys={"leakage_threshold": "dataset.leak_threshold"})
        if st.button(t("Split", "분할"), key="dataset.split", type="primary"):
            cfg = build_config(alpaca.SplitConfig, split_values)
            if cfg is not None:
                report, _ = progress_reporter(t("Splitting…", "분할 중…"))
                with user_errors():
                    alpaca.split_dataset(info.name, cfg, workspace=ws, progress=report)
                    st.rerun()
        if info.split:
            sp = info.split
            st.caption(t(f"Split {sp['created']}: test_size {sp['test_size']}, seed {sp['seed']}, validation {sp['val_size']} of train.",
                         f"{sp['created']} 분할: test_size {sp['test_size']}, 시드 {sp['seed']}, 학습의 {sp['val_size']}를 검증으로."))
            d = st.columns(3)
            for col, split in zip(d, alpaca.SPLITS):
                path = info.path / f"{split}.csv"
                if path.is_file():
                    col.download_button(t(f"Download {split}.csv ({sp['sizes'][split]} rows)", f"{split}.csv 내려받기 ({sp['sizes'][split]}행)"),
                                        path.read_bytes(), file_name=f"{info.name}-{split}.csv", mime="text/csv", key=f"dataset.download_{split}")
            leaks = alpaca.load_leakage(info.name, ws)
            st.subheader(t("Leakage check", "누수 검사"))
            if leaks:
                st.warning(t(f"{len(leaks)} test questions nearly repeat a question the model trains on: scores on them measure memory, "
                             "not generalisation. Drop or rewrite them, then split again.",
                             f"테스트 질문 {len(leaks)}개가 학습 질문과 거의 같습니다: 이 질문의 점수는 일반화가 아니라 암기를 잽니다. "
                             "삭제하거나 고친 뒤 다시 분할하세요."))
                st.dataframe(pd.DataFrame([lk.to_dict() for lk in leaks]), hide_index=True)
            else:
                st.success(t("No test question nearly repeats a training question.", "학습 질문과 거의 같은 테스트 질문이 없습니다."))

# --- export & push ------------------------------------------------------------------------------
with tab_push:
    if not info or not info.split:
        st.info(t("Split the dataset first: the Hub gets its train and test files.", "먼저 분할하세요: Hub에는 학습/테스트 파일이 올라갑니다."))
    else:
        from workbench.hub import export_dataset, push_dataset

        repo = st.text_input(t("Hub repository (USER/NAME)", "Hub 저장소 (USER/NAME)"), key="dataset.repo")
        private = st.checkbox(t("Private", "비공개"), value=True, key="dataset.private")
        token = st.text_input(t("Hugging Face token (empty: HF_TOKEN)", "Hugging Face 토큰 (비우면 HF_TOKEN)"), type="password", key="dataset.hf_token")
        x1, x2 = st.columns(2)
        if x1.button(t("Write the export folder", "내보내기 폴더 쓰기"), key="dataset.export"):
            with user_errors():
                export_dataset(info.name, ws, repo_id=repo.strip())
        if x2.button(t("Push to the Hub", "Hub에 올리기"), key="dataset.push", type="primary", disabled=not repo.strip()):
            report, _ = progress_reporter(t("Uploading…", "올리는 중…"))
            with user_errors():
                out = push_dataset(info.name, repo.strip(), private=private, token=token or None, workspace=ws, progress=report)
                st.success(t(f"Uploaded: {out['url']}", f"업로드 완료: {out['url']}"))
        export = info.path / "export"
        if export.is_dir():
            st.caption(t("Export folder (uploaded as is):", "내보내기 폴더 (그대로 업로드됨):"))
            st.code(str(export), language=None)
            st.dataframe(pd.DataFrame([{t("file", "파일"): p.name, t("bytes", "바이트"): p.stat().st_size}
                                       for p in sorted(export.iterdir())]), hide_index=True)
            card = export / "README.md"
            if card.is_file():
                with st.expander(t("Dataset card (README.md)", "데이터셋 카드 (README.md)")):
                    st.code(card.read_text(encoding="utf-8"), language="markdown")
