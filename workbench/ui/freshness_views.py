"""The Compare page's knowledge-freshness panel: edit a fact, re-ingest it as a background job, ask the demo's checks
before and after, and show which fact each source states (`workbench.compare.freshness` measures; this module only draws).

The panel keeps its state in `st.session_state["compare.fresh"]`: "before" / "after" (the records of
`freshness.ask_checks`), "job" while a re-ingest runs, "changed" (what `change_facts` edited, with the job's added /
removed / seconds once it is done), "note" (the last job's outcome) and "measure" (the saved measurement).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from workbench.common.texts import from_record, state_ko
from workbench.compare import freshness as fr
from workbench.ui.common import job_progress, user_errors, wide_column
from workbench.ui.i18n import lang, t


def panel(demo: fr.FreshnessDemo, collection: str, sources: list[str], setup_for: Callable[[list[str]], Any],
          settings: Any, label: Callable[[str], str], ws: Any, run_id: str = "") -> None:
    """The freshness panel for `collection`: `setup_for(sources)` gives the answer setup (`answer.prepare`, with the
    page's cached model), `settings` the generation settings (None: the form is invalid, nothing can be asked)."""
    edits = st.data_editor(pd.DataFrame([vars(e) for e in demo.edits]), key="compare.fresh_edits",
                           num_rows="dynamic", hide_index=True, width="stretch", column_config=edit_columns())
    st.caption(t(f"Documents are read from {demo.source_dir} and edited copies kept in {fr.freshness_dir(collection, ws)}.",
                 f"문서는 {demo.source_dir}에서 읽고, 고친 사본은 {fr.freshness_dir(collection, ws)}에 둡니다."))
    st.caption(t("Asked before and after the change, and whether each answer states the old or the new fact: ",
                 "바꾸기 전과 후에 묻고, 답마다 옛 사실을 말하는지 새 사실을 말하는지 봅니다: ")
               + " · ".join(c.questions.get(lang(), "") for c in demo.checks))
    own = st.text_input(t("Your own question too (optional)", "내 질문도 함께 (선택)"), key="compare.fresh_question").strip()
    rows = edits.to_dict("records")
    demo_edits = [vars(e) for e in demo.edits] == [{k: str(r.get(k) or "") for k in ("file", "old", "new")} for r in rows]
    checks = [*(demo.checks if demo_edits else ()), *([fr.FactCheck({lang(): own}, (), ())] if own else [])]
    f = st.columns(4)
    fresh = st.session_state.setdefault("compare.fresh", {})
    for col, step, text, key in ((f[0], "before", t("1. Ask before", "1. 바꾸기 전에 묻기"), "compare.fresh_before"),
                                 (f[2], "after", t("3. Ask again", "3. 다시 묻기"), "compare.fresh_after")):
        if col.button(text, key=key, disabled=settings is None or not checks):
            with user_errors(), st.spinner(t("Asking every source…", "모든 소스에 묻는 중…")):
                fresh[step] = fr.ask_checks(setup_for(sources), sources, checks, lang(), settings)
                fresh.pop("measure", None)
                if step == "after" and fresh.get("before") and "seconds" in fresh.get("changed", {}) and demo_edits:
                    fresh["measure"] = fr.save_measure(collection, fresh["before"], fresh["after"],
                                                       fresh["changed"]["seconds"], ws, run=run_id)
    if f[1].button(t("2. Change the fact and re-ingest", "2. 사실을 바꾸고 다시 넣기"), key="compare.fresh_change",
                   disabled="job" in fresh):
        with user_errors():
            todo = [fr.FactEdit(str(r["file"]), str(r["old"]), str(r["new"])) for r in rows if r.get("file") and r.get("old")]
            fresh["changed"] = fr.change_facts(collection, todo, demo.source_dir, ws, background=True)
            fresh["job"] = {"folder": fresh["changed"]["job"], "step": "change"}
    if f[3].button(t("Restore the original documents", "원래 문서로 되돌리기"), key="compare.fresh_restore",
                   disabled="changed" not in fresh or "job" in fresh):
        with user_errors():
            done = fr.restore_facts(collection, fresh.pop("changed")["files"], demo.source_dir, ws, background=True)
            fresh["job"] = {"folder": done["job"], "step": "restore"}
    if not demo_edits:
        st.caption(t("These are not the demo's edits: the answers are shown, but which fact they state is not measured.",
                     "예제의 수정이 아니므로 답은 보여 주지만 어느 사실을 말하는지는 재지 않습니다."))
    freshness_job(fresh, ws)
    if "before" in fresh or "after" in fresh:
        show_freshness_table(fresh, sources, label)
    if fresh.get("measure"):
        show_freshness_measure(fresh["measure"], label)


def freshness_job(fresh: dict[str, Any], ws: Any) -> None:
    """The freshness demo's re-ingest, a background job: its progress (and cancel) while it runs, then what it changed.

    `fresh` is the page's state: "job" ({"folder", "step": "change" | "restore"}) while a re-ingest runs, "changed"
    (what `change_facts` edited, with the job's added / removed once it is done), "note" (the last job's outcome).
    """
    from workbench.kb import ingest_jobs, vectordb

    job = fresh.get("job")
    if job is not None:
        fresh.pop("note", None)

        @st.fragment(run_every=1.0)
        def _watch() -> None:
            status = ingest_jobs.ingest_status(job["folder"])
            if job_progress(status, cancel=lambda: ingest_jobs.cancel_ingest(job["folder"]), key="compare.fresh_cancel",
                            starting=t("Re-ingesting…", "다시 넣는 중…")):
                return
            report = ingest_jobs.ingest_report(job["folder"]) if status["state"] == "completed" else None
            vectordb.reload_store(ws)  # the child wrote the collection: this process reads it afresh
            if report is not None and job["step"] == "change" and "changed" in fresh:
                fresh["changed"].update(added=report["added"], removed=report["removed"],
                                        seconds=round(float(report.get("seconds") or 0.0), 2))
            fresh["note"] = {"step": job["step"], "state": status["state"], "error": from_record(status, "error", lang())}
            fresh.pop("job", None)
            st.rerun(scope="app")

        _watch()
    note = fresh.get("note")
    if note and note["state"] != "completed":
        st.error(t(f"The re-ingest {note['state']}: {note['error']}. Run the step again.",
                   f"다시 넣기 {state_ko(note['state'])}: {note['error']}. 그 단계를 다시 실행하세요."), icon="⚠️")
    elif note and note["step"] == "change" and "changed" in fresh:
        changed_note(fresh["changed"])
    elif note and note["step"] == "restore":
        st.success(t("The original documents are back in the collection.", "원래 문서를 컬렉션에 다시 넣었습니다."))


def changed_note(done: Mapping[str, Any]) -> None:
    """What `freshness.change_facts` changed and re-ingested."""
    st.success(t(f"Changed {done['replacements']} places in {', '.join(done['files'])}; re-ingested "
                 f"({done['added']} chunks added, {done['removed']} removed).",
                 f"{', '.join(done['files'])}에서 {done['replacements']}곳을 바꾸고 다시 넣었습니다 "
                 f"(청크 {done['added']}개 추가, {done['removed']}개 삭제)."))
    if done["skipped"]:
        st.caption(t(f"Not in this collection, left alone: {', '.join(done['skipped'])}",
                     f"이 컬렉션에 없어 건드리지 않음: {', '.join(done['skipped'])}"))


FACTS = {"new": ("new fact", "새 사실"), "old": ("old fact", "옛 사실"), "both": ("both", "둘 다"),
         "neither": ("neither", "둘 다 아님"), "": ("–", "–")}


def freshness_table(fresh: Mapping[str, Any], sources: list[str], label: Callable[[str], str]) -> pd.DataFrame:
    """Each question and source: the answer before and after the fact changed, and which fact each states (checks
    without markers, a question of the user's own: "–")."""
    def by_key(step: str) -> dict[tuple[str, str], Mapping[str, Any]]:
        return {(r["question"], r["source"]): r for r in fresh.get(step) or []}

    before, after = by_key("before"), by_key("after")
    questions = list(dict.fromkeys(q for q, _ in [*before, *after]))
    rows = []
    for q in questions:
        for s in sources:
            b, a = before.get((q, s), {}), after.get((q, s), {})
            if not b and not a:
                continue
            rows.append({t("question", "질문"): q, t("source", "소스"): label(s),
                         t("before the change", "바꾸기 전"): b.get("answer", ""),
                         t("fact before", "바꾸기 전 사실"): t(*FACTS[b.get("fact", "")]) if b else "",
                         t("after the change", "바꾼 후"): a.get("answer", ""),
                         t("fact after", "바꾼 후 사실"): t(*FACTS[a.get("fact", "")]) if a else ""})
    return pd.DataFrame(rows)


def show_freshness_table(fresh: Mapping[str, Any], sources: list[str], label: Callable[[str], str]) -> None:
    """The freshness table with room for the answers (the columns worth reading)."""
    before, after = t("before the change", "바꾸기 전"), t("after the change", "바꾼 후")
    st.dataframe(freshness_table(fresh, sources, label), hide_index=True, width="stretch",
                 column_config={**wide_column(before, "medium"), **wide_column(after, "medium"),
                                t("source", "소스"): st.column_config.TextColumn(t("source", "소스"), width="small")})


def show_freshness_measure(record: Mapping[str, Any], label: Callable[[str], str]) -> None:
    """The measurement: per source, answers that stated the old fact before and the new one after; a warning for
    every source that kept the old fact although retrieval gave it the new one."""
    rows = [{t("source", "소스"): label(s), t("old fact before", "바꾸기 전 옛 사실"): f"{m['old_before']}/{m['questions']}",
             t("new fact after", "바꾼 후 새 사실"): f"{m['new_after']}/{m['questions']}",
             t("old fact after", "바꾼 후 옛 사실"): f"{m['old_after']}/{m['questions']}"}
            for s, m in record["summary"].items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    seconds = record.get("reingest_seconds")
    if seconds is not None:
        st.caption(t(f"Absorbing the change took a re-ingest of {seconds:.1f} s; the fine-tuned model would need a new "
                     f"training run.", f"바뀐 사실을 반영하는 데 다시 넣기 {seconds:.1f}초가 걸렸습니다. 파인튜닝 모델은 "
                     f"다시 학습해야 합니다."))
    for s, m in record["summary"].items():
        if m["stale"]:
            st.warning(t(f"{label(s)} stated the old fact in {len(m['stale'])} answers although retrieval gave it the "
                         f"new one: what it learned overrides what it reads.",
                         f"{label(s)}은(는) 검색이 새 사실을 주었는데도 {len(m['stale'])}개 답에서 옛 사실을 말했습니다: "
                         f"학습한 것이 읽은 것을 이깁니다."))


def edit_columns() -> dict[str, Any]:
    """The freshness demo's edits table: file, old text, new text, named in the page's language."""
    return {"file": st.column_config.TextColumn(t("file", "파일"), width="small"),
            "old": st.column_config.TextColumn(t("old text", "바꿀 문장"), width="large"),
            "new": st.column_config.TextColumn(t("new text", "새 문장"), width="large")}
