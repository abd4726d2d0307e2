import json

import pytest
from fixtures import make_result

from kdbench.core.errors import KdbenchError
from kdbench.core.io import atomic_write_text
from kdbench.measure.result import SCHEMA_VERSION, ProfileResult


def test_round_trip_keeps_samples_and_rederives_statistics(tmp_path):
    result = make_result({"teacher": 0.1, "4AH": 0.1})
    path = tmp_path / "r.json"
    result.save(path)
    data = json.loads(path.read_text())
    assert data["schema"] == "kdbench.profile" and data["schema_version"] == SCHEMA_VERSION
    assert data["cells"][0]["stats_s"]["p50"] == pytest.approx(result.cells[0].stats.p50)
    data["cells"][0]["stats_s"]["p50"] = 123.0  # stored statistics are informational; samples are the truth
    path.write_text(json.dumps(data))
    again = ProfileResult.from_json(path)
    assert again.cells == result.cells and again.cells[0].stats.p50 < 1


def test_unknown_schema_version_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "r.json"
    data = make_result({"teacher": 0.1}).to_dict()
    path.write_text(json.dumps({**data, "schema_version": 99}))
    with pytest.raises(KdbenchError, match="schema version 99"):
        ProfileResult.from_json(path)
    path.write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(KdbenchError, match="not a kdbench profile result"):
        ProfileResult.from_json(path)
    path.write_text("{not json")
    with pytest.raises(KdbenchError, match="not valid JSON"):
        ProfileResult.from_json(path)
    with pytest.raises(KdbenchError, match="no such file"):
        ProfileResult.from_json(tmp_path / "missing.json")


def test_damaged_cells_are_reported_not_crashed_on(tmp_path):
    path = tmp_path / "r.json"
    data = make_result({"teacher": 0.1}).to_dict()
    del data["cells"][0]["batch_size"]
    path.write_text(json.dumps(data))
    with pytest.raises(KdbenchError, match="damaged"):
        ProfileResult.from_json(path)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text("old complete file")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kdbench.core.io.os.fsync", disk_full)  # the write fails after half the bytes went out
    with pytest.raises(KdbenchError, match="No space left on device"):
        atomic_write_text(path, "new file " * 1000)
    assert path.read_text() == "old complete file"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind
