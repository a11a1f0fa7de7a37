"""The evaluation's report: means with confidence intervals per source, how readable the answers are (did they end on
their own, loop, recite the prompt), who wins where, before and after training, the cost side, and the verdict
(`workbench.compare.verdict`), in the files summary.json, report.md and report.html (an inline SVG chart: it must work
offline).
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.answers.answer import RAG_SOURCES, SOURCE_LABELS
from workbench.common.runfiles import write_json, write_text
from workbench.common.texts import pick
from workbench.compare.metrics import METRICS, answer_flags, mean_ci
from workbench.compare.verdict import before_after, before_after_sentence, sentence, verdict
from workbench.models.prompts import instruction_sentences
from workbench.models.stopping import STOPPED_ON_ITS_OWN

if TYPE_CHECKING:  # pragma: no cover
    from workbench.compare.eval_config import EvalConfig

SUMMARY_FILE, REPORT_MD, REPORT_HTML, RESULTS_FILE = "summary.json", "report.md", "report.html", "results.csv"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def pair_winners(results: Sequence[Mapping[str, Any]], a: str = "ft", b: str = "rag", metric: str = "char_f1") -> dict[int, str]:
    """For each row answered by both `a` and `b`: which scored higher on `metric` (`a`, `b` or "tie")."""
    by_row: dict[int, dict[str, float]] = {}
    for r in results:
        if r["source"] in (a, b) and r.get(metric) is not None:
            by_row.setdefault(int(r["row"]), {})[r["source"]] = float(r[metric])
    out = {}
    for row, scores in sorted(by_row.items()):
        if a in scores and b in scores:
            out[row] = a if scores[a] > scores[b] else b if scores[b] > scores[a] else "tie"
    return out


def wide_results(results: Sequence[Mapping[str, Any]], metric: str = "char_f1", lang: str = "en") -> list[dict[str, Any]]:
    """One record per question: question, reference, and each source's answer and `metric` side by side. With
    lang="ko" the columns are named in Korean (the sources by their labels)."""
    rows: dict[int, dict[str, Any]] = {}
    for r in results:
        rec = rows.setdefault(int(r["row"]), {_col("row", lang): int(r["row"]), _col("question", lang): r["question"],
                                              _col("reference", lang): r["reference"]})
        src = _source(r["source"], lang) if lang == "ko" else r["source"]
        rec[f"{src}: {_col('answer', lang)}"] = r["answer"]
        rec[f"{src}: {_metric(metric, lang) if lang == 'ko' else metric}"] = r.get(metric)
    return [rows[k] for k in sorted(rows)]


def readability(results: Sequence[Mapping[str, Any]], rag_template: str = "") -> dict[str, int]:
    """How many of `results` (one source's answers) ended on their own (a stop token or the format's boundary), were
    cut as a loop, ran to max_new_tokens, and still hold a repeated span, a sentence of the prompt's instructions or a
    context header (`metrics.answer_flags`)."""
    sentences = instruction_sentences(rag_template)
    flags = [answer_flags(str(r.get("answer") or ""), sentences) for r in results]
    return {"answers": len(results), "ended_on_own": sum(r.get("stopped") in STOPPED_ON_ITS_OWN for r in results),
            "loop_cut": sum(r.get("stopped") == "loop" for r in results),
            "max_new_tokens": sum(r.get("stopped") == "max_new_tokens" for r in results),
            "repeated_span": sum(f["loop"] for f in flags), "instruction": sum(f["instruction"] for f in flags),
            "header": sum(f["header"] for f in flags)}


def summarize(results: Sequence[Mapping[str, Any]], config: EvalConfig, *, sources: Sequence[str] | None = None,
              cancelled: bool = False, rows_total: int | None = None, seconds: float = 0.0, template: str | None = None,
              base_template: str | None = None, warnings: Sequence[str] = (), train_seconds: float | None = None,
              adapter_bytes: int | None = None, baseline: Mapping[str, Any] | None = None,
              reingest_seconds: float | None = None) -> dict[str, Any]:
    """Means with confidence intervals per source and metric, how readable the answers are, the cost side, who wins
    where, before and after training (against `baseline`: {"folder", "created", "results"} of a where-you-start
    evaluation of the same split, if there is one), and the verdict."""
    sources = list(sources or dict.fromkeys(r["source"] for r in results))
    per_source: dict[str, Any] = {}
    for s in sources:
        rs = [r for r in results if r["source"] == s]
        metrics = {m: mean_ci([r.get(m) for r in rs], config.confidence, config.bootstrap, config.seed) for m in METRICS}
        if s not in RAG_SOURCES:
            metrics.pop("retrieval_hit")
        if not config.judge_base_url:
            metrics.pop("judge")
        if not config.embedding_model:
            metrics.pop("embedding_similarity")

        def avg(key: str) -> float | None:
            vals = [float(r[key]) for r in rs if r.get(key) is not None]
            return round(sum(vals) / len(vals), 4) if vals else None

        per_source[s] = {
            "rows": len(rs), "metrics": metrics, "latency_s": avg("latency_s"), "prompt_tokens": avg("prompt_tokens"),
            "completion_tokens": avg("completion_tokens"), "tokens_per_s": avg("tokens_per_s"),
            "retrieval_s": avg("retrieval_s"), "hit_max_tokens": sum(1 for r in rs if r.get("stopped") == "max_new_tokens"),
            "readability": readability(rs, config.rag_template),
        }
    added: dict[str, float] = {}
    for rag_s, plain in (("rag", "base"), ("ft_rag", "ft"), ("api_rag", "api")):
        if rag_s in per_source and plain in per_source and per_source[rag_s]["prompt_tokens"] is not None \
                and per_source[plain]["prompt_tokens"] is not None:
            added[rag_s] = round(per_source[rag_s]["prompt_tokens"] - per_source[plain]["prompt_tokens"], 1)
    wins = {}
    for a, b in (("ft", "rag"), ("ft_rag", "rag"), ("ft", "base")):
        if a in per_source and b in per_source:
            w = pair_winners(results, a, b)
            wins[f"{a}_vs_{b}"] = {a: sum(v == a for v in w.values()), b: sum(v == b for v in w.values()),
                                   "tie": sum(v == "tie" for v in w.values())}
    stats = dict(confidence=config.confidence, n_boot=config.bootstrap, seed=config.seed)
    ba = before_after(results, baseline["results"] if baseline else None, **stats)
    return {
        "created": _now(), "config": config.to_dict(), "template": template, "base_template": base_template,
        "sources": sources,
        "rows": len({r["row"] for r in results}), "rows_total": rows_total, "cancelled": cancelled,
        "seconds": round(seconds, 1), "per_source": per_source, "warnings": [str(w) for w in warnings],
        "warnings_ko": [pick(w, "ko") for w in warnings],
        "cost": {"train_seconds": train_seconds, "adapter_bytes": adapter_bytes,
                 "adapter_mb": round(adapter_bytes / 2**20, 2) if adapter_bytes else None,
                 "prompt_tokens_added_by_retrieval": added, "reingest_seconds": reingest_seconds},
        "wins": wins,
        "verdict": verdict(results, sources, **stats),
        "baseline": {k: baseline[k] for k in ("folder", "created")} if baseline else None,
        "before_after": ba,
        "notes": {"exact_match": "normalised (NFKC, lower case, no punctuation), whitespace ignored",
                  "char_f1": "KorQuAD-style character F1", "rouge_l": "LCS F1 over characters",
                  "ci": f"{int(config.confidence * 100)}% percentile bootstrap, {config.bootstrap} resamples, seed {config.seed}",
                  "judge": "1-5 rubric score; unparseable verdicts are missing, not 0",
                  "latency": "seconds per answer, generation only (retrieval_s apart)" + (
                      f"; answers generated {config.batch_size} at a time: each gets its batch's wall time divided by the "
                      f"answers in it, and tokens/s is the batch's throughput" if config.batch_size > 1 else "")},
    }


# --- reports ----------------------------------------------------------------------------------------------------

METRIC_LABELS = {"exact_match": "EM", "char_f1": "char F1", "rouge_l": "ROUGE-L", "embedding_similarity": "embedding sim.",
                 "judge": "judge (1-5)", "retrieval_hit": "hit@k"}
METRIC_LABELS_KO = {"exact_match": "완전 일치", "char_f1": "문자 F1", "rouge_l": "ROUGE-L", "embedding_similarity": "임베딩 유사도",
                    "judge": "심사 (1-5)", "retrieval_hit": "검색 적중"}
# The column names of the tables below, as a Korean page shows them (the files keep the English).
COLUMNS_KO = {"source": "소스", "rows": "행 수", "latency s": "지연 시간(초)", "prompt tokens": "프롬프트 토큰",
              "answer tokens": "답변 토큰", "tokens/s": "토큰/초", "row": "행", "question": "질문", "reference": "참고 답변",
              "answer": "답변"}


def _col(name: str, lang: str) -> str:
    return COLUMNS_KO.get(name, name) if lang == "ko" else name


def _metric(name: str, lang: str) -> str:
    return METRIC_LABELS_KO[name] if lang == "ko" else METRIC_LABELS[name]


def _source(source: str, lang: str) -> str:
    en, ko = SOURCE_LABELS.get(source, (source, source))
    return ko if lang == "ko" else en


def _fmt_ci(m: Mapping[str, Any] | None, lang: str = "en") -> str:
    if not m or m.get("mean") is None:
        return "–"
    s = f"{m['mean']:.3f}"
    if m["n"] > 1:
        s += f" [{m['lo']:.3f}, {m['hi']:.3f}]"
    if m.get("missing"):
        s += f" ({m['missing']}개 없음)" if lang == "ko" else f" ({m['missing']} missing)"
    return s


def summary_table(summary: Mapping[str, Any], lang: str = "en") -> list[dict[str, Any]]:
    """One row per source: metric means with intervals as text, plus latency and token figures; the column names and
    sources in `lang` ("en" for the report files, "ko" for a Korean page)."""
    rows = []
    metric_names = [m for m in METRICS if any(m in v["metrics"] for v in summary["per_source"].values())]
    for s, v in summary["per_source"].items():
        row: dict[str, Any] = {_col("source", lang): _source(s, lang), _col("rows", lang): v["rows"]}
        for m in metric_names:
            row[_metric(m, lang)] = _fmt_ci(v["metrics"].get(m), lang)
        for key, col in (("latency_s", "latency s"), ("prompt_tokens", "prompt tokens"),
                         ("completion_tokens", "answer tokens"), ("tokens_per_s", "tokens/s")):
            row[_col(col, lang)] = v[key]
        rows.append(row)
    return rows


def chart_data(summary: Mapping[str, Any], lang: str = "en") -> list[dict[str, Any]]:
    """Long-form (source, metric, mean, lo, hi) records for a bar chart with error bars (0..1 metrics only); the
    sources and metrics named in `lang`."""
    out = []
    for s, v in summary["per_source"].items():
        for m, ci in v["metrics"].items():
            if m != "judge" and ci.get("mean") is not None:
                out.append({"source": _source(s, lang), "metric": _metric(m, lang), "mean": ci["mean"],
                            "lo": ci["lo"], "hi": ci["hi"]})
    return out


def _md_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])

    def cell(v: Any) -> str:
        return ("–" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


READABILITY_COLUMNS = {"ended_on_own": ("ended on its own", "스스로 끝남"), "loop_cut": ("cut as a loop", "반복으로 자름"),
                       "max_new_tokens": ("ran to max tokens", "최대 토큰까지"),
                       "repeated_span": ("repeats itself", "되풀이 있음"),
                       "instruction": ("recites the instruction", "지시문 따라 씀"),
                       "header": ("copies a context header", "문맥 머리글 복사")}


def readability_table(summary: Mapping[str, Any], lang: str = "en") -> list[dict[str, Any]]:
    """One row per source: how many answers ended on their own, were cut as a loop, ran to max tokens, and still hold a
    repeated span, the prompt's instruction or a context header (empty for a summary from before these were counted)."""
    rows = []
    for s, v in summary["per_source"].items():
        r = v.get("readability")
        if not r:
            continue
        rows.append({_col("source", lang): _source(s, lang),
                     **{(ko if lang == "ko" else en): f"{r[k]}/{r['answers']}" for k, (en, ko) in READABILITY_COLUMNS.items()}})
    return rows


def verdict_lines(summary: Mapping[str, Any], lang: str = "en") -> list[str]:
    """The verdict, and before and after training, as sentences in `lang` (none for a summary from before verdicts)."""
    if "verdict" not in summary:
        return []
    return [x for x in (sentence(summary["verdict"], lang), before_after_sentence(summary.get("before_after"), lang)) if x]


def before_after_table(summary: Mapping[str, Any], lang: str = "en") -> list[dict[str, Any]]:
    """Before and after training side by side: the base model without and with retrieval (before), the fine-tuned model
    without and with it (after), each source's mean of the verdict's metric; empty without a before or an after."""
    ba = summary.get("before_after")
    if not ba:
        return []
    rows = []
    for name, b, a in ((("without retrieval", "검색 없이"), "base", "ft"), (("with retrieval", "검색과 함께"), "rag", "ft_rag")):
        before, after = ba["before"].get(b), ba["after"].get(a)
        if before is None and after is None:
            continue
        rows.append({"": name[1] if lang == "ko" else name[0],
                     ("학습 전" if lang == "ko" else "before training"):
                         f"{_source(b, lang)}: {before:.3f}" if before is not None else "–",
                     ("학습 후" if lang == "ko" else "after training"):
                         f"{_source(a, lang)}: {after:.3f}" if after is not None else "–"})
    return rows


def absorb_line(summary: Mapping[str, Any], lang: str = "en") -> str:
    """What a document change costs each way: re-ingesting it (the freshness demo's measured seconds) against
    training again ("" when either is unknown)."""
    cost = summary["cost"]
    train, reingest = cost.get("train_seconds"), cost.get("reingest_seconds")
    if train is None or reingest is None:
        return ""
    if lang == "ko":
        return (f"문서 하나가 바뀌면: RAG는 다시 넣기 {reingest:.0f}초(최신성 실험에서 잰 값), 파인튜닝은 다시 학습 "
                f"{train / 60:.1f}분")
    return f"absorbing a document change: re-ingest {reingest:.0f} s (measured in the freshness demo) against re-training {train / 60:.1f} min"


def _cost_lines(summary: Mapping[str, Any]) -> list[str]:
    cost = summary["cost"]
    lines = []
    if cost.get("train_seconds") is not None:
        lines.append(f"training time: {cost['train_seconds']:.0f} s")
    if absorb_line(summary):
        lines.append(absorb_line(summary))
    if cost.get("adapter_mb") is not None:
        lines.append(f"adapter size: {cost['adapter_mb']} MiB")
    for s, n in cost.get("prompt_tokens_added_by_retrieval", {}).items():
        lines.append(f"prompt tokens added by retrieval ({SOURCE_LABELS[s][0]}): {n:+.0f} per question")
    for s, v in summary["per_source"].items():
        if v["latency_s"] is not None:
            extra = f" (+ retrieval {v['retrieval_s']:.3f} s)" if v.get("retrieval_s") is not None else ""
            lines.append(f"mean latency, {SOURCE_LABELS[s][0]}: {v['latency_s']:.2f} s{extra}")
    return lines


def render_markdown(summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> str:
    cfg = summary["config"]
    parts = [
        f"# Evaluation: {cfg['dataset']} ({cfg['split']} split)",
        "",
        f"{summary['rows']} of {summary['rows_total']} rows{' (cancelled)' if summary['cancelled'] else ''}, sources: "
        f"{', '.join(SOURCE_LABELS[s][0] for s in summary['sources'])}; run `{cfg['run_id'] or '-'}`, "
        f"{_templates(summary)}, collection `{cfg['collection'] or '-'}`"
        + (f" (k {summary['retrieval']['k']}, {summary['retrieval']['mode']})" if summary.get("retrieval") else "")
        + f"; {summary['created']}.",
        "",
        "## Scores (mean [95% CI])" if abs(cfg["confidence"] - 0.95) < 1e-9 else f"## Scores (mean [{cfg['confidence']:.0%} CI])",
        "",
        _md_table(summary_table(summary)),
        "",
        f"Intervals: {summary['notes']['ci']}. Exact match: {summary['notes']['exact_match']}; ROUGE-L: "
        f"{summary['notes']['rouge_l']}. Latency: {summary['notes'].get('latency', 'seconds per answer')}.",
    ]
    if readability_table(summary):
        parts += ["", "## Readable answers", "", _md_table(readability_table(summary))]
    if summary["wins"]:
        parts += ["", "## Who wins where (char F1, per question)", ""]
        for pair, counts in summary["wins"].items():
            parts.append("- " + ", ".join(f"{SOURCE_LABELS.get(k, (k,))[0]}: {n}" for k, n in counts.items()))
    parts += ["", "## Cost", ""] + [f"- {line}" for line in _cost_lines(summary)]
    if summary["warnings"]:
        parts += ["", "## Warnings", ""] + [f"- {w}" for w in summary["warnings"]]
    if before_after_table(summary):
        parts += ["", f"## Before and after training ({summary['before_after']['metric'].replace('_', ' ')})", "",
                  _md_table(before_after_table(summary))]
    if verdict_lines(summary):
        parts += ["", "## Verdict", ""] + verdict_lines(summary)
    parts += ["", "## Answers", ""]
    parts.append(_md_table([{"row": r["row"], "source": r["source"], "question": r["question"], "reference": r["reference"],
                             "answer": r["answer"], "char F1": r["char_f1"]} for r in results]))
    return "\n".join(parts) + "\n"


def _templates(summary: Mapping[str, Any]) -> str:
    """The prompt templates, as the header line names them: the base sources' and the fine-tuned sources'."""
    base, ft = summary.get("base_template"), summary.get("template")
    if base is not None and not {"ft", "ft_rag"} & set(summary["sources"]):
        return f"template `{base}`"
    if base is None or base == ft or not {"base", "rag"} & set(summary["sources"]):
        return f"template `{ft}`"
    return f"templates: base `{base}`, fine-tuned `{ft}`"


def _svg_chart(data: Sequence[Mapping[str, Any]]) -> str:
    """A small grouped bar chart with CI whiskers, as inline SVG (the HTML report must work offline)."""
    if not data:
        return ""
    metrics = list(dict.fromkeys(d["metric"] for d in data))
    sources = list(dict.fromkeys(d["source"] for d in data))
    palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"]
    bw, gap, h, top, left = 16, 18, 180, 20, 40
    group_w = bw * len(sources) + gap
    width = left + group_w * len(metrics) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h + top + 60}" font-family="sans-serif" font-size="11">']
    for tick in (0, 0.5, 1):
        y = top + h * (1 - tick)
        out.append(f'<line x1="{left}" x2="{width}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="4" y="{y + 4}">{tick}</text>')
    for mi, m in enumerate(metrics):
        x0 = left + mi * group_w
        for si, s in enumerate(sources):
            d = next((d for d in data if d["metric"] == m and d["source"] == s), None)
            if d is None:
                continue
            x = x0 + si * bw
            y = top + h * (1 - d["mean"])
            out.append(f'<rect x="{x}" y="{y:.1f}" width="{bw - 2}" height="{h * d["mean"]:.1f}" fill="{palette[si % 6]}">'
                       f'<title>{html.escape(s)} · {html.escape(m)}: {d["mean"]:.3f}</title></rect>')
            if d["hi"] is not None and d["lo"] is not None and d["hi"] > d["lo"]:
                cx = x + (bw - 2) / 2
                out.append(f'<line x1="{cx}" x2="{cx}" y1="{top + h * (1 - d["hi"]):.1f}" y2="{top + h * (1 - d["lo"]):.1f}" stroke="#333"/>')
        out.append(f'<text x="{x0}" y="{top + h + 14}">{html.escape(m)}</text>')
    for si, s in enumerate(sources):
        out.append(f'<rect x="{left + si * 130}" y="{top + h + 30}" width="10" height="10" fill="{palette[si % 6]}"/>'
                   f'<text x="{left + si * 130 + 14}" y="{top + h + 39}">{html.escape(s)}</text>')
    out.append("</svg>")
    return "".join(out)


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('–' if r.get(c) is None else str(r.get(c)))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> str:
    """A standalone HTML report (no scripts, no external files); every answer is escaped text."""
    cfg = summary["config"]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;"
             "text-align:left}th{background:#f4f4f4}")
    wins = "".join("<li>" + html.escape(", ".join(f"{SOURCE_LABELS.get(k, (k,))[0]}: {n}" for k, n in c.items())) + "</li>"
                   for c in summary["wins"].values())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation {html.escape(cfg['dataset'])}</title>"
        f"<style>{style}</style></head><body>"
        f"<h1>Evaluation: {html.escape(cfg['dataset'])} ({html.escape(cfg['split'])} split)</h1>"
        f"<p>{summary['rows']} of {summary['rows_total']} rows{' (cancelled)' if summary['cancelled'] else ''}; run "
        f"<code>{html.escape(cfg['run_id'] or '-')}</code>; {html.escape(_templates(summary))}; "
        f"collection <code>{html.escape(cfg['collection'] or '-')}</code>; {html.escape(summary['created'])}.</p>"
        f"<h2>Scores</h2>{_html_table(summary_table(summary))}<p>{html.escape(summary['notes']['ci'])}</p>"
        f"{_svg_chart(chart_data(summary))}"
        + (f"<h2>Readable answers</h2>{_html_table(readability_table(summary))}" if readability_table(summary) else "")
        + (f"<h2>Who wins where (char F1, per question)</h2><ul>{wins}</ul>" if wins else "")
        + "<h2>Cost</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in _cost_lines(summary)) + "</ul>"
        + ("<h2>Warnings</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in summary["warnings"]) + "</ul>"
           if summary["warnings"] else "")
        + (f"<h2>Before and after training</h2>{_html_table(before_after_table(summary))}" if before_after_table(summary) else "")
        + ("<h2>Verdict</h2>" + "".join(f"<p>{html.escape(line)}</p>" for line in verdict_lines(summary))
           if verdict_lines(summary) else "")
        + "<h2>Answers</h2>"
        + _html_table([{"row": r["row"], "source": r["source"], "question": r["question"], "reference": r["reference"],
                        "answer": r["answer"], "char F1": r["char_f1"], "ROUGE-L": r["rouge_l"]} for r in results])
        + "</body></html>\n"
    )


def write_report(folder: str | Path, summary: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    """summary.json, report.md and report.html (results.csv is written row by row during the run)."""
    folder = Path(folder)
    paths = {"summary": folder / SUMMARY_FILE, "markdown": folder / REPORT_MD, "html": folder / REPORT_HTML,
             "csv": folder / RESULTS_FILE}
    # The reports first and summary.json last, each atomically: a page that shows an evaluation once its summary
    # exists never meets a missing or half-written report.
    write_text(paths["markdown"], render_markdown(summary, results))
    write_text(paths["html"], render_html(summary, results))
    write_json(paths["summary"], summary)
    return paths
