"""A policy checkpoint as a standard Hugging Face folder, and a folder as a streamed .tar.

PPO checkpoints are LoRA adapters plus a pointer to their base (DESIGN.md); anyone
outside this app wants one self-contained model. `export_merged` folds the adapters into
the base weights and saves safetensors, the tokenizer and its chat template, so
`AutoModelForCausalLM.from_pretrained(folder)` loads it offline with no peft installed.
"""
import shutil
import tarfile
import time
from pathlib import Path

from training.checkpoints import atomic_directory

GGUF_UNAVAILABLE = (
    "GGUF: not produced. llama.cpp's converter (convert_hf_to_gguf.py) is not installed on this "
    "server, and the `gguf` package writes GGUF files but cannot convert a Hugging Face model. "
    "Run `python convert_hf_to_gguf.py <this folder>` from a llama.cpp checkout to get one."
)


def gguf_converter() -> str | None:
    """The path of llama.cpp's HF→GGUF converter when it is installed here, else None."""
    for name in ("convert_hf_to_gguf.py", "convert_hf_to_gguf", "convert-hf-to-gguf.py"):
        found = shutil.which(name)
        if found:
            return found
    return None


def export_merged(checkpoint_path: str | Path, out_dir: str | Path) -> Path:
    """Write `checkpoint_path` (full or LoRA) as a merged model folder at `out_dir` (atomically)."""
    import torch

    from training.models import load_policy

    # merges LoRA adapters into the base; fp32 on the CPU whatever the worker trains on, so the
    # exported weights are the full-precision ones
    model, tokenizer = load_policy(checkpoint_path, device="cpu", dtype=torch.float32)
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if getattr(tokenizer, "chat_template", None) and not (tmp / "chat_template.jinja").exists():
            (tmp / "chat_template.jinja").write_text(tokenizer.chat_template)
    return out


def _header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def tar_stream(folder: str | Path, *, prefix: str, extra: dict[str, bytes] | None = None, chunk_size: int = 1 << 20):
    """Yield a .tar of `folder` (under `prefix/`) plus `extra` in-memory files, chunk by chunk.

    Written block by block (header, data, padding) rather than through tarfile.addfile,
    which copies a whole member before returning: a 500 MB safetensors file goes out in
    `chunk_size` pieces and never sits in memory. `tarfile` reads the result.
    """
    extra = extra or {}
    now = time.time()
    for name, data in sorted(extra.items()):
        yield _header(f"{prefix}/{name}", len(data), now) + data + _padding(len(data))
    for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        name = file.relative_to(folder).as_posix()
        if name in extra:
            continue
        size = file.stat().st_size
        yield _header(f"{prefix}/{name}", size, file.stat().st_mtime)
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(chunk_size), b""):
                yield chunk
        yield _padding(size)
    # End of archive: two zero blocks, padded to a whole record as tarfile writes it.
    yield b"\0" * tarfile.RECORDSIZE
