"""Word-level text generation: the classic next-word n-gram recipe, trained and sampled for real.

The recipe (as in the TensorFlow course and the seed notes): lower-case the
corpus and split it into lines; fit a `Tokenizer`; turn every line into all
its prefixes of two or more words, pre-padded to the longest line; the last id
of each is the label, the ids before it the input. A model reads the window of
`max_len - 1` ids and predicts the next word as a softmax over the vocabulary.
Labels stay sparse integers (never one-hot: on the sonnets that alone would be
190 MiB), and the loss is computed from the logits.

The model is a preset (`PRESETS`: ``moroney-sonnets``, the course's lab
model, and ``moroney-sonnets-graded``, its graded assignment model) or
Embedding -> a stack of recurrent layers (`CELLS`: LSTM, GRU, SimpleRNN,
MinGRU, MinLSTM; optionally bidirectional) -> softmax.

Generation repeats: encode the text so far, keep its last window of ids
(pre-padded), pick the next word from the model's output.

    >>> run = train_word_model("runs/sonnets", WordConfig(corpus="sonnets", preset="moroney-sonnets", epochs=50))
    >>> print(WordRun.load("runs/sonnets").generate("Shall I compare thee", words=20, temperature=0.8, seed=1).text)
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import limits
from ..layers import GRU, LSTM, Bidirectional, Dense, Dropout, Embedding, MinGRU, MinLSTM, SimpleRNN
from ..models import Sequential
from ..regularizers import l2
from ..text import Tokenizer, ngram_training_set, pad_sequences, text_to_word_sequence
from ..training.loop import validation_cut
from ..training.optimizers import Adam
from .run import EpochCheckpoint, RunFolder, RunFolderError, warn
from .sampling import beam_search, check_sampling_args, sample_tokens

__all__ = [
    "CELLS", "PRESETS", "Preset", "WordConfig", "WordDataset", "Generation", "WordRun",
    "build_word_dataset", "build_word_model", "canonical_corpus", "moroney_sonnets", "moroney_sonnets_graded",
    "generate_words", "train_word_model",
]

#: ``--cell`` names: Keras's three cells and the parallel-scan cells of Feng et al. (2024).
CELLS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN, "mingru": MinGRU, "minlstm": MinLSTM}
DEFAULT_EPOCHS = 10
LEVEL = "word"


# ------------------------------------------------------------------ presets
def moroney_sonnets(total_words: int, max_len: int) -> Sequential:
    """The course's lab model for Shakespeare's sonnets (Laurence Moroney, NLP in TensorFlow, C3W4).

    ``Embedding(total_words, 100) -> Bidirectional(LSTM(150, return_sequences=True))
    -> Dropout(0.2) -> LSTM(100) -> Dense(total_words // 2, relu, l2(0.01))
    -> Dense(total_words, softmax)``; the lab trains it 100 epochs with Adam.
    `summary()` matches tf.keras's: on the sonnets (3,211 words, lines of up to
    11 words) it has 6,101,671 parameters, 5,156,866 of them in the output layer.

    Args:
        total_words: Vocabulary size including padding id 0 (``len(word_index) + 1``).
        max_len: Longest n-gram, label included; the input window is ``max_len - 1``.
    """
    return Sequential([
        Embedding(total_words, 100, input_length=max_len - 1),
        Bidirectional(LSTM(150, return_sequences=True)),
        Dropout(0.2),
        LSTM(100),
        Dense(total_words // 2, activation="relu", kernel_regularizer=l2(0.01)),
        Dense(total_words, activation="softmax"),
    ])


def moroney_sonnets_graded(total_words: int, max_len: int) -> Sequential:
    """The course's graded model for the sonnets (C3W4 assignment "Predicting the next word").

    ``Embedding(total_words, 100) -> Bidirectional(LSTM(150)) -> Dense(total_words,
    softmax)``, Adam with Keras's defaults, 50 epochs of batch 32; the
    assignment passes at 80% training accuracy. `summary()` matches tf.keras's:
    on the sonnets (3,211 words, lines of up to 11 words) it has 1,588,811
    parameters, 966,511 of them in the output layer.

    Args: as `moroney_sonnets`.
    """
    return Sequential([
        Embedding(total_words, 100, input_length=max_len - 1),
        Bidirectional(LSTM(150)),
        Dense(total_words, activation="softmax"),
    ])


@dataclass(frozen=True)
class Preset:
    """A fixed architecture and the epochs its source trains it for (`--epochs` overrides them).

    `build(total_words, max_len)` returns the uncompiled model; `summary` is
    the line `rnnkit train --help` shows. Every preset trains with Adam
    (Keras's defaults) on batches of 32 unless told otherwise.
    """

    build: Callable[[int, int], Sequential]
    epochs: int
    summary: str


PRESETS: dict[str, Preset] = {
    "moroney-sonnets": Preset(moroney_sonnets, 100, "the course lab model: Embedding 100, BiLSTM 150 (sequences), "
                              "Dropout 0.2, LSTM 100, Dense vocab/2 relu l2(0.01), Dense vocab softmax; 100 epochs"),
    "moroney-sonnets-graded": Preset(moroney_sonnets_graded, 50, "the course's graded model: Embedding 100, "
                                     "BiLSTM 150, Dense vocab softmax; 50 epochs (passes at 80 percent training accuracy)"),
}
ARCHITECTURE_FIELDS = ("cell", "bidirectional", "embedding", "hidden", "layers", "dropout")


# ------------------------------------------------------------------ config
@dataclass
class WordConfig:
    """Everything a word-level run is made of; saved as the run's ``config.json``.

    Data: `corpus` (a name from `rnnkit.data.list_corpora()`, a file or a
    folder of .txt files), `split` (for corpora with splits), `decode_errors`
    (`"strict"` or `"replace"`), `max_len` (n-gram length including the label;
    `None` = the longest line, as the recipe), `num_words` (keep only the most
    frequent `num_words - 1` words), `oov_token` (a token for unknown words;
    `None` drops them, as the recipe).

    Model: `preset` (a name from `PRESETS`: ``"moroney-sonnets"``, the course's
    lab model, or ``"moroney-sonnets-graded"``, its graded assignment model;
    then the architecture fields below must stay at their defaults), else
    `cell` (a key of `CELLS`: ``"lstm"``, ``"gru"``, ``"rnn"``, ``"mingru"``,
    ``"minlstm"``), `bidirectional`, `embedding` (vector width), `hidden`
    (units per recurrent layer), `layers` (stacked recurrent layers),
    `dropout` (after each recurrent layer).

    Training: `epochs` (total; `None` = the preset's, else 10), `batch_size`,
    `learning_rate` (Adam), `validation_split` (the last fraction of the
    n-grams, as Keras), `seed`.
    """

    corpus: str = "sonnets"
    split: str | None = None
    decode_errors: str = "strict"
    max_len: int | None = None
    num_words: int | None = None
    oov_token: str | None = None
    preset: str | None = None
    cell: str = "lstm"
    bidirectional: bool = False
    embedding: int = 100
    hidden: int = 150
    layers: int = 1
    dropout: float = 0.0
    epochs: int | None = None
    batch_size: int = 32
    learning_rate: float = 0.001
    validation_split: float = 0.0
    seed: int = 0

    def validate(self) -> "WordConfig":
        """Returns self; raises a one-line `ValueError` naming the first bad option."""
        positive = {"embedding": self.embedding, "hidden": self.hidden, "layers": self.layers,
                    "epochs": self.resolved_epochs(), "batch_size": self.batch_size}
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; expected one of {', '.join(CELLS)}")
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise ValueError(f"unknown preset {self.preset!r}; known presets: {', '.join(PRESETS)}")
            changed = [f.name for f in fields(self) if f.name in ARCHITECTURE_FIELDS
                       and getattr(self, f.name) != f.default]
            if changed:
                raise ValueError(f"preset {self.preset!r} fixes the architecture; drop the "
                                 f"option(s) {', '.join(changed)} or the preset")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {self.validation_split!r}")
        limits.positive("learning_rate", self.learning_rate)
        limits.seed("seed", self.seed)
        if self.max_len is not None and self.max_len < 2:
            raise ValueError(f"max_len must be >= 2 (one input word and the word to predict), got {self.max_len!r}")
        if self.num_words is not None and self.num_words < 2:
            raise ValueError(f"num_words must be >= 2, got {self.num_words!r}")
        return self

    def resolved_epochs(self) -> int:
        """`epochs`, or when it is `None` the preset's (10 without a preset)."""
        if self.epochs is not None:
            return self.epochs
        return PRESETS[self.preset].epochs if self.preset in PRESETS else DEFAULT_EPOCHS

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "WordConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ------------------------------------------------------------------- data
@dataclass
class WordDataset:
    """The recipe's training arrays: `xs` `(samples, window)` ids, `labels` `(samples,)` next-word ids."""

    tokenizer: Tokenizer
    xs: np.ndarray
    labels: np.ndarray
    max_len: int

    @property
    def window(self) -> int:
        return self.max_len - 1

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


def corpus_lines(text: str) -> list[str]:
    """The recipe's documents: the lower-cased corpus split at newlines."""
    return text.lower().split("\n")


def build_word_dataset(text: str, tokenizer: Tokenizer | None = None, max_len: int | None = None,
                       num_words: int | None = None, oov_token: str | None = None,
                       source: str = "corpus") -> WordDataset:
    """Tokenizes `text` line by line and builds the n-gram training arrays.

    Args:
        text: The corpus.
        tokenizer: A fitted tokenizer to reuse (when resuming). Defaults to
            `None`: a new `Tokenizer(num_words, oov_token=oov_token)` fitted
            on the lines.
        max_len: N-gram length including the label. Defaults to `None`: the
            longest line.
        num_words, oov_token: For a new tokenizer, see `WordConfig`.
        source: Name of the corpus in error messages.

    Raises:
        ValueError: the corpus is empty or no line has two or more words.
    """
    if not text.strip():
        raise ValueError(f"corpus {source!r} is empty")
    lines = corpus_lines(text)
    if tokenizer is None:
        tokenizer = Tokenizer(num_words=num_words, oov_token=oov_token)
        tokenizer.fit_on_texts(lines)
    try:
        xs, labels = ngram_training_set(tokenizer, lines, max_len=max_len)
    except ValueError:
        xs = np.zeros((0, 1), dtype=np.int32)  # no line long enough to set max_len
    if len(xs) == 0:
        raise ValueError(f"corpus {source!r} has no line of two or more words; the word-level recipe "
                         f"learns which word follows which within a line")
    return WordDataset(tokenizer, xs, labels, xs.shape[1] + 1)


# ------------------------------------------------------------------ model
def build_word_model(config: WordConfig, vocab_size: int, max_len: int) -> Sequential:
    """The compiled next-word model: the preset, or Embedding -> recurrent stack -> softmax.

    Without a preset: ``Embedding(vocab_size, embedding)``, then `layers`
    recurrent layers (``CELLS[cell]``) of `hidden` units (each wrapped in `Bidirectional` when
    asked, all but the last returning sequences, each followed by `Dropout`
    when `dropout > 0`), then ``Dense(vocab_size, softmax)``. Compiled with
    Adam, sparse categorical cross-entropy (on logits) and accuracy.
    """
    config.validate()
    if config.preset is not None:
        model = PRESETS[config.preset].build(vocab_size, max_len)
    else:
        stack = [Embedding(vocab_size, config.embedding, input_length=max_len - 1)]
        for i in range(config.layers):
            layer = CELLS[config.cell](config.hidden, return_sequences=i < config.layers - 1)
            stack.append(Bidirectional(layer) if config.bidirectional else layer)
            if config.dropout:
                stack.append(Dropout(config.dropout))
        stack.append(Dense(vocab_size, activation="softmax"))
        model = Sequential(stack)
    model.compile(optimizer=Adam(learning_rate=config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# ------------------------------------------------------------- generation
@dataclass
class Generation:
    """What `generate_words` produced. `text` is the prime followed by the generated words."""

    text: str
    prime: str
    words: list[str]
    unknown_words: list[str] = field(default_factory=list)
    seed: int | None = None
    log_prob: float | None = None

    def resolved_epochs(self) -> int:
        """`epochs`, or when it is `None` the preset's (10 without a preset)."""
        if self.epochs is not None:
            return self.epochs
        return PRESETS[self.preset].epochs if self.preset in PRESETS else DEFAULT_EPOCHS

    def to_dict(self) -> dict:
        return asdict(self)


def encode_prime(tokenizer: Tokenizer, prime: str, window: int) -> tuple[np.ndarray, list[str]]:
    """The prime's last `window` ids, pre-padded with 0, and the prime's words the tokenizer does not know.

    Unknown words become the OOV id when the tokenizer has an `oov_token`,
    and are dropped otherwise (as ``texts_to_sequences`` does).
    """
    known = tokenizer.word_index
    limit = tokenizer.num_words
    words = text_to_word_sequence(prime, filters=tokenizer.filters, lower=tokenizer.lower, split=tokenizer.split)
    unknown = [w for w in words if w not in known or (limit and known[w] >= limit)]
    ids = tokenizer.texts_to_sequences([prime])[0]
    return pad_sequences([ids], maxlen=window, padding="pre", truncating="pre")[0], unknown


def _logits_fn(model: Sequential) -> Callable[[torch.Tensor], torch.Tensor]:
    final = getattr(model, "final_activation", None)
    if final == "softmax":
        return lambda window: model.forward(window, training=False, return_logits=True)
    if final == "linear":
        return lambda window: model.forward(window, training=False)
    raise ValueError(f"word generation needs a model ending in a softmax or linear layer, got {final!r}")


def generate_words(model: Sequential, tokenizer: Tokenizer, prime: str, words: int = 50, window: int | None = None,
                   temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   beam_width: int = 1, seed: int | None = None) -> Generation:
    """Continues `prime` by `words` words.

    Args:
        model: A next-word model whose input is a window of word ids.
        tokenizer: The tokenizer it was trained with.
        prime: Starting text. Only its last `window` known words are read;
            unknown words are mapped to the OOV token or dropped (listed in
            `Generation.unknown_words`).
        words: Number of words to generate (>= 0).
        window: Input length of the model. Defaults to `None`: the model's
            built input length.
        temperature: 0 picks the most likely word each time (greedy); higher
            values sample more freely. Defaults to `1.0`.
        top_k: Sample only among the `top_k` most likely words. Defaults to `None`.
        top_p: Sample only among the most likely words holding `top_p` of the
            probability. Defaults to `None`.
        beam_width: Above 1, beam search for the most likely continuation
            (deterministic; `temperature`, `top_k`, `top_p` are not used).
            Defaults to `1`.
        seed: Seed of the sampling generator: the same seed gives the same
            text. Defaults to `None`: a fresh seed, reported in the result.

    Returns:
        A `Generation`.
    """
    check_sampling_args(temperature, top_k, top_p, beam_width)
    if isinstance(words, bool) or not isinstance(words, int) or words < 0:
        raise ValueError(f"words must be an integer >= 0, got {words!r}")
    if window is None:
        window = model.layers[0].input_shape[1]
    ids, unknown = encode_prime(tokenizer, prime, window)
    model.eval()
    state = torch.as_tensor(ids, dtype=torch.long, device=model.device)[None, :]
    logits_fn = _logits_fn(model)

    def advance(win: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([win[:, 1:], tokens.to(win.device)[:, None]], dim=1)

    # padding can never be a word; neither should the OOV placeholder be written out
    banned = [0] + ([tokenizer.word_index[tokenizer.oov_token]] if tokenizer.oov_token in tokenizer.word_index else [])
    log_prob = None
    if beam_width > 1:
        seed = None
        chosen, log_prob = beam_search(logits_fn, advance, state, words, beam_width, banned=banned)
    else:
        seed = secrets.randbits(31) if seed is None else int(seed)
        generator = torch.Generator(device=model.device).manual_seed(seed)
        chosen = sample_tokens(logits_fn, advance, state, words, temperature, top_k, top_p, banned,
                               generator)[0].tolist()
    new_words = [tokenizer.index_word[i] for i in chosen]
    text = " ".join(part for part in (prime.strip(), " ".join(new_words)) if part)
    return Generation(text=text, prime=prime, words=new_words, unknown_words=unknown, seed=seed, log_prob=log_prob)


# --------------------------------------------------------------- the run
@dataclass
class WordRun:
    """A trained word-level run loaded from its folder: config, tokenizer, model and per-epoch metrics."""

    folder: RunFolder
    config: dict
    tokenizer: Tokenizer
    model: Sequential
    metrics: dict

    @classmethod
    def load(cls, path, compile: bool = False) -> "WordRun":
        """Opens a run folder written by `train_word_model` (or ``rnnkit train --level word``)."""
        folder = RunFolder.open(path)
        config = folder.read_config()
        if config.get("level") != LEVEL:
            raise RunFolderError(f"{folder.path} holds a {config.get('level')!r}-level run, not a word-level one")
        folder.require(folder.tokenizer_path, folder.model_path)
        return cls(folder, config, folder.read_tokenizer(), folder.load_model(compile=compile), folder.read_metrics())

    @property
    def window(self) -> int:
        return int(self.config["max_len"]) - 1

    @property
    def epochs_done(self) -> int:
        return len(self.metrics["epochs"])

    def generate(self, prime: str, words: int = 50, **options) -> Generation:
        """`generate_words` with this run's model, tokenizer and window; `options` as there."""
        return generate_words(self.model, self.tokenizer, prime, words, window=self.window, **options)


def canonical_corpus(corpus: str) -> str:
    """A corpus name as is; a local file or folder as an absolute path, so a run resumes from any folder."""
    from ..data import list_corpora

    if corpus in list_corpora() or not Path(corpus).exists():
        return corpus
    return str(Path(corpus).resolve())


def _corpus_text(config: WordConfig) -> str:
    from ..data import load_corpus

    return load_corpus(config.corpus, split=config.split, errors=config.decode_errors)


def _text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def train_word_model(out, config: WordConfig | None = None, *, resume: bool = False, epochs: int | None = None,
                     overwrite: bool = False, verbose="auto", callbacks=()) -> WordRun:
    """Trains a word-level model into the run folder `out`, saving it after every epoch.

    A resumed run continues exactly as an uninterrupted one with the same
    config would have (on CPU): same n-grams in the same shuffled order, the
    saved optimizer state, and torch's random state (dropout) as it was at the
    end of the last saved epoch.

    Args:
        out: Run folder.
        config: The run's `WordConfig` (for a new run). Defaults to `None`:
            `WordConfig()` for a new run; when resuming the saved one is used
            and `config` must be `None`.
        resume: Continue the run in `out` from its saved model, optimizer
            state, random state and epoch count, on the same corpus and tokenizer.
        epochs: Total epochs to reach; overrides `config.epochs` (or the
            saved one when resuming). Defaults to `None`.
        overwrite: Replace a run already in `out` (ignored when resuming).
        verbose: Progress display, as `Model.fit`. Defaults to `"auto"`.
        callbacks: Extra `rnnkit.callbacks` for `fit`.

    Returns:
        The `WordRun`, model trained.
    """
    if epochs is not None:  # checked before anything is read or written
        WordConfig(epochs=epochs).validate()
    if resume:
        if config is not None:
            raise ValueError("resume continues the saved run with its saved config; do not pass a new config")
        folder, config, dataset, model, metrics, saved = _reopen_run(out)
    else:
        folder, config, dataset, model, metrics, saved = _start_run(out, config or WordConfig(), overwrite)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    config = replace(config, epochs=config.resolved_epochs()).validate()
    saved["options"] = config.to_dict()
    folder.write_config({k: v for k, v in saved.items() if k != "format"})
    checkpoint = _checkpoint(folder, metrics, config.seed)
    model.fit(dataset.xs, dataset.labels, batch_size=config.batch_size, epochs=config.epochs,
              initial_epoch=len(metrics["epochs"]), validation_split=config.validation_split, verbose=verbose,
              callbacks=[*callbacks, checkpoint])
    return WordRun(folder, folder.read_config(), dataset.tokenizer, model, metrics)


def _start_run(out, config: WordConfig, overwrite: bool):
    config = replace(config, corpus=canonical_corpus(config.corpus)).validate()
    text = _corpus_text(config)
    dataset = build_word_dataset(text, max_len=config.max_len, num_words=config.num_words,
                                 oov_token=config.oov_token, source=config.corpus)
    if config.validation_split:  # refused before the run folder is made, not by fit after it
        validation_cut(len(dataset.xs), config.validation_split)
    folder = RunFolder.create(out, overwrite=overwrite)
    torch.manual_seed(config.seed)
    model = build_word_model(config, dataset.vocab_size, dataset.max_len)
    folder.write_tokenizer(dataset.tokenizer)
    # saved before training so the folder is a complete (epoch 0) run from the start
    model.save(folder.model_path)
    folder.write_rng_state(torch.get_rng_state())
    saved = {"level": LEVEL, "max_len": dataset.max_len, "vocab_size": dataset.vocab_size,
             "samples": int(len(dataset.xs)), "corpus_sha256": _text_digest(text), "params": model.count_params()}
    return folder, config, dataset, model, {"epochs": []}, saved


def _reopen_run(out):
    run = WordRun.load(out, compile=True)
    config = WordConfig.from_dict(run.config["options"])
    text = _corpus_text(config)
    if _text_digest(text) != run.config["corpus_sha256"]:
        raise RunFolderError(f"corpus {config.corpus!r} has changed since the run in {run.folder.path} "
                             f"was started; resuming on other text would mix two trainings")
    dataset = build_word_dataset(text, run.tokenizer, max_len=run.config["max_len"], source=config.corpus)
    metrics = run.folder.resume_metrics(run.model.optimizer.iterations)
    return run.folder, config, dataset, run.model, metrics, run.config


def _checkpoint(folder: RunFolder, metrics: dict, seed: int) -> EpochCheckpoint:
    """The epoch checkpoint, with torch's random state set for `fit` to draw the run's shuffling seed."""
    done = len(metrics["epochs"])
    fit_start, ends = folder.read_rng_state() or (None, {})
    if fit_start is None or (done and done not in ends):
        warn(f"{folder.path} has no saved random state for epoch {done}; training goes on reproducibly "
             f"(seeded by seed + epoch) but not exactly as an uninterrupted run")
        torch.manual_seed(seed + done)
        fit_start, ends = torch.get_rng_state(), {}
    torch.set_rng_state(fit_start)
    if done not in ends:  # a run that has not finished an epoch yet
        return EpochCheckpoint(folder, metrics, fit_start)
    return EpochCheckpoint(folder, metrics, fit_start, resume_state=ends[done], epoch_end=(done, ends[done]))
