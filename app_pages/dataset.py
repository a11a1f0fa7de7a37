"""Dataset: import / generate / edit / validate / split / export / push Alpaca rows (workbench.dataset.alpaca, synth, hub)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from workbench.common.config import PROJECT_DIR
from workbench.dataset import alpaca, alpaca_checks, alpaca_io
from workbench.kb.documents import safe_name
from workbench.ui import charts, dataset_views
from workbench.ui.common import metric_row, progress_reporter, user_errors, workspace
from workbench.ui.forms import build_config, config_field, config_form
from workbench.ui.i18n import t, tabs, tr
from workbench.ui.resources import dataset_report

ws = workspace()
SAMPLES = PROJECT_DIR / "examples" / "alpaca"
DC = alpaca.DatasetConfig


def as_text(v: object) -> str | None:
    """Cells are shown as text: a number in a text column would break the Arrow table (and is itself a finding)."""
    return v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)


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

tab_import, tab_gen, tab_edit, tab_split, tab_push = tabs(
    "dataset.tab", [("Import", "가져오기"), ("Generate", "생성"), ("Edit & check", "편집·검사"), ("Split", "분할"),
                    ("Export & push", "내보내기·업로드")])

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
        up = st.file_uploader(t("CSV, JSON or JSONL (the encoding is detected; choose it below if the guess is not clear)",
                                "CSV, JSON, JSONL (인코딩은 감지합니다. 짐작이 분명하지 않으면 아래에서 고르세요)"),
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
                st.warning(tr(read["encoding_warning"]))
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
    if st.session_state.get("dataset.gen_job") is not None:  # the job's folder: the work is a child process
        dataset_views.generation_watch(st.session_state["dataset.gen_job"])
    else:
        collections: list[str] = []
        with user_errors():
            from workbench.kb.vectordb import list_collections

            collections = [c.name for c in list_collections(ws)]
        if not collections:
            st.info(t("No knowledge-base collection yet: build one on the Knowledge base page first.",
                      "아직 지식 베이스 컬렉션이 없습니다: 먼저 지식 베이스 페이지에서 만드세요."))
        else:
            dataset_views.generation_form(ws, collections)

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
        dataset_views.issues_panel(info, rows, issues, ws)

        st.subheader(t("Rows", "행"))
        st.caption(t("Edit cells, add rows at the bottom, delete rows by selecting them. Saving stores every value as text; "
                     "'Reload' throws unsaved edits away.",
                     "셀을 고치고, 맨 아래에 행을 추가하고, 선택해 삭제하세요. 저장하면 모든 값이 텍스트로 저장됩니다; "
                     "'다시 불러오기'는 저장하지 않은 편집을 버립니다."))
        cols = alpaca.row_columns(rows)
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
                with user_errors():  # the files of the split meta.json names, read under its read lock
                    col.download_button(t(f"Download {split}.csv ({sp['sizes'][split]} rows)", f"{split}.csv 내려받기 ({sp['sizes'][split]}행)"),
                                        alpaca.split_file(info.name, split, "csv", ws), file_name=f"{info.name}-{split}.csv",
                                        mime="text/csv", key=f"dataset.download_{split}")
            dataset_views.leakage_panel(info.name, ws)
            dataset_views.where_you_start(info.name, ws)

# --- export & push ------------------------------------------------------------------------------
with tab_push:
    if not info or not info.split:
        st.info(t("Split the dataset first: the Hub gets its train and test files.", "먼저 분할하세요: Hub에는 학습/테스트 파일이 올라갑니다."))
    else:
        from workbench.dataset.hub import export_dataset, push_dataset

        repo = st.text_input(t("Hub repository (USER/NAME)", "Hub 저장소 (USER/NAME)"), key="dataset.repo")
        private = st.checkbox(t("Private", "비공개"), value=True, key="dataset.private")
        token = st.text_input(t("Hugging Face token (empty: HF_TOKEN)", "Hugging Face 토큰 (비우면 HF_TOKEN)"), type="password", key="dataset.hf_token")
        x1, x2 = st.columns(2)
        if x1.button(t("Write the export folder", "내보내기 폴더 쓰기"), key="dataset.export"):
            with user_errors():
                folder = export_dataset(info.name, ws, repo_id=repo.strip())
                st.success(t(f"Wrote train.csv, test.csv and the dataset card to {folder}",
                             f"train.csv, test.csv와 데이터셋 카드를 {folder}에 썼습니다"))
        if x2.button(t("Push to the Hub", "Hub에 올리기"), key="dataset.push", type="primary", disabled=not repo.strip()):
            report, _ = progress_reporter(t("Uploading…", "올리는 중…"))
            with user_errors():
                out = push_dataset(info.name, repo.strip(), private=private, token=token or None, workspace=ws, progress=report)
                st.success(t(f"Uploaded: {out['url']}", f"업로드 완료: {out['url']}"))
        dataset_views.export_folder(info.path / "export")
