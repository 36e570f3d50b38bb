"""Property-based fuzzing of the record readers (issue 23): any bytes in a record file are read
correctly, set aside and counted as corrupt, or refused with a clear user error; never a crash.

Readers: `scan_records`/`read_records` (every task and the analysis), `read_run` (the app and the
CLI), `run_records` (`prompts=previous_run`). Files mix real records with any Unicode, truncated
lines, wrong types, huge numbers (more digits than Python converts), NaN/Infinity, nesting deeper
than Python's stack, invalid UTF-8 and a last line cut off by a kill. Seeded (`derandomize=True`).
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdx.errors import CdxUserError
from cdx.io import NotARunError, read_records, read_run, scan_records, write_records

CASES: dict[str, int] = {}
SETTINGS = dict(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)
RECORDS = st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5)
BAD_LINES = st.one_of(
    st.text(max_size=60).map(lambda t: t.replace("\n", " ").encode("utf-8")),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")),
    st.sampled_from([b"1" * 5000, b'{"n": ' + b"9" * 5000 + b"}", b"[" * 50000 + b"]" * 50000,
                     b'{"a": ' * 3000 + b"1" + b"}" * 3000, b'{"x": NaN, "y": -Infinity}', b"null", b"[]", b'"s"',
                     b"\xff\xfe{}", b"{", b'{"id": "p1"', b"\x00" * 10, b"\r", b"   "]),
)


def _line(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") \
        .replace("\u0085", "\\u0085").encode("utf-8")


def _same(a, b) -> bool:
    """Equality where NaN equals NaN (a record with NaN read back is the same record)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


FILES = st.tuples(st.lists(st.one_of(RECORDS.map(lambda r: ("record", r)), BAD_LINES.map(lambda b: ("bad", b))),
                           max_size=8),
                  st.booleans())
"""(lines, whether the file ends with a newline)."""


def _write(path, lines, newline_at_end: bool) -> bytes:
    data = b"\n".join(_line(x) if kind == "record" else x for kind, x in lines)
    data += b"\n" if newline_at_end and lines else b""
    path.write_bytes(data)
    return data


@pytest.fixture(scope="module", autouse=True)
def _count_cases(request):
    yield
    from tests.config.test_fuzz_config import say

    say(request, f"record fuzzing: {sum(CASES.values())} generated cases {dict(sorted(CASES.items()))}")


def test_scan_records_keeps_every_record_and_counts_every_other_line(tmp_path_factory):
    count = 0

    @settings(max_examples=120, **SETTINGS)
    @given(FILES)
    def case(file):
        nonlocal count
        count += 1
        lines, newline_at_end = file
        path = tmp_path_factory.mktemp("scan") / "generations.jsonl"
        data = _write(path, lines, newline_at_end)
        scan = scan_records(path)
        complete = data.split(b"\n")[:-1]
        assert scan.partial_tail == data.split(b"\n")[-1]
        assert len(scan.records) + len(scan.corrupt) == sum(bool(x.strip()) for x in complete)
        whole = lines if newline_at_end else lines[:-1]
        written = [r for kind, r in whole if kind == "record"]
        # every record written whole comes back, in order (bad lines that happen to be JSON objects may sit between)
        it = iter(scan.records)
        assert all(any(_same(w, r) for r in it) for w in written)
        assert all(isinstance(r, dict) for r in scan.records)
        assert read_records(path) == scan.records or any(isinstance(v, float) and math.isnan(v)
                                                          for r in scan.records for v in r.values())

    case()
    CASES["scan_records"] = count


def test_written_records_read_back_the_same(tmp_path_factory):
    count = 0

    @settings(max_examples=80, **SETTINGS)
    @given(st.lists(RECORDS, max_size=5))
    def case(records):
        nonlocal count
        count += 1
        path = tmp_path_factory.mktemp("rw") / "r.jsonl"
        write_records(path, records)
        back = read_records(path)
        assert len(back) == len(records) and all(_same(a, b) for a, b in zip(records, back))

    case()
    CASES["write_read"] = count


TEXT_KEYS = st.fixed_dictionaries({
    "id": st.one_of(st.text(max_size=12), st.integers(), st.none(), st.just([1])),
    "prompt_index": st.one_of(st.integers(min_value=-5, max_value=2**70), st.text(max_size=3)),
    "sample_index": st.integers(min_value=0, max_value=3),
    "prompt": st.one_of(st.text(max_size=20), st.none(), st.integers()),
    "continuation": st.one_of(st.text(max_size=20), st.none()),
    "token_ids": st.lists(st.integers(min_value=-1, max_value=2**40), max_size=3),
    "token_strs": st.lists(st.text(max_size=4), max_size=3),
    "tokens": st.dictionaries(st.sampled_from(["kl_sc", "js"]), st.lists(st.floats(), max_size=3), max_size=2),
    "metrics": st.dictionaries(st.sampled_from(["kl_sc_mean", "ppl_s"]), st.one_of(st.floats(), st.integers()), max_size=2),
    "finish_reason": st.sampled_from(["eos", "length", "given"]),
})
RUN_FILES = st.tuples(st.lists(st.one_of(TEXT_KEYS.map(lambda r: ("record", r)), RECORDS.map(lambda r: ("record", r)),
                                         BAD_LINES.map(lambda b: ("bad", b))), max_size=6),
                      st.booleans())
KINDS = {"decode": "generations.jsonl", "score": "scores.jsonl", "search": "bank.jsonl", "analyze": "findings.jsonl"}


def test_read_run_of_any_records_file_reads_or_refuses_clearly(tmp_path_factory):
    count = 0

    @settings(max_examples=120, **SETTINGS)
    @given(st.sampled_from(sorted(KINDS)), RUN_FILES)
    def case(kind, file):
        nonlocal count
        count += 1
        folder = tmp_path_factory.mktemp("run")
        _write(folder / KINDS[kind], *file)
        try:
            run = read_run(folder)
        except NotARunError:
            return
        scan = scan_records(folder / KINDS[kind])
        assert run.kind == kind and len(run.records) + run.n_corrupt == len(scan.records) + len(scan.corrupt)

    case()
    CASES["read_run"] = count


def test_previous_run_records_read_or_refuse_with_a_user_error(tmp_path_factory):
    from cdx.decoding.prompts import PreviousRun

    count = 0

    @settings(max_examples=100, **SETTINGS)
    @given(RUN_FILES, st.sampled_from(["prompt", "continuation", "text"]))
    def case(file, field):
        nonlocal count
        count += 1
        folder = tmp_path_factory.mktemp("prev")
        _write(folder / "generations.jsonl", *file)
        try:
            texts = PreviousRun(str(folder), field=field).load()
        except CdxUserError as e:
            assert "\n" not in str(e) and len(str(e)) < 2000, str(e)[:2000]
            return
        assert texts and all(isinstance(t, str) for t in texts)

    case()
    CASES["previous_run"] = count


# ---- what the fuzzer found, one case each ------------------------------------------------------------

FOUND = [
    ("integer-of-5000-digits", b'{"n": ' + b"9" * 5000 + b"}"),  # json.loads raises ValueError, not JSONDecodeError
    ("nesting-deeper-than-the-stack", b"[" * 50000 + b"]" * 50000),  # RecursionError
]


@pytest.mark.parametrize("line", [c[1] for c in FOUND], ids=[c[0] for c in FOUND])
def test_a_line_python_cannot_parse_is_set_aside(tmp_path, line):
    path = tmp_path / "generations.jsonl"
    path.write_bytes(b'{"id": "a", "prompt": "p", "continuation": "c"}\n' + line + b'\n{"id": "b"}\n')
    scan = scan_records(path)
    assert [r["id"] for r in scan.records] == ["a", "b"] and [n for n, _ in scan.corrupt] == [2]
    with pytest.raises(CdxUserError, match=r"generations.jsonl:2 is not a JSON object cdx can read"):
        from cdx.decoding.prompts import PreviousRun

        PreviousRun(str(tmp_path)).load()


def test_findings_with_ids_of_mixed_kinds_keep_file_order(tmp_path):
    records = [{"id": 2, "statement": "b"}, {"id": None, "statement": "x"}, {"id": [1], "statement": "y"}]
    write_records(tmp_path / "findings.jsonl", records)
    assert read_run(tmp_path).records == records  # sorting them raised TypeError
    write_records(tmp_path / "findings.jsonl", [{"id": 2}, {"id": 1}])
    assert read_run(tmp_path).records == [{"id": 1}, {"id": 2}]
