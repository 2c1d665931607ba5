"""Where a project's base models live on disk, and the one-time conversion of the default policy."""
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


def policy_base_ensure(project: Project | None = None) -> tuple[Path, bool]:
    """Make sure the policy base exists; convert the bundled SmolLM2 GGUF once if needed.

    Returns (path, converted_now).
    """
    path = policy_base_path(project)
    if (path / "config.json").exists():
        return path, False
    if path != default_policy_path():
        raise FileNotFoundError(f"policy base model {path} has no config.json")
    from training.models import convert_gguf_to_safetensors, smollm2_gguf_path

    convert_gguf_to_safetensors(smollm2_gguf_path(), path)
    return path, True


def checkpoint_dir(project: Project, name: str) -> Path:
    """A new folder name for a checkpoint; the suffix keeps names unique even if the
    database is reset while the data dir is kept (checkpoint folders are never reused)."""
    return settings.CHECKPOINT_DIR / f"project-{project.pk}" / f"{name}-{uuid.uuid4().hex[:8]}"
