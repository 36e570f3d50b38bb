"""findings.jsonl has one statement of its fields, `cdx.io.records.FindingRecord`: the analysis writes it,
every reader (the analysis, the app, the sweep table) validates with it."""

from __future__ import annotations

import json
import math

import pytest

from cdx.analysis.types import Finding, Hypothesis
from cdx.io.records import Evidence, FindingRecord, LikelihoodCheck


def finding() -> Finding:
    h = Hypothesis("says 'arr' more often", {"type": "string", "value": "arr"}, "gained", "ngram", cluster=2,
                   cluster_label="sea", discovery={"k_c": 9})
    return Finding(h, 40, 1, 40, 12, 0.025, 0.3, (0.004, 0.13), (0.18, 0.45), 0.275, (0.12, 0.42), 1e-4, 3e-4, True,
                   "", [Evidence(id="v00001-plain_c-0", model="comparison", prompt="Hi", text="Arr")],
                   LikelihoodCheck(delta=1.2, p=0.01))


def test_a_record_holds_every_field_in_the_schemas_order_and_reads_back_equal():
    f = finding()
    rec = f.to_record()
    assert list(rec) == list(FindingRecord.model_fields)  # the file's key order is the schema's
    # by hand, independently of the schema: what the fields must hold
    assert (rec["id"], rec["statement"], rec["cluster"], rec["k_c"], rec["q"]) == \
        (f.hypothesis.id, "says 'arr' more often", 2, 12, 3e-4)
    assert rec["effect_ci"] == [0.12, 0.42] and isinstance(rec["rate_s_ci"], list)  # intervals are JSON lists
    line = json.dumps(rec, ensure_ascii=False)
    assert Finding.from_record(json.loads(line)) == f
    assert Finding.from_record(FindingRecord.model_validate_json(line)) == f


def test_an_older_record_without_later_fields_still_reads():
    rec = finding().to_record()
    for key in ("likelihood", "discovery", "reason", "cluster_label"):
        rec.pop(key)
    rec["evidence"] = None
    back = Finding.from_record(rec)
    assert back.likelihood.model_dump() == {} and back.evidence == [] and back.hypothesis.discovery == {}


@pytest.mark.parametrize("field, value", [("rate_s", "high"), ("direction", "up"), ("effect_ci", [0.1]),
                                          ("statement", None)])
def test_a_bad_field_is_refused_by_name(field, value):
    rec = finding().to_record() | {field: value}
    with pytest.raises(ValueError, match=field):
        Finding.from_record(rec)


def test_nan_survives_the_round_trip_as_the_file_writes_it():
    f = finding()
    f.p = f.q = float("nan")  # an untestable hypothesis
    rec = f.to_record()
    assert math.isnan(rec["p"]) and "NaN" in json.dumps(rec)
    assert math.isnan(Finding.from_record(json.loads(json.dumps(rec))).q)
