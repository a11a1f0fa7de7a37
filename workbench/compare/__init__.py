"""Comparing the answer sources: scores, the batch evaluation, its report and verdict, and the labs.

Modules:
    metrics             scoring one answer (`score_answer`, `char_f1`, `rouge_l`) and statistics (`mean_ci`)
    judge               the LLM judge (`LLMJudge`)
    eval_config         an evaluation's settings and folder (`EvalConfig`, `evals_root`, `list_evaluations`)
    evaluation          the batch evaluation (`run_evaluation`, `load_results`, `load_summary`)
    eval_jobs           evaluations as jobs on the runner (`start_evaluation`, `evaluation_status`)
    report              summary.json, report.md and report.html (`summarize`, `render_markdown`, `render_html`)
    verdict             which source is best and whether the test set can tell (`verdict`, `sentence`)
    freshness           change a fact, re-ingest, ask again (`FreshnessDemo`, `measure`)
    retrieval_lab       how well each retrieval setting finds the right chunk (`LabConfig`, `measure`)
    retrieval_lab_jobs  the retrieval lab as a job on the runner (`start_lab`, `lab_status`)
"""
