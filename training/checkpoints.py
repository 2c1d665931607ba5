"""Checkpoint folders: atomic writes, content hashes and the manifest inside each.

A checkpoint is a folder. It is written under a temporary name beside its final place
and renamed only once complete, so a crash never leaves a half-written checkpoint under
a name anyone reads. The sha256 covers every file (names and bytes, in sorted order).
"""
import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

MANIFEST = "rlhf_checkpoint.json"


def directory_sha256(path: str | Path) -> str:
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_directory(final_path: str | Path):
    """Yield a temporary folder; on success it becomes `final_path` in one rename.

    On any error the temporary folder is removed and `final_path` is left untouched.
    Refuses to overwrite an existing checkpoint: checkpoint paths are never reused.
    """
    final = Path(final_path)
    if final.exists():
        raise FileExistsError(f"checkpoint folder already exists: {final}")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    for file in root.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def write_manifest(folder: str | Path, manifest: dict) -> None:
    Path(folder, MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder, MANIFEST)
    if not path.exists():
        return {}
    return json.loads(path.read_text())
