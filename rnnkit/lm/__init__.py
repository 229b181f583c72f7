"""Language models: train text generators and sample from them.

`word` is the classic word-level next-word recipe (`train_word_model`,
`WordRun.load(...).generate(...)`); `sampling` holds the decoding utilities
(temperature, top-k, top-p, greedy, beam search) over next-token logits that
every engine shares; `run` is the run folder (config, tokenizer, model,
per-epoch metrics) that training writes and resumes from.
"""
from .run import EpochCheckpoint, RunFolder, RunFolderError
from .sampling import beam_search, check_sampling_args, filter_logits, sample_next, sample_tokens, select_rows
from .word import (
    CELLS, PRESETS, Generation, WordConfig, WordDataset, WordRun, build_word_dataset, build_word_model,
    generate_words, moroney_sonnets, train_word_model,
)

__all__ = [
    "CELLS", "PRESETS", "EpochCheckpoint", "Generation", "RunFolder", "RunFolderError", "WordConfig",
    "WordDataset", "WordRun", "beam_search", "build_word_dataset", "build_word_model", "check_sampling_args",
    "filter_logits", "generate_words", "moroney_sonnets", "sample_next", "sample_tokens", "select_rows",
    "train_word_model",
]
