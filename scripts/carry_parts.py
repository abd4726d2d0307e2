"""A file too big for one device call, carried in parts over consecutive calls (issue 27: onnxruntime-gpu's 255 MB
wheel against the 64 MiB one call may bring along).

    python3 scripts/carry_parts.py plan FILE_OR_SIZE_BYTES [--limit-mib 64]   # how many pieces, how big, the calls
    python3 scripts/carry_parts.py split FILE [--limit-mib 64]                # writes .parts-01/ ... .parts-NN/
    python3 scripts/carry_parts.py join OUT_FILE                              # on the device, in the last call

A device call carries the working tree (tracked and not-ignored files) plus the ignored paths it names, 64 MiB in
all; ignored paths a call brought stay on the machine while it is kept warm (about 30 s after each call). So each
piece goes in a folder of its own (`.parts-01/`, `.parts-02/`, ...; ignored), one folder per call, in consecutive
calls; the last piece's folder also holds the manifest (name, size, SHA-256 of the whole and of each piece), and
`join` there checks every piece and the whole before writing the file. Piece size: the limit, less the working tree
as it is now, less a safety margin (MARGIN_MIB) for files that change before the calls.

On the device, per call (carry one folder each; first time one call alone to see how long a piece takes to travel,
and go on only if pieces x that time fits in the device time left):
    run(command="ls -l .parts-*", carry=[".parts-01"])            ... up to .parts-NN, then in the last call:
    run(command="python3 scripts/carry_parts.py join /tmp/w/onnxruntime_gpu.whl &&
                 pip install --no-deps --target /tmp/ortgpu /tmp/w/onnxruntime_gpu.whl && ...", carry=[".parts-NN"])
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 2**20
LIMIT_MIB = 64  # what one device call carries: the working tree and the carried folders together
MARGIN_MIB = 4  # room for the tree to grow between planning and the calls (a note, a result file)
PREFIX = ".parts-"  # ignored in .gitignore: the pieces never land in a commit
MANIFEST = "manifest.json"


def tree_bytes(root: Path = ROOT) -> int:
    """Bytes of the working tree a device call copies: tracked and untracked files git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, capture_output=True, text=True, check=True
    )
    files = [root / f for f in listed.stdout.split("\0") if f]
    return sum(f.stat().st_size for f in files if f.is_file())


def plan(size: int, tree: int, limit_mib: float = LIMIT_MIB, margin_mib: float = MARGIN_MIB) -> list[int]:
    """Piece sizes (bytes, in order) for a file of `size` bytes beside a working tree of `tree` bytes: as few pieces
    as fit, of nearly equal size. Fails when the tree alone leaves no room."""
    room = int((limit_mib - margin_mib) * MIB) - tree - 64 * 1024  # the manifest rides with the last piece
    if room <= MIB:
        raise SystemExit(f"the working tree ({tree / MIB:.1f} MiB) leaves no room under {limit_mib} MiB for a piece")
    count = max(1, math.ceil(size / room))
    base, extra = divmod(size, count)
    return [base + (k < extra) for k in range(count)]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(file: Path, root: Path, tree: int, limit_mib: float = LIMIT_MIB) -> list[Path]:
    """Write the pieces into root/.parts-01/ ... and the manifest beside the last; refuses to overwrite pieces."""
    if any(root.glob(PREFIX + "*")):
        raise SystemExit(f"{root} already holds {PREFIX}* folders; remove them first (they are this script's own)")
    data = file.read_bytes()
    sizes = plan(len(data), tree, limit_mib)
    folders, start, pieces = [], 0, []
    for k, n in enumerate(sizes, 1):
        folder = root / f"{PREFIX}{k:02d}"
        folder.mkdir()
        piece = data[start : start + n]
        (folder / f"part-{k:02d}").write_bytes(piece)
        pieces.append({"file": f"{folder.name}/part-{k:02d}", "bytes": n, "sha256": _sha256(piece)})
        folders.append(folder)
        start += n
    manifest = {"name": file.name, "bytes": len(data), "sha256": _sha256(data), "pieces": pieces}
    (folders[-1] / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return folders


def join(root: Path, out: Path) -> Path:
    """Check every piece against the manifest and write the whole file (nothing is written if one is missing or
    differs)."""
    found = sorted(root.glob(f"{PREFIX}*/{MANIFEST}"))
    if len(found) != 1:
        raise SystemExit(f"expected one {PREFIX}*/{MANIFEST} under {root}, found {len(found)}: carry the last piece")
    manifest = json.loads(found[0].read_text())
    parts = []
    for piece in manifest["pieces"]:
        path = root / piece["file"]
        if not path.is_file():
            raise SystemExit(f"{piece['file']} is missing: it travels in its own call, before the last one")
        data = path.read_bytes()
        if len(data) != piece["bytes"] or _sha256(data) != piece["sha256"]:
            raise SystemExit(f"{piece['file']} differs from the manifest ({len(data)} bytes): carry it again")
        parts.append(data)
    whole = b"".join(parts)
    if _sha256(whole) != manifest["sha256"]:
        raise SystemExit("the joined file's SHA-256 differs from the manifest's")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(whole)
    tmp.replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan", help="piece sizes and calls for a file (or a size in bytes)")
    p.add_argument("file")
    s = sub.add_parser("split", help="write the pieces into .parts-NN/ folders")
    s.add_argument("file", type=Path)
    j = sub.add_parser("join", help="check and join the pieces (on the device)")
    j.add_argument("out", type=Path)
    for q in (p, s):
        q.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    args = ap.parse_args()
    if args.command == "join":
        print(f"joined {join(ROOT, args.out)}")
        return 0
    tree = tree_bytes()
    if args.command == "plan":
        size = Path(args.file).stat().st_size if Path(args.file).is_file() else int(args.file)
        sizes = plan(size, tree, args.limit_mib)
        print(f"working tree {tree / MIB:.1f} MiB; {len(sizes)} pieces of at most {max(sizes) / MIB:.1f} MiB")
        for k, n in enumerate(sizes, 1):
            print(f"  call {k}: carry {PREFIX}{k:02d} ({n / MIB:.1f} MiB; with the tree {(n + tree) / MIB:.1f} MiB)")
        return 0
    folders = split(args.file, ROOT, tree, args.limit_mib)
    print(f"{len(folders)} pieces: {', '.join(f.name for f in folders)} (manifest in {folders[-1].name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
