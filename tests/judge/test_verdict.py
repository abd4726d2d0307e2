from fixtures import make_result, student

from kdbench.judge.verdict import head_claim, head_verdicts


def test_same_speed_with_same_flops_is_no_speedup_and_names_the_pruned_twin():
    lines = head_verdicts(make_result({"teacher": 0.100, "4AH": 0.100, "4AH_pruned": 0.080}))
    assert len(lines) == 1
    ln = lines[0]
    assert ln.outcome == "no difference shown" and ln.flops_ratio == 1.0
    assert ln.pruned == "4AH_pruned" and 1.2 < ln.pruned_speedup.value < 1.3
    assert "keep every projection FLOP" in ln.reason and "4AH_pruned" in ln.reason
    assert head_claim(lines).startswith("HOLDS: all 1 head-reduced measurements rule out a speed-up above 1.05x")


def test_slower_wide_heads_are_called_slower():
    ln = head_verdicts(make_result({"teacher": 0.100, "4AH": 0.200, "4AH_pruned": 0.080}))[0]
    assert ln.outcome == "slower" and "192-wide heads" in ln.reason


def test_a_real_speedup_breaks_the_claim():
    lines = head_verdicts(make_result({"teacher": 0.100, "4AH": 0.070, "4AH_pruned": 0.060}))
    assert lines[0].outcome == "faster"
    assert head_claim(lines).startswith("DOES NOT HOLD: faster than the teacher") and "4AH" in head_claim(lines)


def test_without_head_reduced_students_there_is_not_enough_data():
    students = {"teacher": student("teacher", "teacher"), "6L": student("6L", layers=6, flops=0.5)}
    lines = head_verdicts(make_result({"teacher": 0.1, "6L": 0.05}, students))
    assert lines == [] and head_claim(lines).startswith("NOT ENOUGH DATA")


def test_missing_pruned_twin_is_said():
    students = {"teacher": student("teacher", "teacher"), "4AH": student("4AH", heads=4, head_dim=192)}
    ln = head_verdicts(make_result({"teacher": 0.1, "4AH": 0.1}, students))[0]
    assert ln.pruned is None and "no pruned-head twin" in ln.reason


def test_three_outcomes_never_turn_not_shown_into_no():
    """A wide interval around 1.03 neither shows a speed-up nor rules one out: the claim is INCONCLUSIVE."""
    from fixtures import TEACHER, blocks, samples

    from kdbench.measure.result import Cell, ProfileResult

    students = {"teacher": student("teacher", "teacher"), "4AH": student("4AH", heads=4, head_dim=192)}
    noisy = [samples(0.100, spread=0.10, seed=1), samples(0.097, spread=0.10, seed=2)]
    cells = tuple(
        Cell(n, "torch", "cpu", "fp32", 1, 128, 2, "sdpa", s, blocks=blocks())
        for n, s in zip(students, noisy, strict=True)
    )
    lines = head_verdicts(ProfileResult({}, {}, TEACHER, students, cells))
    assert lines[0].outcome == "no difference shown" and lines[0].speedup.high > 1.05
    assert head_claim(lines).startswith("INCONCLUSIVE: no head-reduced student was shown faster")


def test_too_few_samples_or_blocks_carry_no_verdict_and_a_smoke_run_none_at_all():
    from fixtures import TEACHER, samples

    from kdbench.measure.result import Cell, ProfileResult

    students = {"teacher": student("teacher", "teacher"), "4AH": student("4AH", heads=4, head_dim=192)}
    few = tuple(
        Cell(n, "torch", "cpu", "fp32", 1, 128, 2, "sdpa", samples(m, n=6, seed=i), blocks=(0, 0, 0, 1, 1, 1))
        for i, (n, m) in enumerate((("teacher", 0.1), ("4AH", 0.05)))
    )
    lines = head_verdicts(ProfileResult({}, {}, TEACHER, students, few))
    assert lines[0].outcome == "too few samples"  # twice as fast, but 6 calls in 2 blocks decide nothing
    assert head_claim(lines).startswith("INCONCLUSIVE: 1 of 1 head-reduced measurements have too few samples")
    assert head_claim(lines, smoke=True).startswith("no verdict from a smoke run")
