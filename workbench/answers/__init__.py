"""Answers: generation from a base model and its adapters, and the one path every answer takes.

Modules:
    inference  `GenerationConfig`, `Generator`, `load_generator`, `load_generator_for_run` (streamed or batched)
    answer     the answer sources of the comparison (`available_sources`, `prepare`, `ask`, `AnswerSetup`,
               `EndpointAnswerer` for the api sources)
"""
