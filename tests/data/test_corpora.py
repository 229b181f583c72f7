"""load_corpus: lookup order, checksums, decoding, local files, built-in corpus. No network."""
from __future__ import annotations

import codecs
import hashlib
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import rnnkit.data.corpora as corpora_module
from rnnkit.data import (
    CORPORA,
    STDLIB_MODULES,
    CorpusError,
    CorpusFile,
    CorpusInfo,
    cache_dir,
    corpus_info,
    list_corpora,
    load_corpus,
)
from rnnkit.data.fetch import download as real_download

FAKE_TEXT = "\ufeffFirst line, café\nsecond line\n".encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(path: Path, data: bytes) -> Path:
    """Writes `data` to `path`, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated mirror and cache folders; any download attempt fails unless a test allows it."""
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(mirror))
    monkeypatch.setenv("RNNKIT_CACHE", str(cache))

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"unexpected download of {url}")

    monkeypatch.setattr(corpora_module, "download", no_network)
    return mirror, cache


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A registered corpus 'fake' whose URL is a local file:// source (a BOM-prefixed text)."""
    source = put(tmp_path / "upstream" / "fake.txt", FAKE_TEXT)
    entry = CorpusFile(path="sub/fake.txt", url=source.as_uri(), size=len(FAKE_TEXT), sha256=sha256(FAKE_TEXT),
                       source="local test file")
    monkeypatch.setitem(CORPORA, "fake", CorpusInfo("fake", "test corpus", {None: entry}))
    return entry


def test_list_and_info():
    names = list_corpora()
    assert names == sorted(names)
    assert {"tiny-shakespeare", "sonnets", "wikitext-2", "ptb", "python-stdlib"} <= set(names)
    assert corpus_info("ptb").splits == ("train", "valid", "test")
    assert corpus_info("sonnets").splits == ()
    shakespeare = corpus_info("tiny-shakespeare").files[None]
    assert shakespeare.url == ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
                               "tinyshakespeare/input.txt")
    assert shakespeare.size == 1115394 and len(shakespeare.sha256) == 64
    for info in CORPORA.values():
        for entry in info.files.values():
            assert entry.url.startswith("https://raw.githubusercontent.com/"), entry


def test_unknown_name_lists_known_ones():
    with pytest.raises(CorpusError) as info:
        load_corpus("shakespear")
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, ValueError)
    for name in list_corpora():
        assert name in message
    with pytest.raises(CorpusError, match="known corpora"):
        corpus_info("nope")


def test_split_arguments(env, fake):
    with pytest.raises(CorpusError, match="no splits"):
        load_corpus("fake", split="train")
    with pytest.raises(CorpusError, match="splits: train, valid, test"):
        load_corpus("ptb", split="dev")
    with pytest.raises(CorpusError, match="no splits"):
        load_corpus("python-stdlib", split="test")


def test_mirror_first_with_bom_stripped(env, fake):
    mirror, cache = env
    put(mirror / "sub" / "fake.txt", FAKE_TEXT)
    assert load_corpus("fake") == "First line, café\nsecond line\n"
    assert not cache.exists()


def test_cache_second(env, fake):
    mirror, cache = env
    put(cache / "corpora" / "sub" / "fake.txt", FAKE_TEXT)
    assert cache_dir() == cache / "corpora"
    assert load_corpus("fake").startswith("First line")


def test_download_last_then_cached(env, fake, monkeypatch):
    mirror, cache = env
    monkeypatch.setattr(corpora_module, "download", real_download)
    assert load_corpus("fake").startswith("First line")
    cached = cache / "corpora" / "sub" / "fake.txt"
    assert cached.read_bytes() == FAKE_TEXT
    assert [p.name for p in cached.parent.iterdir()] == ["fake.txt"]  # no temporary left behind
    monkeypatch.setitem(CORPORA, "fake", replace(CORPORA["fake"], files={
        None: replace(fake, url=(cached.parent / "gone.txt").as_uri())}))
    assert load_corpus("fake").startswith("First line")  # served from the cache, no fetch


def test_download_with_wrong_digest_caches_nothing(env, fake, monkeypatch):
    mirror, cache = env
    monkeypatch.setattr(corpora_module, "download", real_download)
    monkeypatch.setitem(CORPORA, "fake", replace(CORPORA["fake"], files={None: replace(fake, sha256="0" * 64)}))
    with pytest.raises(CorpusError, match="expected 0{64}"):
        load_corpus("fake")
    folder = cache / "corpora" / "sub"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_download_failure_is_a_corpus_error(env, fake, monkeypatch, tmp_path):
    monkeypatch.setattr(corpora_module, "download", real_download)
    monkeypatch.setitem(CORPORA, "fake", replace(CORPORA["fake"], files={
        None: replace(fake, url=(tmp_path / "missing.txt").as_uri())}))
    with pytest.raises(CorpusError, match="cannot download .*RNNKIT_DATA_DIR"):
        load_corpus("fake")


def test_tampered_mirror_copy_is_refused(env):
    mirror, _ = env
    good = corpus_info("sonnets").files[None]
    data = b"FROM fairest creatures we desire increase,\n" + b"x" * 100
    (mirror / "sonnets.txt").write_bytes(data)
    with pytest.raises(CorpusError) as info:
        load_corpus("sonnets")
    message = str(info.value)
    assert str(mirror / "sonnets.txt") in message
    assert good.sha256 in message and sha256(data) in message


def test_tampered_cache_copy_is_refused(env, fake):
    _, cache = env
    put(cache / "corpora" / "sub" / "fake.txt", FAKE_TEXT + b"extra")
    with pytest.raises(CorpusError, match="does not match expected"):
        load_corpus("fake")


def test_mirror_of_real_files_verifies(monkeypatch, tmp_path):
    source = os.environ.get("RNNKIT_DATA_DIR")
    if not source or not (Path(source) / "sonnets.txt").is_file():
        pytest.skip("RNNKIT_DATA_DIR is not set to the reference corpora folder")
    copy = tmp_path / "mirror"
    copy.mkdir()
    shutil.copy(Path(source) / "sonnets.txt", copy / "sonnets.txt")
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(copy))
    text = load_corpus("sonnets")
    assert text.startswith("FROM fairest creatures we desire increase,")
    with open(copy / "sonnets.txt", "r+b") as fh:  # flip one byte
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 1]))
    with pytest.raises(CorpusError, match="sonnets.txt: sha256"):
        load_corpus("sonnets")


def test_registered_digests_match_the_reference_folder():
    source = os.environ.get("RNNKIT_DATA_DIR")
    if not source or not Path(source).is_dir():
        pytest.skip("RNNKIT_DATA_DIR is not set to the reference corpora folder")
    for info in CORPORA.values():
        for entry in info.files.values():
            path = Path(source) / entry.path
            if path.is_file():
                data = path.read_bytes()
                assert (len(data), sha256(data)) == (entry.size, entry.sha256), entry.path


def test_local_file_and_bom(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(codecs.BOM_UTF8 + "hello\r\nworld".encode())
    assert load_corpus(path) == "hello\r\nworld"  # BOM dropped, line endings untouched
    assert load_corpus(str(path)) == "hello\r\nworld"
    with pytest.raises(CorpusError, match="no splits"):
        load_corpus(path, split="train")


def test_folder_of_txt_files(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "b.txt").write_text("second\n")
    (folder / "a.txt").write_text("first")  # no final newline: one is added
    (folder / "c.md").write_text("ignored")
    (folder / "sub").mkdir()
    (folder / "sub" / "d.txt").write_text("not recursive")
    assert load_corpus(folder) == "first\nsecond\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="no .txt files"):
        load_corpus(empty)


def test_undecodable_bytes_name_file_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"abc\xffdef")
    with pytest.raises(CorpusError) as info:
        load_corpus(path)
    assert str(path) in str(info.value) and "byte offset 3" in str(info.value)
    assert "errors='replace' (command line: --decode-errors replace)" in str(info.value)
    assert load_corpus(path, errors="replace") == "abc\ufffddef"
    path.write_bytes(codecs.BOM_UTF8 + b"ab\xc3")  # truncated sequence; offset counts the BOM
    with pytest.raises(CorpusError, match="byte offset 5"):
        load_corpus(path)
    with pytest.raises(CorpusError, match="errors handler"):
        load_corpus(path, errors="bogus")


def test_python_stdlib_offline_and_deterministic(env):
    first = load_corpus("python-stdlib")  # the env fixture makes any download fail
    assert first == load_corpus("python-stdlib")
    assert len(first) > 2_000_000
    assert len(STDLIB_MODULES) >= 40
    assert "class ArgumentParser" in first[:200_000]  # argparse comes first
    assert first.index("class ArgumentParser") < first.index("class Decimal")  # _pydecimal near the end
