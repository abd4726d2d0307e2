from fixtures import make_result, student

from kdbench.verdict import head_claim, head_verdicts


def test_same_speed_with_same_flops_is_no_speedup_and_names_the_pruned_twin():
    lines = head_verdicts(make_result({"teacher": 0.100, "4AH": 0.100, "4AH_pruned": 0.080}))
    assert len(lines) == 1
    ln = lines[0]
    assert ln.outcome == "no speed-up" and ln.flops_ratio == 1.0
    assert ln.pruned == "4AH_pruned" and 1.2 < ln.pruned_speedup.value < 1.3
    assert "keep every projection FLOP" in ln.reason and "4AH_pruned" in ln.reason
    assert head_claim(lines).startswith("the head claim holds")


def test_slower_wide_heads_are_called_slower():
    ln = head_verdicts(make_result({"teacher": 0.100, "4AH": 0.200, "4AH_pruned": 0.080}))[0]
    assert ln.outcome == "slower" and "192-wide heads" in ln.reason


def test_a_real_speedup_breaks_the_claim():
    lines = head_verdicts(make_result({"teacher": 0.100, "4AH": 0.070, "4AH_pruned": 0.060}))
    assert lines[0].outcome == "speed-up"
    assert head_claim(lines).startswith("the head claim does not hold") and "4AH" in head_claim(lines)


def test_without_head_reduced_students_there_is_not_enough_data():
    students = {"teacher": student("teacher", "teacher"), "6L": student("6L", layers=6, flops=0.5)}
    lines = head_verdicts(make_result({"teacher": 0.1, "6L": 0.05}, students))
    assert lines == [] and head_claim(lines).startswith("not enough data")


def test_missing_pruned_twin_is_said():
    students = {"teacher": student("teacher", "teacher"), "4AH": student("4AH", heads=4, head_dim=192)}
    ln = head_verdicts(make_result({"teacher": 0.1, "4AH": 0.1}, students))[0]
    assert ln.pruned is None and "no pruned-head twin" in ln.reason
