"""keras.utils.get_file (served from 127.0.0.1 or file://, never the internet) and set_random_seed."""
import hashlib
import http.server
import io
import os
import random
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit.keras as keras

PAYLOAD = b"id,value\n1,2\n" * 100


@pytest.fixture
def server(tmp_path):
    """An HTTP server on the loopback interface serving ``tmp_path/www``; counts the requests."""
    root = tmp_path / "www"
    root.mkdir()
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, hits
    httpd.shutdown()
    httpd.server_close()


def test_downloads_verifies_and_caches(server, tmp_path):
    url, root, hits = server
    (root / "data.csv").write_bytes(PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    cache = tmp_path / "cache"
    path = keras.utils.get_file("data.csv", f"{url}/data.csv", file_hash=sha, cache_dir=cache)
    assert path == os.fspath(cache / "datasets" / "data.csv") and Path(path).read_bytes() == PAYLOAD
    again = keras.utils.get_file(origin=f"{url}/data.csv", file_hash=sha, cache_dir=cache)  # fname from the URL
    assert again == path and len(hits) == 1  # served from the cache
    keras.utils.get_file("data.csv", f"{url}/data.csv", cache_dir=cache, force_download=True)
    assert len(hits) == 2
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert keras.utils.get_file("data.csv", f"{url}/data.csv", md5_hash=md5, cache_dir=cache) == path
    assert len(hits) == 2


def test_a_cached_file_that_does_not_match_is_fetched_again(server, tmp_path):
    url, root, hits = server
    (root / "data.csv").write_bytes(PAYLOAD)
    stale = tmp_path / "cache" / "datasets" / "data.csv"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert Path(keras.utils.get_file("data.csv", f"{url}/data.csv", file_hash=sha,
                                     cache_dir=tmp_path / "cache")).read_bytes() == PAYLOAD
    assert len(hits) == 1


def test_a_wrong_hash_keeps_nothing(server, tmp_path):
    url, root, _ = server
    (root / "data.csv").write_bytes(PAYLOAD)
    with pytest.raises(ValueError, match="hash does not match"):
        keras.utils.get_file("data.csv", f"{url}/data.csv", file_hash="0" * 64, cache_dir=tmp_path / "c")
    assert list((tmp_path / "c" / "datasets").iterdir()) == []


def test_a_missing_url_raises_and_keeps_nothing(server, tmp_path):
    url, _, _ = server
    with pytest.raises(OSError, match="fetch failure"):
        keras.utils.get_file("gone.csv", f"{url}/gone.csv", cache_dir=tmp_path / "c")
    assert list((tmp_path / "c" / "datasets").iterdir()) == []


def test_keras_home_and_subdir(tmp_path, monkeypatch):
    src = tmp_path / "src.txt"
    src.write_bytes(PAYLOAD)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    path = keras.utils.get_file("x.txt", src.as_uri(), cache_subdir="mine")
    assert path == os.fspath(tmp_path / "home" / "mine" / "x.txt")


def test_extracts_tar_and_zip(tmp_path):
    tar_path = tmp_path / "arch.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        info = tarfile.TarInfo("pkg/a.txt")
        info.size = len(PAYLOAD)
        tar.addfile(info, io.BytesIO(PAYLOAD))
    out = keras.utils.get_file("arch.tar.gz", tar_path.as_uri(), extract=True, cache_dir=tmp_path / "c")
    assert out == os.fspath(tmp_path / "c" / "datasets" / "arch_extracted")
    assert (Path(out) / "pkg" / "a.txt").read_bytes() == PAYLOAD
    zip_path = tmp_path / "z.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("b.txt", PAYLOAD)
    out = keras.utils.get_file("z", zip_path.as_uri(), extract=True, cache_dir=tmp_path / "c")
    assert out == os.fspath(tmp_path / "c" / "datasets" / "z") and (Path(out) / "b.txt").read_bytes() == PAYLOAD
    with pytest.raises(ValueError, match="not a tar archive"):
        keras.utils.get_file("z", zip_path.as_uri(), untar=True, cache_dir=tmp_path / "c")


def test_tar_members_outside_the_folder_are_refused(tmp_path):
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.TarError):
        keras.utils.get_file("bad.tar", bad.as_uri(), extract=True, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c" / "escape.txt").exists()
    assert not (tmp_path / "c" / "datasets" / "bad_extracted").exists()


def test_bad_arguments():
    with pytest.raises(ValueError, match="origin"):
        keras.utils.get_file("x")
    with pytest.raises(ValueError, match="not a path"):
        keras.utils.get_file(os.path.join("a", "b"), "file:///nowhere")
    with pytest.raises(ValueError, match="hash_algorithm"):
        keras.utils.get_file("x", "file:///nowhere", file_hash="ab", hash_algorithm="sha1")


def test_set_random_seed_seeds_everything():
    keras.utils.set_random_seed(11)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    keras.utils.set_random_seed(11)
    assert first == (random.random(), np.random.rand(), torch.rand(1).item())
    with pytest.raises(ValueError, match="integer"):
        keras.utils.set_random_seed(1.5)
