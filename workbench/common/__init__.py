"""The small common base every stage stands on: configuration, errors, bilingual texts, progress, files.

Modules:
    config      `BaseConfig` (the dataclass pattern of every stage, `setting(help=...)`), `Workspace`, PROJECT_DIR
    errors      the `WorkbenchError` hierarchy (`ConfigError`, `NotFoundError`, `DocumentError`, ...), `error_text`
    texts       `Text("English", "한국어")`, `pick`, `both`, `state_text`
    progress    `Progress`, the one progress-report type, and `no_progress`
    runfiles    the files job folders are made of: `write_json`, `read_json`, `update_json`, `append_jsonl`, `locked`
    textcodec   bytes -> text with one encoding detector: `decode`, `decode_text`

Nothing here imports another stage; import the module you need (`from workbench.common.errors import ConfigError`).
"""
