"""Checkpoint folders: atomic writes, content hashes and the manifest inside each.

A checkpoint is a folder. It is written under a temporary name beside its final place
and renamed only once complete, so a crash never leaves a half-written checkpoint under
a name anyone reads. The sha256 covers every file (names and bytes, in sorted order).
"""
import hashlib
import json
import os
import shutil
import threading
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


def directory_fingerprint(path: str | Path) -> tuple:
    """What a file system says about a folder's files without reading them: names, sizes,
    modification times and inodes. Any write, truncation or swapped-in file changes it."""
    root = Path(path)
    entries = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        st = file.stat()
        entries.append((file.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
    return tuple(entries)


# path -> (fingerprint, sha256): hashing a GPU-sized checkpoint reads gigabytes, so a process
# hashes a folder again only when its fingerprint changed (per process, never persisted).
_hashed: dict[str, tuple[tuple, str]] = {}
_hashed_lock = threading.Lock()


def cached_directory_sha256(path: str | Path) -> str:
    """`directory_sha256(path)`, recomputed only when the folder's fingerprint changed since
    this process last hashed it. A file replaced by one of the same size, mtime, inode and
    ctime would go unnoticed, which no ordinary copy, truncation or rename achieves."""
    key = str(Path(path).resolve())
    fingerprint = directory_fingerprint(path)
    with _hashed_lock:
        known = _hashed.get(key)
    if known is not None and known[0] == fingerprint:
        return known[1]
    sha = directory_sha256(path)
    # the fingerprint taken before hashing: a write during the hash changes it, so it is hashed again next time
    with _hashed_lock:
        _hashed[key] = (fingerprint, sha)
    return sha


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
