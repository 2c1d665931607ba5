"""Where a project's base models live on disk, and the one-time conversion of the default policy."""
import hashlib
import uuid
from pathlib import Path

from django.conf import settings

from feedback.models import Project

DEFAULT_POLICY_DIRNAME = "smollm2-135m-instruct"


def default_policy_path() -> Path:
    return settings.DATA_DIR / "models" / DEFAULT_POLICY_DIRNAME


def policy_base_path(project: Project | None = None) -> Path:
    chosen = (project.policy_base_model if project else "") or settings.RLHF_POLICY_MODEL
    return Path(chosen).expanduser() if chosen else default_policy_path()


def reward_base_path(project: Project | None = None) -> Path:
    chosen = (project.reward_base_model if project else "") or settings.RLHF_REWARD_MODEL
    if chosen:
        return Path(chosen).expanduser()
    from training.models import minilm_path

    return minilm_path()


def gguf_in(path: Path) -> Path | None:
    """The GGUF file a base model setting points at: the file itself, or the one .gguf in a
    folder without config.json (None when the setting is a safetensors folder)."""
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir() and not (path / "config.json").exists():
        found = sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return found[0]
    return None


def policy_base_source(project: Project | None = None) -> tuple[Path, Path | None]:
    """(the safetensors folder of the round-0 policy, the GGUF to convert into it first or None)."""
    path = policy_base_path(project)
    if path == default_policy_path():
        if (path / "config.json").exists():
            return path, None
        from training.models import smollm2_gguf_path

        return path, smollm2_gguf_path()
    gguf = gguf_in(path)
    if gguf is None:
        return path, None
    # One converted folder per GGUF file, shared by every project that names it.
    digest = hashlib.sha256(str(gguf.resolve()).encode()).hexdigest()[:12]
    target = settings.DATA_DIR / "models" / f"{gguf.stem}-{digest}"
    return target, None if (target / "config.json").exists() else gguf


def policy_base_ensure(project: Project | None = None) -> tuple[Path, bool]:
    """Make sure the policy base exists as safetensors; convert a GGUF (the bundled SmolLM2
    or a local one) once if needed. Slow when it converts: call it from a worker.

    Returns (path, converted_now).
    """
    path, gguf = policy_base_source(project)
    if gguf is None:
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"policy base model {path} has no config.json")
        return path, False
    from training.models import convert_gguf_to_safetensors

    convert_gguf_to_safetensors(gguf, path)
    return path, True


def checkpoint_dir(project: Project, name: str) -> Path:
    """A new folder name for a checkpoint; the suffix keeps names unique even if the
    database is reset while the data dir is kept (checkpoint folders are never reused)."""
    return settings.CHECKPOINT_DIR / f"project-{project.pk}" / f"{name}-{uuid.uuid4().hex[:8]}"
