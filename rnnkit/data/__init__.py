"""Text corpora: named downloadable corpora (checksummed), a built-in offline corpus, local files.

`load_corpus(name_or_path, split=None, errors="strict")` returns a corpus as a
string; `list_corpora()` names the known corpora and `corpus_info(name)` gives
their metadata (splits, URLs, sizes, SHA-256). Pure Python, no torch.
"""
from .corpora import cache_dir, corpus_key, decode_text, load_corpus
from .errors import CorpusError
from .registry import CORPORA, CorpusFile, CorpusInfo, corpus_info, list_corpora
from .stdlib import STDLIB_MODULES, stdlib_files

__all__ = [
    "CORPORA",
    "CorpusError",
    "CorpusFile",
    "CorpusInfo",
    "STDLIB_MODULES",
    "cache_dir",
    "corpus_info",
    "decode_text",
    "list_corpora",
    "load_corpus",
    "corpus_key",
    "stdlib_files",
]
