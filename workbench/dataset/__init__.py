"""The dataset stage: Alpaca rows (instruction / input / output) imported, checked, generated, split and shared.

Modules:
    alpaca         the dataset store: `SplitConfig`, `import_dataset`, `split_dataset`, `load_split`, `list_datasets`
    alpaca_io      reading sources and mapping their columns (`DatasetConfig`, `read_source`, `resolve_column_map`)
    alpaca_checks  row checks before a split (`validate_rows`, `find_duplicates`, `fix_rows`)
    splitfiles     a split on disk, published with its meta.json in one step (`write_split`, `split_path`)
    synth          rows generated from knowledge-base chunks by an LLM (`SynthConfig`, `generate_dataset`)
    synth_jobs     generation as a job on the runner (`start_generation`, `generation_status`)
    hub            Hugging Face Hub uploads (`push_dataset`, `push_folder`)
"""
