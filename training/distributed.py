"""Data parallelism for the reward model and PPO: the few collective steps, no-ops in one process.

`python -m torch.distributed.run` (torchrun) starts N copies of `training.launch`; each
calls `init()`, takes its shard of every batch, and averages gradients with the others
before each optimizer step, so the N replicas stay identical, as DDP would keep them. An
explicit all-reduce of one flat gradient buffer rather than wrapping the model in DDP:
PPO samples with `generate` and switches LoRA adapters off for the reference, which a DDP
wrapper would have to be unwrapped for, and both loops then read the same in one process
and in N (every function here returns at once when torch.distributed is not initialised).

Backend: NCCL with one GPU per process (cuda:LOCAL_RANK) when the device is CUDA, gloo on
the CPU (how CI proves the path on two cores).
"""
import os

import torch
import torch.distributed as dist


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the process group torchrun described in the environment; pin this rank's GPU."""
    from training import device as placement

    where = placement.resolve_device(os.environ.get("RLHF_DEVICE", "auto"))
    if where.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise placement.DeviceError(f"LOCAL_RANK {local}: only {torch.cuda.device_count()} CUDA device(s); "
                                        "RLHF_TRAIN_PROCESSES must not exceed the GPUs of this machine")
        torch.cuda.set_device(local)
        placement.configure(device=f"cuda:{local}", dtype=os.environ.get("RLHF_DTYPE", "auto"))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in one process).

    A rank that leaves the process group while another is still working (rank 0 writing
    the checkpoint after the other ranks returned) can die in gloo's C++ at exit ("terminate
    called without an active exception", seen once in CI), failing a stage that had
    succeeded: ranks that succeeded meet here first. A rank that failed does not: its peers
    would never reach it.
    """
    if active():
        dist.barrier()


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


def shard(items: list) -> list:
    """This rank's share of `items`: every world_size-th one, starting at its rank."""
    return list(items[rank()::world_size()])


def average_gradients(parameters: list) -> None:
    """Replace every gradient by its mean over the ranks (one all-reduce of a flat buffer).

    A parameter without a gradient on this rank counts as a zero gradient, so every rank
    takes part in the same collective whatever its shard touched.
    """
    if world_size() == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p, g in zip(parameters, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def sum_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each figure summed over the ranks (callers divide by the whole batch's count for a mean)."""
    if world_size() == 1 or not values:
        return values
    keys = sorted(values)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    buf = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(buf)
    return {k: float(buf[i]) for i, k in enumerate(keys)}


def broadcast_parameters(parameters: list) -> None:
    """Give every rank rank 0's values (freshly initialised LoRA adapters are random per rank)."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for p in parameters:
            dist.broadcast(p.data, src=0)
