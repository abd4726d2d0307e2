from fractions import Fraction
from pathlib import Path

import pytest

from kdbench.core.errors import KdbenchError
from kdbench.zoo.students import load_zoo, parse_spec, resolve, select
from kdbench.zoo.teacher import TeacherShape

ROBERTA = TeacherShape("roberta-base", "roberta", 12, 12, 768, 3072)
MINILM = TeacherShape("all-MiniLM-L6-v2", "bert", 6, 12, 384, 1536)


def spec(**fields):
    return parse_spec(fields, "test.toml", "s")


def test_integer_is_absolute_and_float_or_ratio_is_fraction():
    s = spec(layers=3, heads="1/3", hidden=0.5)
    assert s.layers == 3 and s.heads == Fraction(1, 3) and s.hidden == Fraction(1, 2)
    shape = resolve(s, ROBERTA)
    assert (shape.layers, shape.heads, shape.hidden, shape.head_dim) == (3, 4, 384, 96)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("3L", (3, 12, 64, 768, 3072)),
        ("6L", (6, 12, 64, 768, 3072)),
        ("9L", (9, 12, 64, 768, 3072)),
        ("4AH", (12, 4, 192, 768, 3072)),
        ("8AH", (12, 8, 96, 768, 3072)),
        ("384D", (12, 12, 32, 384, 1536)),
        ("516D", (12, 12, 43, 516, 2064)),
        ("6L_384D", (6, 12, 32, 384, 1536)),
        ("4AH_pruned", (12, 4, 64, 768, 3072)),
        ("8AH_pruned", (12, 8, 64, 768, 3072)),
        ("1AH", (12, 1, 768, 768, 3072)),
        ("6AH", (12, 6, 128, 768, 3072)),
    ],
)
def test_shipped_zoo_gives_the_paper_shapes_for_roberta_base(name, expected):
    shape = resolve(load_zoo()[name], ROBERTA)
    assert (shape.layers, shape.heads, shape.head_dim, shape.hidden, shape.ffn) == expected


def test_pruned_students_shrink_attention_only():
    shape = resolve(load_zoo()["4AH_pruned"], ROBERTA)
    assert shape.pruned and shape.attn_dim == 256 and shape.config_heads == 12
    assert not resolve(load_zoo()["4AH"], ROBERTA).pruned


def test_shipped_zoo_applies_to_another_teacher_with_stated_rounding():
    zoo = load_zoo()
    shapes = {n: resolve(s, MINILM) for n, s in zoo.items()}
    assert shapes["3L"].layers == 2  # 6 x 0.25 = 1.5 rounds half up
    assert shapes["516D"].hidden == 264 and shapes["516D"].head_dim == 22  # 258 -> nearest multiple of 12
    assert shapes["4AH_pruned"].attn_dim == 4 * 32


def test_default_ffn_keeps_the_teachers_ratio():
    assert resolve(spec(hidden=0.5), ROBERTA).ffn == 1536
    assert resolve(spec(ffn=1000), ROBERTA).ffn == 1000
    assert resolve(spec(ffn=0.5), ROBERTA).ffn == 1536
    assert resolve(spec(ffn="2x", hidden=0.5), ROBERTA).ffn == 768


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"layers": 0}, "'layers' is 0; sizes must be positive"),
        ({"hidden": -64}, "'hidden' is -64; sizes must be positive"),
        ({"heads": 0.0}, "'heads' is 0.0; sizes must be positive"),
        ({"layers": 1.5}, "at most 1"),
        ({"layers": "half"}, "allowed: a positive integer"),
        ({"layers": True}, "allowed"),
        ({"hiden": 0.5}, "unknown field 'hiden' (did you mean 'hidden'?)"),
        ({"group": "papers"}, "field 'group' is 'papers'; allowed: paper, heads, pruned, custom"),
        ({"head_dim": "wide"}, "field 'head_dim'"),
        ({"name": ""}, "field 'name'"),
        ({"ffn": "0x"}, "multiple must be positive"),
    ],
)
def test_bad_fields_name_the_field_and_the_allowed_values(fields, message):
    with pytest.raises(KdbenchError, match=None) as err:
        spec(**fields)
    assert message in str(err.value) and "test.toml" in str(err.value)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"heads": 5}, "5 heads do not divide hidden size 768"),
        ({"layers": 13}, "more than the teacher's 12"),
        ({"heads": 13, "head_dim": "teacher"}, "exceed hidden size"),
        ({"head_dim": 100, "heads": 2}, "does not divide hidden size"),
    ],
)
def test_students_the_teacher_cannot_host_are_rejected(fields, message):
    with pytest.raises(KdbenchError) as err:
        resolve(spec(**fields), ROBERTA)
    assert message in str(err.value)


def test_zoo_fails_loudly_on_a_malformed_file(tmp_path: Path):
    (tmp_path / "good.toml").write_text("layers = 0.5\n")
    (tmp_path / "broken.toml").write_text("layers = [0.5\n")
    with pytest.raises(KdbenchError, match="broken.toml: not valid TOML"):
        load_zoo(tmp_path)


def test_zoo_rejects_duplicate_names_and_empty_folders(tmp_path: Path):
    with pytest.raises(KdbenchError, match="holds no"):
        load_zoo(tmp_path)
    (tmp_path / "a.toml").write_text('name = "x"\n')
    (tmp_path / "b.toml").write_text('name = "x"\n')
    with pytest.raises(KdbenchError, match="also used by"):
        load_zoo(tmp_path)


def test_a_dropped_in_file_is_seen_and_named_by_its_stem(tmp_path: Path):
    (tmp_path / "mine.toml").write_text("layers = 2\n")
    zoo = load_zoo(tmp_path)
    assert list(zoo) == ["mine"] and zoo["mine"].group == "custom"


def test_selection_by_group_name_and_all_with_did_you_mean():
    zoo = load_zoo()
    assert [s.name for s in select(zoo, "paper")] == ["3L", "4AH", "6L", "6L_384D", "8AH", "9L", "384D", "516D"]
    assert {s.name for s in select(zoo, "pruned,4AH")} == {"4AH_pruned", "8AH_pruned", "4AH"}
    assert len(select(zoo, "all")) == len(zoo)
    with pytest.raises(KdbenchError, match="unknown student '4Ah' \\(did you mean '4AH'\\?\\)"):
        select(zoo, "4Ah")
