"""Building rnnkit's C kernels: cached by source, compiler and flags; failures are one-line
`NativeUnavailable` errors that leave nothing half-written; the switch to turn them off."""
import os
import shutil

import pytest

from rnnkit import native

needs_cc = pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None,
                              reason="no C compiler on this machine (the kernels are optional)")


@needs_cc
def test_build_compiles_once_and_reuses_the_cached_library(tmp_path):
    first = native.build("lstm_step", tmp_path)
    stamp = first.stat().st_mtime_ns
    assert first.parent == tmp_path and first.name.startswith("lstm_step-") and first.suffix == ".so"
    assert native.build("lstm_step", tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # no temporary left behind


@needs_cc
def test_other_flags_build_under_another_name(tmp_path, monkeypatch):
    first = native.build("lstm_step", tmp_path)
    monkeypatch.setattr(native, "FLAGS", native.FLAGS + ("-DRNNKIT_TEST_FLAG",))
    second = native.build("lstm_step", tmp_path)
    assert second != first and second.is_file() and first.is_file()


def test_a_missing_compiler_is_a_one_line_error(tmp_path):
    with pytest.raises(native.NativeUnavailable, match="no C compiler: 'no-such-cc-here' is not on PATH"):
        native.build("lstm_step", tmp_path, compiler="no-such-cc-here")
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("false") is None, reason="needs the `false` command")
def test_a_failing_compiler_leaves_nothing_behind(tmp_path):
    with pytest.raises(native.NativeUnavailable, match=r"^false could not build lstm_step.c: exit status 1$"):
        native.build("lstm_step", tmp_path, compiler="false")
    assert not any(tmp_path.iterdir())


def test_an_unknown_kernel_is_refused(tmp_path):
    with pytest.raises(native.NativeUnavailable, match="no C source for kernel 'nope'"):
        native.build("nope", tmp_path)


def test_an_unwritable_cache_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler on this machine: the cache is not reached")
    with pytest.raises(native.NativeUnavailable, match="cannot write the compiled kernel to"):
        native.build("lstm_step", blocker / "cache")


def test_the_kernels_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("RNNKIT_NATIVE", "0")
    assert native._platform_problem() == "disabled by RNNKIT_NATIVE=0"


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_CACHE_DIR", str(tmp_path / "a"))
    assert native.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("RNNKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert native.cache_dir() == tmp_path / "xdg" / "rnnkit"


@needs_cc
def test_the_cached_library_is_readable_by_others_and_a_relative_cache_works(tmp_path, monkeypatch):
    path = native.build("lstm_step", tmp_path)
    assert path.stat().st_mode & 0o444 == 0o444 and path.is_absolute()
    monkeypatch.chdir(tmp_path)
    assert native.build("lstm_step", ".") == path  # resolved: dlopen would search the library path for "x.so"


@pytest.mark.skipif(shutil.which("true") is None, reason="needs the `true` command")
def test_a_compiler_that_writes_nothing_leaves_nothing_behind(tmp_path):
    for _ in range(2):  # the second try must fail the same way, not find a broken file in the cache
        with pytest.raises(native.NativeUnavailable, match="true reported success but wrote no usable library"):
            native.build("lstm_step", tmp_path, compiler="true")
    assert not any(tmp_path.iterdir())


@needs_cc
def test_a_compiler_with_arguments(tmp_path):
    cc = shutil.which(os.environ.get("CC") or "cc")
    path = native.build("lstm_step", tmp_path, compiler=f"{cc} -DRNNKIT_TEST_FLAG")
    assert path.is_file() and path != native.build("lstm_step", tmp_path, compiler=cc)
