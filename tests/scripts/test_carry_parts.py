"""scripts/carry_parts.py: onnxruntime-gpu's wheel over several device calls, each under the 64 MiB a call carries."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WHEEL = ROOT / "reports" / "cuda" / "ortgpu-wheel.json"  # the wheel's name, size and SHA-256 as PyPI serves it


def load_script():
    spec = importlib.util.spec_from_file_location("carry_parts", ROOT / "scripts" / "carry_parts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_piece_of_the_wheel_travels_beside_the_working_tree_under_the_limit():
    mod = load_script()
    wheel = json.loads(WHEEL.read_text())
    tree = mod.tree_bytes()
    pieces = mod.plan(wheel["bytes"], tree)
    assert sum(pieces) == wheel["bytes"] and len(pieces) >= 4  # 255 MB cannot go in fewer
    limit = mod.LIMIT_MIB * mod.MIB
    assert all(p + tree + 64 * 1024 <= limit for p in pieces), (tree, pieces)  # + the manifest with the last
    assert max(pieces) - min(pieces) <= 1  # nearly equal: no call waits on one big piece
    fewer = -(-wheel["bytes"] // (len(pieces) - 1))  # the largest piece with one call less
    assert fewer + tree + 64 * 1024 > (mod.LIMIT_MIB - mod.MARGIN_MIB) * mod.MIB  # as few calls as fit: no call wasted


def test_split_and_join_give_back_the_file_and_refuse_a_missing_or_changed_piece(tmp_path):
    mod = load_script()
    data = bytes(range(256)) * (9 * 4096)  # 9 MiB
    (tmp_path / "w.whl").write_bytes(data)
    folders = mod.split(tmp_path / "w.whl", tmp_path, tree=0, limit_mib=mod.MARGIN_MIB + 3)
    assert [f.name for f in folders] == [".parts-01", ".parts-02", ".parts-03", ".parts-04"]
    assert all((f / f"part-{k:02d}").stat().st_size < 3 * mod.MIB for k, f in enumerate(folders, 1))
    assert mod.join(tmp_path, tmp_path / "out" / "w.whl").read_bytes() == data
    with pytest.raises(SystemExit, match="already holds .parts-"):
        mod.split(tmp_path / "w.whl", tmp_path, tree=0, limit_mib=mod.MARGIN_MIB + 3)  # never overwrites pieces
    piece = folders[1] / "part-02"
    piece.write_bytes(piece.read_bytes()[:-1] + b"x")
    with pytest.raises(SystemExit, match="part-02 differs from the manifest"):
        mod.join(tmp_path, tmp_path / "again.whl")
    piece.unlink()
    with pytest.raises(SystemExit, match="part-02 is missing"):
        mod.join(tmp_path, tmp_path / "again.whl")
    assert not (tmp_path / "again.whl").exists()


def test_a_tree_that_leaves_no_room_is_refused():
    mod = load_script()
    with pytest.raises(SystemExit, match="leaves no room"):
        mod.plan(255 * mod.MIB, tree=60 * mod.MIB)
