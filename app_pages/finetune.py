"""Fine-tune: pick a dataset and a base model, set the recipe, start a LoRA run in the background, watch it,
cancel / resume it, compare runs, then try, merge and push the result. Training itself runs in a child process
(`workbench.training.runs`); this page only reads the run's files."""

from __future__ import annotations

import json

import streamlit as st

from workbench.common.errors import WorkbenchError
from workbench.models.registry import REGISTRY
from workbench.training import runs as jobs  # training runs, on the generic runner (workbench.jobs)
from workbench.training.finetune import GROUPS, TrainConfig
from workbench.ui import charts, finetune_views, resources
from workbench.ui.common import metric_row, need, user_errors, workspace
from workbench.ui.forms import build_config, clear_form_values, config_sections, set_form_values
from workbench.ui.i18n import t, tabs

ws = workspace()
RUN_KEY = "train.run_id"
DEFAULTS = TrainConfig()
GROUP_TITLES = finetune_views.GROUP_TITLES

st.title(t("Fine-tune", "파인튜닝"))
st.caption(t("LoRA supervised fine-tuning with Unsloth (or Transformers + PEFT) as a background run. Defaults are the "
             "tutorial's recipe; 'auto' settings adapt to this machine.",
             "Unsloth (또는 Transformers + PEFT)로 하는 LoRA 지도 미세조정을 백그라운드로 실행합니다. 기본값은 튜토리얼의 "
             "레시피이고, 'auto' 설정은 이 컴퓨터에 맞춰집니다."))

from workbench.dataset.alpaca import list_datasets  # noqa: E402  (after the title: the page shows while it imports)

datasets = [d.name for d in list_datasets(ws) if d.split]
runs = jobs.list_runs(ws)
if not datasets and not runs:
    need(False, "No split dataset yet. Import and split one on the Dataset page first.",
         "분할된 데이터셋이 아직 없습니다. 먼저 데이터셋 페이지에서 가져오고 분할하세요.")

TAB_RUN = t("Current run", "현재 실행")
started = st.session_state.pop("finetune.started", None)
if started:  # a run was just started: show it (tabs with a key and on_change can be selected through the state)
    st.session_state["finetune.tab"] = TAB_RUN
    st.session_state["finetune.pick"] = started  # the run picker keeps its last pick: a second run showed the first
tab_new, tab_run, tab_history = tabs("finetune.tab", [("New run", "새 실행"), ("Current run", "현재 실행"),
                                                     ("History", "기록")])

# --- the form: one widget per TrainConfig field, grouped; labels, tooltips and bounds come from the config ----
FIELD_ARGS = {"dataset": {"options": datasets}, "base_model": {"options": list(REGISTRY), "accept_new_options": True},
              "context_collection": finetune_views.collection_field(ws)}

with tab_new:
    if not datasets:
        st.info(t("No split dataset yet: split one on the Dataset page to start a run.",
                  "분할된 데이터셋이 없습니다: 데이터셋 페이지에서 분할하면 실행할 수 있습니다."))
    else:
        p1, p2 = st.columns([3, 1])
        if p2.button(t("Load the tutorial's exact settings", "튜토리얼 설정 그대로 불러오기"), key="finetune.tutorial",
                     help=t("Llama-3 Korean 8B, padded 2 x 4 batches, 4096 tokens, max_steps 100 (GPU + Hub).",
                            "Llama-3 한국어 8B, 패딩 2 x 4 배치, 4096 토큰, max_steps 100 (GPU + Hub).")):
            set_form_values(TrainConfig.tutorial(dataset=st.session_state.get("finetune.dataset", datasets[0])), "finetune.")
            st.rerun()
        if p2.button(t("Reset to the defaults", "기본값으로 되돌리기"), key="finetune.reset"):
            clear_form_values(TrainConfig, "finetune.")
            st.rerun()
        finetune_views.apply_machine_equivalent("finetune.")
        with p1:
            values = config_sections(TrainConfig, GROUPS, GROUP_TITLES, key_prefix="finetune.", expanded=("data", "model"),
                                     defaults=DEFAULTS, columns=3, field_args=FIELD_ARGS)
        config = build_config(TrainConfig, values)
        if config is not None:
            runs_here = finetune_views.machine_fit(config, "finetune.")  # False: this machine cannot run it
            finetune_views.context_fit(config, ws)
            b1, b2 = st.columns([1, 3])
            if b1.button(t("Start training", "학습 시작"), type="primary", key="finetune.start", disabled=not runs_here):
                with user_errors():
                    run = jobs.start_training(config, ws)
                    st.session_state[RUN_KEY] = st.session_state["finetune.started"] = run.id
                    st.rerun()
            b2.download_button(t("Download this config (for the CLI)", "이 설정 내려받기 (CLI용)"),
                               data=json.dumps(config.to_dict(), ensure_ascii=False, indent=2), file_name="train.json",
                               mime="application/json", key="finetune.download",
                               help="python -m workbench train --config train.json")


# --- the current run: live chart, cancel / resume, try, merge, push ---------------------------------------------


def _selected_run() -> jobs.RunInfo | None:
    run_id = st.session_state.get(RUN_KEY) or (runs[0].id if runs else None)
    if not run_id:
        return None
    try:
        return jobs.get_run(run_id, ws)
    except WorkbenchError:  # a deleted (or unreadable) run folder: forget it
        st.session_state.pop(RUN_KEY, None)
        return None


def _live(run_id: str) -> None:
    run = jobs.get_run(run_id, ws)
    s = run.status
    active = run.state in ("pending", "running")
    metrics = run.metrics()
    last_tps = next((m["tokens_per_s"] for m in reversed(metrics) if "tokens_per_s" in m), None)
    last_eval = next((m["eval_loss"] for m in reversed(metrics) if "eval_loss" in m), None)
    metric_row((t("State", "상태"), finetune_views.state_label(run.state)),
               (t("Step", "스텝"), f"{s.get('step') or 0} / {s.get('max_steps') or '?'}"),
               (t("Tokens/s", "토큰/초"), f"{last_tps:,.0f}" if last_tps else "-",
                t("Real (non-padding) input tokens per second of training, evaluations excluded.",
                  "학습 중 초당 실제(패딩 제외) 입력 토큰 수, 평가 시간 제외.")),
               (t("ETA", "남은 시간"), finetune_views.eta_label(s) if active else "-"),
               (t("Validation loss", "검증 손실"), f"{last_eval:.4f}" if last_eval is not None else "-"))
    if s.get("max_steps"):
        st.progress(min((s.get("step") or 0) / s["max_steps"], 1.0))
    if s.get("error"):
        st.error(finetune_views.run_error(s), icon="⚠️")
    chart = charts.loss_chart(metrics, step_title=t("step", "스텝"), loss_title=t("loss", "손실"))
    if chart is not None:
        st.altair_chart(chart, width="stretch", key="finetune.loss_chart")
        l1, l2 = st.columns(2)
        for col, key, title in ((l1, "learning_rate", t("learning rate", "학습률")), (l2, "tokens_per_s", t("tokens/s", "토큰/초"))):
            small = charts.metric_chart(metrics, key, title, step_title=t("step", "스텝"))
            if small is not None:
                col.altair_chart(small, width="stretch")
    elif active:
        st.info(finetune_views.run_message(s) or t("Loading the model and preparing the data…", "모델을 불러오고 데이터를 준비하는 중…"))
    b1, b2, b3 = st.columns([1, 1, 4])
    if active and b1.button(t("Cancel", "취소"), key="finetune.cancel",
                            help=t("Saves a checkpoint at the end of the current step, then stops.",
                                   "현재 스텝이 끝나면 체크포인트를 저장하고 멈춥니다.")):
        with user_errors():
            jobs.cancel_run(run.id, ws)
            st.toast(t("Cancel requested: stopping after the current step.", "취소 요청: 현재 스텝 후 멈춥니다."))
    if run.state in ("cancelled", "failed") and b2.button(t("Resume", "재개"), key="finetune.resume",
                                                           help=t("Continues from the last checkpoint.", "마지막 체크포인트부터 이어 갑니다.")):
        with user_errors():
            jobs.resume_run(run.id, ws)
            st.rerun()
    with b3.expander(t("Log", "로그")):
        st.code(run.log_tail(30) or "-", language=None)
    finetune_views.show_context(run)
    if st.session_state.get("finetune.was_active") and not active:
        st.session_state["finetune.was_active"] = False
        st.rerun(scope="app")  # the run ended: redraw the page once (try / merge / push appear)
    st.session_state["finetune.was_active"] = active


with tab_run:
    if started:
        st.success(t(f"Run {started} started.", f"실행 {started}을(를) 시작했습니다."))
    current = _selected_run()
    if current is None:
        st.info(t("No run yet: start one in the first tab.", "아직 실행이 없습니다: 첫 탭에서 시작하세요."))
    else:
        ids = [r.id for r in runs] if current.id in [r.id for r in runs] else [current.id] + [r.id for r in runs]
        picked = st.selectbox(t("Run", "실행"), ids, index=ids.index(current.id), key="finetune.pick")
        if picked != current.id:
            st.session_state[RUN_KEY] = picked
            st.rerun()
        poll = 2.0 if current.state in ("pending", "running") else None
        st.fragment(run_every=poll)(_live)(current.id)
        st.caption(f"{current.config.dataset} · {current.config.base_model} · {current.config.backend} · "
                   f"{current.config.rows_per_step} {t('rows/step', '행/스텝')} · {current.path}")

        if current.state == "completed" and current.adapter_dir is not None:
            st.subheader(t("Try the fine-tuned model", "파인튜닝한 모델 써 보기"))
            from workbench.answers.inference import run_base_model

            question = st.text_input(t("Question", "질문"), key="finetune.try_q",
                                     placeholder=t("Can I pay in cash?", "현금으로 결제가 가능한가요?"))
            use_adapter = st.toggle(t("With the adapter (off: the base model)", "어댑터 사용 (끄면 기본 모델)"), value=True,
                                    key="finetune.try_adapter")
            if st.button(t("Answer", "답변"), key="finetune.try") and question.strip():
                from workbench.answers.answer import ask, prepare
                from workbench.answers.inference import GenerationConfig

                with user_errors():
                    with st.spinner(t("Loading the model…", "모델을 불러오는 중…")):
                        gen = resources.generator(run_base_model(current), str(ws.root))
                    source = "ft" if use_adapter else "base"
                    setup = prepare([source], ws, run=current, generator=gen)
                    stream = ask(question, [source], setup, GenerationConfig()).streams[source]
                    out, text = st.empty(), ""
                    for piece in stream:
                        text += piece
                        out.text(text)  # model output is shown as text, never as markup
                    if stream.result is not None:
                        st.caption(f"{stream.result.completion_tokens} {t('tokens', '토큰')} · "
                                   f"{stream.result.tokens_per_s} tok/s · {setup.template}")

            st.subheader(t("Save, merge, push", "저장, 병합, 업로드"))
            st.markdown(t(f"The LoRA adapter is saved in `{current.adapter_dir}` (with its tokenizer).",
                          f"LoRA 어댑터는 `{current.adapter_dir}`에 (토크나이저와 함께) 저장되어 있습니다."))
            exporting = jobs.export_running(current)
            m1, m2 = st.columns(2)
            with m1:
                if current.merged_dir is not None:
                    st.success(t(f"Merged 16-bit model: {current.merged_dir}", f"병합된 16비트 모델: {current.merged_dir}"))
                if exporting:
                    finetune_views.export_watch(lambda: jobs.export_running(jobs.get_run(current.id, ws)))
                elif st.button(t("Merge into 16-bit weights (merged_16bit)", "16비트 가중치로 병합 (merged_16bit)"),
                               key="finetune.merge"):
                    with user_errors():
                        jobs.start_export(current.id, ws, merged=True)
                        st.rerun()
            with m2:
                repo = st.text_input(t("Hub repository", "Hub 저장소"), key="finetune.push_repo", placeholder="user/shop-qa-lora")
                what = st.radio(t("Upload", "업로드 대상"), ["lora", "merged_16bit"], horizontal=True, key="finetune.push_what")
                token = st.text_input(t("Token (not stored)", "토큰 (저장 안 함)"), type="password", key="finetune.push_token")
                private = st.checkbox(t("Private", "비공개"), key="finetune.push_private")
                if st.button(t("Push to the Hub", "Hub에 업로드"), key="finetune.push", disabled=not repo or bool(exporting)):
                    from workbench.models.registry import require_hub

                    with user_errors():
                        require_hub(f"push {repo}")
                        jobs.start_export(current.id, ws, merged=what == "merged_16bit", push=repo, private=private,
                                          token=token or None)
                        st.rerun()
            export_log = current.path / "logs" / "export.log"
            if export_log.is_file():
                with st.expander(t("Export log", "내보내기 로그")):
                    st.code("\n".join(export_log.read_text(errors="replace").splitlines()[-15:]), language=None)


# --- history: compare loss curves of several runs ----------------------------------------------------------------
with tab_history:
    if not runs:
        st.info(t("No runs yet.", "아직 실행이 없습니다."))
    else:
        st.dataframe(finetune_views.history_table(runs), hide_index=True, width="stretch")
        chosen = st.multiselect(t("Compare the loss curves of", "손실 곡선 비교"), [r.id for r in runs],
                                default=[r.id for r in runs[:3]], key="finetune.compare")
        merged_metrics = [{**m, "run": r.id} for r in runs if r.id in chosen for m in r.metrics()]
        chart = charts.loss_chart(merged_metrics, color_by="run", step_title=t("step", "스텝"), loss_title=t("loss", "손실"))
        if chart is not None:
            st.altair_chart(chart, width="stretch", key="finetune.history_chart")
