"""The workshop's "start here" path: five steps, each done, next or later from what the workspace holds.

Read from the workspace's files only (no Chroma, no torch), so the home page can show it at once:

1. ingest      a knowledge-base collection exists
2. dataset     a dataset is imported and split (its meta.json holds a split record)
3. train       a training run completed with an adapter
4. compare     an evaluation of some source finished (its summary.json exists)
5. freshness   the freshness demo changed a fact of a collection (its edited copies, or its measurement, exist)

The first step not done is "next"; the steps after it are "later", even when some of them are done.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from workbench.common.config import Workspace
from workbench.common.runfiles import read_json
from workbench.common.texts import Text

StepState = Literal["done", "next", "later"]


@dataclasses.dataclass(frozen=True)
class GuideStep:
    key: str
    title: Text
    hint: Text  # what to do on the page
    page: str  # the app page (app_pages/...) the step happens on
    state: StepState = "later"


STEPS: tuple[GuideStep, ...] = (
    GuideStep("ingest", Text("Ingest the sample shop", "예제 상점 문서 넣기"),
              Text("Knowledge base: one click puts the sample shop's documents into a Chroma collection.",
                   "지식 베이스: 한 번 누르면 예제 상점 문서가 Chroma 컬렉션에 들어갑니다."),
              "app_pages/knowledge_base.py"),
    GuideStep("dataset", Text("Import and split a dataset", "데이터셋 가져오기와 분할"),
              Text("Dataset: import the shop's question-answer rows, then split them into train and test.",
                   "데이터셋: 상점의 질문-답변 행을 가져와 학습과 테스트로 나눕니다."),
              "app_pages/dataset.py"),
    GuideStep("train", Text("Fine-tune a LoRA adapter", "LoRA 어댑터 파인튜닝"),
              Text("Fine-tune: start a run on the split dataset and watch its loss.",
                   "파인튜닝: 분할한 데이터셋으로 실행을 시작하고 손실을 지켜봅니다."),
              "app_pages/finetune.py"),
    GuideStep("compare", Text("Compare the four answers and evaluate", "네 가지 답변 비교와 평가"),
              Text("Compare: base, fine-tuned, RAG and both answer the same question; a batch evaluation scores them.",
                   "비교: 기본 모델, 파인튜닝, RAG, 둘 다가 같은 질문에 답하고, 일괄 평가가 점수를 매깁니다."),
              "app_pages/compare.py"),
    GuideStep("freshness", Text("Change a fact: knowledge freshness", "사실 바꾸기: 지식 최신성"),
              Text("Compare, Knowledge freshness: change a fact, re-ingest, and see who follows.",
                   "비교의 지식 최신성: 사실을 바꾸고 다시 넣은 뒤 누가 따라오는지 봅니다."),
              "app_pages/compare.py"),
)


def _split_record(meta_path: Path) -> bool:
    """Whether a dataset's meta.json holds a split record (its files are written before the record names them)."""
    meta = read_json(meta_path, {})
    return isinstance(meta, dict) and bool(meta.get("split"))


def workspace_progress(workspace: Workspace, collections: Sequence[str] = ()) -> dict[str, bool]:
    """Which steps the workspace shows done. `collections`: the names the caller already listed (the home page has
    them); without them a collection's lexical index folder (`vectorstore/<name>.bm25/`, written with every
    collection, also for a Chroma server) counts, which needs no Chroma client."""
    ws = workspace
    has_collection = bool(collections) or (ws.vectorstore.is_dir() and any(
        p.is_dir() for pattern in ("*.bm25", "server-*/*.bm25") for p in ws.vectorstore.glob(pattern)))
    split = ws.datasets.is_dir() and any(_split_record(d / "meta.json") for d in ws.datasets.iterdir() if d.is_dir())
    trained = ws.runs.is_dir() and any(_completed(d) for d in ws.runs.iterdir() if d.is_dir())
    evaluated = any(any(root.glob("*/summary.json")) for root in [ws.root / "evals", *ws.runs.glob("*/eval")]
                    if root.is_dir())
    fresh = (ws.root / "freshness").is_dir() and any(p.is_file() for p in (ws.root / "freshness").rglob("*"))
    return {"ingest": has_collection, "dataset": split, "train": trained, "compare": evaluated, "freshness": fresh}


def _completed(run_dir) -> bool:
    try:
        status = json.loads((run_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(status, dict) and status.get("state") == "completed" and (run_dir / "adapter" / "adapter_config.json").is_file()


def guide_steps(done: Mapping[str, bool]) -> list[GuideStep]:
    """The five steps with their state: done ones "done" up to the first one not done ("next"), then "later"."""
    out, seen_next = [], False
    for step in STEPS:
        if not seen_next and done.get(step.key):
            state: StepState = "done"
        elif not seen_next:
            state, seen_next = "next", True
        else:
            state = "later"
        out.append(dataclasses.replace(step, state=state))
    return out
