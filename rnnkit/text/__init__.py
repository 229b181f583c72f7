"""Text preprocessing: Keras-2-compatible tokenizer, padding, skip-grams, n-gram datasets.

Pure Python + NumPy (no torch). `Tokenizer`, `tokenizer_from_json`,
`text_to_word_sequence`, `one_hot`, `hashing_trick`, `pad_sequences`,
`skipgrams` and `make_sampling_table` behave like their
``keras.preprocessing`` (Keras 2 / ``tf_keras``) namesakes; tokenizer JSON
files interoperate. `ngram_sequences` / `split_xy` implement the next-word
n-gram recipe, and `ngram_arrays` / `ngram_training_set` build the same
arrays for large corpora without lists or one-hot labels.
"""
from .streaming import flatten_sequences, ngram_arrays, ngram_training_set
from .ngrams import ngram_sequences, split_xy
from .sequence import pad_sequences
from .skipgrams import make_sampling_table, skipgrams
from .tokenizer import Tokenizer, tokenizer_from_json
from .words import DEFAULT_FILTERS, hashing_trick, one_hot, text_to_word_sequence

__all__ = [
    "DEFAULT_FILTERS",
    "Tokenizer",
    "flatten_sequences",
    "hashing_trick",
    "make_sampling_table",
    "ngram_arrays",
    "ngram_sequences",
    "ngram_training_set",
    "one_hot",
    "pad_sequences",
    "skipgrams",
    "split_xy",
    "text_to_word_sequence",
    "tokenizer_from_json",
]
