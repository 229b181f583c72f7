import numpy as np
import pytest

from rnnkit.seq2seq.tasks import dates_task, dates_vocabs, pairs_task, read_pairs
from rnnkit.seq2seq.vocab import PAD, UNK, Vocab


def test_encode_decode_round_trip_with_padding_and_unknowns():
    v = Vocab.build("abc", lowercase=True)
    assert v.symbols[:2] == [PAD, UNK] and len(v) == 5
    ids = v.encode(["Cab", "a€"], 5)
    assert ids.shape == (2, 5) and ids.dtype == np.int64
    assert ids[0].tolist() == [4, 2, 3, 0, 0]
    assert ids[1].tolist() == [2, v.unk_id, 0, 0, 0]
    assert v.decode(ids[0]) == "cab" and v.decode(ids[1]) == "a?"
    assert v.unknown("a€b$€") == ["€", "$"]
    assert Vocab.from_json(v.to_json()) == v


def test_encode_refuses_what_it_cannot_represent():
    v = Vocab.build("abc")
    with pytest.raises(ValueError, match="has 4 characters; this model reads at most 3"):
        v.encode(["abca"], 3)
    fixed = Vocab(list("-0123456789"))
    with pytest.raises(ValueError, match="no <pad>"):
        fixed.encode(["1-2"], 10)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        fixed.encode(["12x4567890"], 10)


def test_course_vocabularies_have_the_course_sizes():
    inp, out = dates_vocabs("course", ty=10)
    assert (len(inp), len(out)) == (37, 11)
    assert inp.normalize("Saturday, May 9 2018") == "saturday may 9 2018"
    assert inp.unknown("09-05-2018") == ["-"]  # the course's generator never writes dashes
    inp2, out2 = dates_vocabs("dates", ty=12)
    assert not inp2.unknown("Thursday, 3rd of MAY, 09-05-2018") and out2.pad_id == 0


def test_dates_task_splits():
    data = dates_task(train_size=300, test_size=50, val_size=20, seed=4)
    assert (len(data.train), len(data.val), len(data.test)) == (300, 20, 50)
    assert not {s for s, _ in data.test} & {s for s, _ in data.train + data.val}
    with pytest.raises(ValueError, match="Ty >= 10"):
        dates_task(train_size=10, ty=8)


def _write(tmp_path, text, name="pairs.tsv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_pairs_skips_blank_lines_and_names_bad_ones(tmp_path):
    assert read_pairs(_write(tmp_path, "a\tb\n\n  \nc d\te\n")) == [("a", "b"), ("c d", "e")]
    for text, line, what in [
        ("a\tb\nno tab here\n", 2, "found no tab"),
        ("a\tb\nx\ty\tz\n", 2, "3 tab-separated fields"),
        ("a\tb\n\nc\td\n\tq\n", 4, "the source is empty"),
        ("a\t\n", 1, "the target is empty"),
    ]:
        with pytest.raises(ValueError, match=f"line {line}: .*{what}"):
            read_pairs(_write(tmp_path, text))
    with pytest.raises(ValueError, match="line 2: the source has 6 characters, more than the limit 5"):
        read_pairs(_write(tmp_path, "abc\td\nabcdef\tg\n"), max_source=5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_pairs(tmp_path / "missing.tsv")
    (tmp_path / "bin.tsv").write_bytes(b"\xff\xfe\x00a\tb\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_pairs(tmp_path / "bin.tsv")


def test_pairs_task_sizes_vocabularies_and_lengths(tmp_path):
    words = [f"w{i}x{i * 7 % 13}" for i in range(60)]
    path = _write(tmp_path, "".join(f"{w}\t{w[::-1]}\n" for w in words))
    data = pairs_task(path, seed=1)
    assert len(data.train) + len(data.val) + len(data.test) == 60 and data.test
    assert data.tx == max(len(w) for w in words) and data.ty == data.tx
    assert data.output_vocab.pad_id == 0 and data.output_vocab.unk_id is None
    with pytest.raises(ValueError, match="at least 20"):
        pairs_task(_write(tmp_path, "a\tb\n" * 5, "few.tsv"))


def test_a_pairs_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(ValueError, match="is a folder; expected a UTF-8 file of source<TAB>target lines"):
        read_pairs(tmp_path)
