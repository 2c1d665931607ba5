"""Where models run and in which precision: the one place training/ decides it.

The choice comes from the process that uses training/ (the Django settings read
`RLHF_DEVICE` and `RLHF_DTYPE` and call `configure()` at start; a bench script passes
its `--device`); a process that never calls `configure()` reads the same two variables
from its environment. Resolution is lazy: nothing touches CUDA until a model is loaded,
so a prefork parent or a web process that never trains never initialises it.

Device: `auto` is CUDA when torch sees a GPU, else the CPU; `cuda` (or `cuda:N`) on a
machine without one is an error naming RLHF_DEVICE, never a silent CPU run that would
take hours where minutes were planned.

Dtype: `auto` is bf16 on a GPU that supports it and on a CPU with native bf16 dot
products (AVX512-BF16 or AMX: recent Xeons and AMD EPYC Zen 4 and later), fp32 elsewhere
(CPUs without them convert every bf16 operand and run slower than in fp32). On the CPU
the tests and benchmarks run on (an AMD EPYC with AVX512-BF16), a bf16 matmul of a
policy-sized projection takes 0.46x the fp32 time and a decoding step of SmolLM2 at
batch 16 0.46x (it reads half the bytes of weights); BENCHMARKS.md has the figures.
bf16 is the *compute* precision: models that only infer (sampling, the frozen
reference, the reward model scoring PPO's rollouts) and the frozen base under LoRA
adapters are loaded in it, while weights that train stay fp32 and run under
`torch.autocast` — pure-bf16 AdamW loses updates smaller than 1/256 of a weight, which
is most of them.
"""
import contextlib
import os
from dataclasses import dataclass

# torch is imported inside the functions that need it: the web process calls configure()
# at start and must not pay torch's import (seconds) for it.
DEVICES = ("auto", "cpu", "cuda")
DTYPES = {"auto": None, "fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16"}


class DeviceError(RuntimeError):
    """The configured device or dtype cannot be used on this machine."""


@dataclass(frozen=True)
class Placement:
    """A resolved device and compute dtype (a torch.device and a torch.dtype)."""

    device: "torch.device"  # noqa: F821
    dtype: "torch.dtype"  # noqa: F821

    @property
    def autocast_dtype(self):
        """The dtype fp32 trainable weights compute in, or None when they compute in fp32."""
        import torch

        return None if self.dtype == torch.float32 else self.dtype

    def describe(self) -> dict:
        """Plain figures for a round's metrics: device, dtype and the GPU's name."""
        import torch

        name = None
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
        return {"device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."), "gpu_name": name}


_requested: dict = {"device": None, "dtype": None}
_resolved: Placement | None = None


def check_device_name(value: str) -> str:
    """`auto`, `cpu`, `cuda` or `cuda:N`, lower-cased; ValueError naming RLHF_DEVICE otherwise."""
    value = (value or "auto").strip().lower()
    base, _, index = value.partition(":")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise ValueError(f"RLHF_DEVICE={value!r}: must be auto, cpu, cuda or cuda:N")
    return value


def check_dtype_name(value: str) -> str:
    """`auto`, `fp32` or `bf16` (or their long names); ValueError naming RLHF_DTYPE otherwise."""
    value = (value or "auto").strip().lower()
    if value not in DTYPES:
        raise ValueError(f"RLHF_DTYPE={value!r}: must be auto, fp32 or bf16")
    return value


def configure(device: str | None = None, dtype: str | None = None) -> None:
    """Set the requested device and dtype (checked now, resolved at the first model load)."""
    global _resolved
    _requested["device"] = check_device_name(device) if device is not None else None
    _requested["dtype"] = check_dtype_name(dtype) if dtype is not None else None
    _resolved = None


def resolve_device(name: str):
    """The torch device for a requested name; DeviceError when CUDA is asked for but absent."""
    import torch

    name = check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"RLHF_DEVICE={name} but torch sees no CUDA device "
                              f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                              "set RLHF_DEVICE=cpu or auto to train on the CPU")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"RLHF_DEVICE={name} but only {torch.cuda.device_count()} CUDA device(s) exist")
        return torch.device("cuda", index)
    return torch.device("cpu")


def resolve_dtype(name: str, device):
    """The compute dtype for a requested name on `device`; bf16 asked of a GPU without it is an error."""
    import torch

    name = check_dtype_name(name)
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    dtype = getattr(torch, DTYPES[name])
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"RLHF_DTYPE={name} but this GPU ({torch.cuda.get_device_name(device)}) has no bf16; "
                          "set RLHF_DTYPE=fp32 or auto")
    return dtype


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX tiles), as torch detects it."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def placement() -> Placement:
    """The device and dtype every model load and tensor uses (resolved once per configuration)."""
    global _resolved
    if _resolved is None:
        device = resolve_device(_requested["device"] or os.environ.get("RLHF_DEVICE", "auto"))
        dtype = resolve_dtype(_requested["dtype"] or os.environ.get("RLHF_DTYPE", "auto"), device)
        _resolved = Placement(device, dtype)
    return _resolved


def device():
    """The device models and tensors go to."""
    return placement().device


def load_dtype(*, trainable: bool):
    """Weights that train are kept in fp32 (see the module's note); the others in the compute dtype."""
    import torch

    return torch.float32 if trainable else placement().dtype


def autocast():
    """A context in which fp32 weights compute in the configured dtype (a no-op in fp32)."""
    where = placement()
    if where.autocast_dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=where.device.type, dtype=where.autocast_dtype)


def describe() -> dict:
    """{"device", "dtype", "gpu_name"} of the current placement, for metrics and logs."""
    return placement().describe()
