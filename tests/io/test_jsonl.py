"""JSONL records survive any text; atomic writes leave no temporary files."""

import json

import numpy as np
import pytest

from cdx.io import (
    JsonlWriter,
    atomic_save_npy,
    atomic_write_json,
    dumps_line,
    read_records,
    scan_records,
    write_records,
)

# Every character str.splitlines() treats as a line end, plus NUL and an emoji with a ZWJ.
NASTY = ["a\u2028b", "c\u0085d", "e\rf", "g\x1ch", "i\u2029j", "k\x0bl", "m\x0cn", "o\x1dp", "q\x1er", "s\r\nt",
         "u\nv", "w\x00x", "👩\u200d💻", "tab\tend", "\\u2028 literal"]


def test_records_with_every_line_break_character_round_trip(tmp_path):
    # Issue 12 item 3: 12 records written, 8 read back (splitlines cut the U+2028/U+0085 ones).
    recs = [{"id": f"p{i:05d}-s00", "continuation": t} for i, t in enumerate(NASTY)]
    with JsonlWriter(tmp_path / "g.jsonl") as w:
        w.write(recs)
    assert read_records(tmp_path / "g.jsonl") == recs
    data = (tmp_path / "g.jsonl").read_bytes()
    assert data.count(b"\n") == len(recs)  # one physical line per record
    # Other tools split on these too: none appears raw in the file.
    text = data.decode("utf-8")
    assert len(text.splitlines()) == len(recs)
    assert not any(c in text for c in ("\u2028", "\u2029", "\u0085", "\r"))


def test_dumps_line_is_valid_json_equal_to_the_record():
    rec = {"t": "x\u2028y\u0085z", "n": [1, 2.5, None]}
    line = dumps_line(rec)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == rec


def test_scan_sets_aside_corrupt_lines_and_a_cut_off_tail(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_bytes(b'{"id": 1}\n{"id": 2, "t": "bro\n[1, 2]\n\xff\xfe\n{"id": 3}\n{"id": 4, "t": "cut')
    scan = scan_records(p)
    assert [r["id"] for r in scan.records] == [1, 3]
    assert [n for n, _ in scan.corrupt] == [2, 3, 4]  # broken JSON, a JSON list, invalid UTF-8
    assert scan.partial_tail == b'{"id": 4, "t": "cut'


def test_read_records_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_records(tmp_path / "nope.jsonl")


def test_writer_cuts_a_partial_last_line_before_appending(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_bytes(b'{"id": 1}\n{"id": 2, "t"')
    with JsonlWriter(p) as w:
        w.write([{"id": 2}])
    assert read_records(p) == [{"id": 1}, {"id": 2}]


def test_atomic_writes_replace_whole_files_and_leave_no_temporaries(tmp_path):
    write_records(tmp_path / "r.jsonl", [{"id": 1}])
    write_records(tmp_path / "r.jsonl", [{"id": 2}, {"id": 3}])
    atomic_write_json(tmp_path / "s.json", {"k": "\u2028"})
    atomic_save_npy(tmp_path / "e.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    assert read_records(tmp_path / "r.jsonl") == [{"id": 2}, {"id": 3}]
    assert json.loads((tmp_path / "s.json").read_text()) == {"k": "\u2028"}
    assert np.load(tmp_path / "e.npy").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npy", "r.jsonl", "s.json"]
