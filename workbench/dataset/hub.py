"""Hugging Face Hub uploads: a dataset's train / test splits with a dataset card, and any folder
(an adapter, a merged model) for the fine-tune stage.

Uploads always go through a local folder first: `export_dataset` writes exactly the files that
`push_dataset` then uploads, so the user can inspect them, and they stay when the Hub is offline
or refuses the token. Tokens come from the caller, `HF_TOKEN` or a stored `huggingface-cli login`;
they are never written anywhere or put into a message.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError, NotFoundError, OfflineError
from workbench.common.progress import Progress
from workbench.common.texts import Text, pick

RepoType = Literal["model", "dataset", "space"]
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
EXPORT_DIR = "export"


def resolve_token(token: str | None = None) -> str | None:
    """The token passed in, else HF_TOKEN, else a stored `huggingface-cli login` token, else None."""
    if token:
        return token
    from huggingface_hub import get_token

    return get_token()


def check_repo_id(repo_id: str) -> str:
    if not isinstance(repo_id, str) or not _REPO_RE.match(repo_id) or ".." in repo_id:
        raise ConfigError(f"Repository {repo_id!r} is not of the form USER/NAME (letters, digits, '.', '_', '-'). Example: my-name/shop-qa.",
                          ko=f"저장소 {repo_id!r}이(가) USER/NAME 형식(영문자, 숫자, '.', '_', '-')이 아닙니다. "
                             f"예: my-name/shop-qa.")
    return repo_id


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def push_folder(
    folder: str | Path,
    repo_id: str,
    repo_type: RepoType = "model",
    private: bool = False,
    token: str | None = None,
    progress: Progress | None = None,
    *,
    commit_message: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Create `repo_id` if needed (public or private) and upload every file of `folder` to it.

    Args:
        folder: a local folder (an export, an adapter, a merged model).
        repo_type: "model" for adapters and merged models, "dataset" for datasets.
        token: a write token; default HF_TOKEN or the stored login.
        endpoint: another Hub (a mirror or self-hosted); default huggingface.co / HF_ENDPOINT.

    Returns:
        The repository URL.

    Raises:
        NotFoundError: the folder does not exist or is empty.
        ConfigError: a bad repository id or type.
        OfflineError: the Hub is unreachable (or HF_HUB_OFFLINE=1), there is no token, or the Hub refused it.
            The local folder is never touched.
    """
    folder = Path(folder)
    token = _upload_checks(folder, repo_id, repo_type, token, endpoint)
    report = progress or (lambda m, f: None)
    kept = f"The local files in {folder} are kept."
    kept_ko = f"{folder}의 로컬 파일은 그대로 둡니다."

    import httpx
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=endpoint, token=token)
    files = [p for p in folder.rglob("*") if p.is_file()]
    size_mb = sum(p.stat().st_size for p in files) / 2**20
    try:
        report(Text(f"Creating {repo_type} repository {repo_id}" + (" (private)" if private else ""),
                    f"{repo_type} 저장소 {repo_id} 만드는 중" + (" (비공개)" if private else "")), 0.1)
        url = str(api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True))
        report(Text(f"Uploading {len(files)} files ({size_mb:.1f} MiB)",
                    f"파일 {len(files)}개 올리는 중 ({size_mb:.1f} MiB)"), 0.3)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                          commit_message=commit_message or f"Upload {folder.name} from the RAG-vs-Fine-Tune Workbench")
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise OfflineError(
                f"The Hub refused the token for {repo_id} (HTTP {status}). Use a token with write access to that "
                f"namespace (https://huggingface.co/settings/tokens). {kept}",
                ko=f"Hub가 {repo_id}에 대한 토큰을 거부했습니다 (HTTP {status}). 그 네임스페이스에 쓰기 권한이 "
                   f"있는 토큰을 쓰세요 (https://huggingface.co/settings/tokens). {kept_ko}"
            ) from exc
        raise OfflineError(f"The Hub answered HTTP {status} for {repo_id}: {str(exc).splitlines()[0]}. {kept}",
                           ko=f"Hub가 {repo_id}에 HTTP {status}로 답했습니다: {str(exc).splitlines()[0]}. {kept_ko}") from exc
    except (httpx.HTTPError, OSError) as exc:  # includes OfflineModeIsEnabled (a ConnectionError)
        raise OfflineError(f"Cannot reach the Hub to upload {repo_id}: {exc.__class__.__name__}. {kept}",
                           ko=f"{repo_id}을(를) 올리려는데 Hub에 연결할 수 없습니다: {exc.__class__.__name__}. "
                              f"{kept_ko}") from exc
    report(Text(f"Uploaded to {url}",
                f"{url}에 올렸습니다"), 1.0)
    return url


def _upload_checks(folder: Path, repo_id: str, repo_type: str, token: str | None, endpoint: str | None) -> str:
    """What `push_folder` checks before it touches the network; returns the token to use."""
    if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
        raise NotFoundError(f"Folder {folder} does not exist or is empty: nothing to upload.",
                            ko=f"폴더 {folder}이(가) 없거나 비어 있습니다: 올릴 것이 없습니다.")
    check_repo_id(repo_id)
    if repo_type not in ("model", "dataset", "space"):
        raise ConfigError(f"repo_type = {repo_type!r} is not one of 'model', 'dataset', 'space'.",
                          ko=f"repo_type = {repo_type!r}은(는) 'model', 'dataset', 'space' 중 하나가 아닙니다.")
    kept = f"The local files in {folder} are kept."
    kept_ko = f"{folder}의 로컬 파일은 그대로 둡니다."
    if endpoint is None:
        from workbench.models.registry import hub_reachable

        reachable, detail = hub_reachable()
        if not reachable:
            raise OfflineError(f"Cannot upload to {repo_id}: the Hugging Face Hub is {detail}. {kept}",
                               ko=f"{repo_id}에 올릴 수 없습니다: Hugging Face Hub 상태: {pick(detail, 'ko')}. {kept_ko}")
    elif _offline_env():
        raise OfflineError(f"Cannot upload to {repo_id}: HF_HUB_OFFLINE=1 is set. Unset it to upload. {kept}",
                           ko=f"{repo_id}에 올릴 수 없습니다: HF_HUB_OFFLINE=1이 설정되어 있습니다. 올리려면 "
                              f"해제하세요. {kept_ko}")
    token = resolve_token(token)
    if not token:
        raise OfflineError(f"Cannot upload to {repo_id}: no Hugging Face token. Set HF_TOKEN or paste a write token. {kept}",
                           ko=f"{repo_id}에 올릴 수 없습니다: Hugging Face 토큰이 없습니다. HF_TOKEN을 설정하거나 "
                              f"쓰기 토큰을 붙여 넣으세요. {kept_ko}")
    return token


# --- datasets -----------------------------------------------------------------------------------


def _languages(rows: list[dict[str, Any]]) -> list[str]:
    text = " ".join(str(r.get("instruction", "")) + " " + str(r.get("output", "")) for r in rows[:500])
    langs = []
    if re.search(r"[\uac00-\ud7a3]", text):
        langs.append("ko")
    if re.search(r"[A-Za-z]{3,}", text):
        langs.append("en")
    return langs or ["en"]


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


def dataset_card(name: str, info: Any, train: list[dict[str, Any]], test: list[dict[str, Any]], columns: list[str],
                 repo_id: str = "") -> str:
    """README.md for the Hub: YAML header (splits, languages, size) and schema, sizes, split recipe, source."""
    split = info.split or {}
    src = info.source or {}
    langs = _languages(train + test)
    header = (
        "---\n"
        f"language: [{', '.join(langs)}]\n"
        "task_categories: [text-generation, question-answering]\n"
        f"size_categories: [{_size_category(len(train) + len(test))}]\n"
        "tags: [alpaca, instruction-tuning, rag-vs-fine-tune-workbench]\n"
        "configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: train.csv\n  - split: test\n    path: test.csv\n"
        "---\n\n"
    )
    described = {
        "instruction": "the question or task (the prompt's `### Instruction:`)",
        "input": "optional context (empty for plain questions)",
        "output": "the answer the model should learn",
        "chunk_id": "id of the knowledge-base chunk the row was generated from",
        "source": "document the row comes from",
    }
    schema = "\n".join(f"| `{c}` | string | {described.get(c, 'kept from the source data')} |" for c in columns)
    if src.get("kind") == "generated":
        origin = (f"Generated from the knowledge-base collection `{src.get('collection', '')}` with `{src.get('model', '')}` "
                  f"({src.get('provider', '')}); every row keeps the id of its chunk.")
    elif src.get("kind") == "hub":
        origin = f"Imported from the Hub dataset `{src.get('repo', '')}` ({', '.join(src.get('data_files', [])) or 'all files'})."
    else:
        origin = f"Imported from a {src.get('kind', 'local')} file `{Path(str(src.get('path', ''))).name}`."
    cmap = ", ".join(f"`{v}` -> `{k}`" for k, v in (info.column_map or {}).items() if v and v != k)
    val = split.get("sizes", {}).get("validation", 0)
    return header + f"""# {name}

An Alpaca-format instruction dataset (instruction / input / output) made with the RAG-vs-Fine-Tune Workbench.

## Schema

| column | type | description |
| --- | --- | --- |
{schema}

## Splits

| split | rows |
| --- | --- |
| train | {len(train)} |
| test | {len(test)} |

Made with scikit-learn: `train_test_split(rows, test_size={split.get('test_size')}, random_state={split.get('seed')})` on
{split.get('raw_rows', len(train) + len(test))} rows; `train.csv` and `test.csv` are its two outputs, in its order.
The validation rows used during training ({val}) come from
`train_test_split(train, test_size={split.get('val_size')}, random_state={split.get('seed')})`.
Split made {split.get('created', '')}; leakage check: {split.get('leakage', 0)} test questions nearly repeat a training question
(threshold {split.get('leakage_threshold', '')}).

## Source

{origin}{(' Column map: ' + cmap + '.') if cmap else ''}

## Loading

```python
from datasets import load_dataset

train = load_dataset("{repo_id or 'USER/REPO'}", data_files="train.csv", split="train")
test = load_dataset("{repo_id or 'USER/REPO'}", data_files="test.csv", split="train")
```
"""


def export_dataset(name: str, workspace: Workspace | None = None, folder: str | Path | None = None, repo_id: str = "") -> Path:
    """Write the files of a Hub upload into `folder` (default `datasets/<name>/export/`): train.csv (the 9:1
    train part, validation rows included, in scikit-learn's order), test.csv and README.md (the dataset card).

    Raises:
        NotFoundError: the dataset does not exist or has not been split.
    """
    import pandas as pd

    from workbench.dataset.alpaca import dataset_info, load_splits, row_columns
    from workbench.dataset.splitfiles import unsplit_train

    info = dataset_info(name, workspace)
    if not info.split:
        raise NotFoundError(f"Dataset {name!r} has not been split yet. Split it first: `python -m workbench dataset split {name}`.",
                            ko=f"데이터셋 {name!r}은(는) 아직 분할되지 않았습니다. 먼저 분할하세요: `python -m "
                               f"workbench dataset split {name}`.")
    out = Path(folder) if folder else info.path / EXPORT_DIR
    parts = load_splits(name, workspace=workspace)  # read together: never the train of one split and the test of another
    train, test = unsplit_train(parts["train"], parts["validation"], parts["meta"]), parts["test"]
    columns = row_columns(train + test)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pd.DataFrame(train, columns=columns).to_csv(out / "train.csv", index=False, encoding="utf-8")
    pd.DataFrame(test, columns=columns).to_csv(out / "test.csv", index=False, encoding="utf-8")
    (out / "README.md").write_text(dataset_card(name, info, train, test, columns, repo_id), encoding="utf-8")
    return out


def push_dataset(
    name: str,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    workspace: Workspace | None = None,
    progress: Progress | None = None,
    *,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Export dataset `name` (train / test / card) and upload that folder as a Hub dataset repository.

    Returns {"url", "folder", "files"}. The export is written before any network access and kept
    whatever happens.

    Raises:
        NotFoundError: the dataset does not exist or is not split.
        OfflineError: see `push_folder`; the message names the kept export folder.
    """
    from workbench.common.runfiles import now_iso
    from workbench.dataset.alpaca import update_meta

    check_repo_id(repo_id)
    report = progress or (lambda m, f: None)
    report(Text("Writing the export folder",
                "내보낼 폴더 쓰는 중"), 0.05)
    folder = export_dataset(name, workspace, repo_id=repo_id)
    url = push_folder(folder, repo_id, "dataset", private, token,
                      lambda m, f: report(m, 0.1 + 0.9 * f), commit_message=f"Upload dataset {name}", endpoint=endpoint)
    update_meta(name, workspace, pushes={"repo": repo_id, "private": private, "url": url, "at": now_iso()})
    return {"url": url, "folder": str(folder), "files": sorted(p.name for p in folder.iterdir())}


__all__ = ["check_repo_id", "dataset_card", "export_dataset", "push_dataset", "push_folder", "resolve_token"]
