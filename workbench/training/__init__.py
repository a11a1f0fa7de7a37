"""The training stage: LoRA fine-tuning runs, from their config to the merged model.

Modules:
    finetune        `TrainConfig` and the "auto" settings resolved for a device (`resolve_settings`)
    trainer         LoRA + SFT on one run directory (`train_run`, `merge_adapter`)
    train_progress  the TrainerCallback that writes metrics.jsonl and heeds cancel (`make_progress_callback`,
                    `CancelFlag`, `collect_metrics`)
    train_context   RAG-aware fine-tuning: each row's retrieved context (`prepare_context`, `read_context`)
    runs            training runs as child processes (`RunInfo`, `create_run`, `start_training`, `cancel_run`)

torch, transformers, peft and trl load inside the functions that train; import the module you need.
"""
