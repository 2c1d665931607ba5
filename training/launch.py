"""A training stage in N processes: the parent side (`run_stage`) and one rank (`python -m training.launch`).

`run_stage("reward" | "ppo", spec, hooks, processes=N)` starts
`python -m torch.distributed.run --nproc-per-node N -m training.launch <stage> <args.json>`
in a process group of its own and waits for it. Every rank runs the same stage function
(train_reward_model / train_ppo) on its shard; rank 0 writes the checkpoint (atomically,
as in one process) and `result.json` beside the args, and prints each progress report as
one line on stdout, which the parent hands to its hooks. The parent polls `hooks.check()`
meanwhile: a cancel, a time limit or any other exception in the parent ends the whole
process group. A rank that raises writes its traceback to `error-rank<R>.txt`; torchrun
then stops the others, and the parent raises StageFailed with that rank's error.

With processes=1 the stage runs in this process, from the same JSON-able spec.

torchrun rather than `accelerate launch`: it ships with torch, its one job here is to start
N processes with the rendezvous variables set (the loops do their own all-reduce, see
training/distributed.py), and `--standalone` needs no further configuration file.
"""
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from training.progress import NO_HOOKS, Cancelled, Hooks

logger = logging.getLogger(__name__)

STAGES = ("reward", "ppo")
PROGRESS_PREFIX = "@rlhf-progress "
RESULT_FILE = "result.json"
REPO_ROOT = Path(__file__).resolve().parent.parent


class StageFailed(RuntimeError):
    """A rank of a distributed stage failed; the message is its error."""


def _call_stage(stage: str, spec: dict, hooks: Hooks) -> dict:
    from training.config import PPOConfig, RewardConfig, config_from_dict

    if stage == "reward":
        from training import reward

        return reward.train_reward_model(
            spec["records"], spec["base_path"], spec["out_dir"], config_from_dict(RewardConfig, spec["config"]),
            hooks, manifest=spec.get("manifest"),
        )
    if stage == "ppo":
        from training import ppo

        return ppo.train_ppo(
            spec["policy_path"], spec["reference_path"], spec["reward_path"], spec["prompts"], spec["out_dir"],
            config_from_dict(PPOConfig, spec["config"]), hooks, manifest=spec.get("manifest"),
        )
    raise ValueError(f"stage: {stage!r} is not one of {', '.join(STAGES)}")


# --- the parent ------------------------------------------------------------------------

def run_stage(stage: str, spec: dict, hooks: Hooks = NO_HOOKS, *, processes: int = 1,
              launcher_args: list[str] | None = None, workdir: str | Path | None = None,
              env: dict | None = None, poll_s: float = 0.5) -> dict:
    """Run a stage in `processes` ranks (1: here) and return its result ({"steps", "summary"}).

    `workdir` holds the args, the result and the ranks' error files (default: a folder beside
    the checkpoint, on the same volume, so ranks on other machines can read it); it is
    removed afterwards. `launcher_args` go to torchrun before the rest (default
    `--standalone`: one machine); `env` replaces the ranks' environment.
    """
    if stage not in STAGES:
        raise ValueError(f"stage: {stage!r} is not one of {', '.join(STAGES)}")
    if processes <= 1:
        return _call_stage(stage, spec, hooks)
    if stage == "ppo":  # refused here, before minutes of process start-up
        from training.config import PPOConfig, config_from_dict
        from training.ppo import check_shares

        check_shares(config_from_dict(PPOConfig, spec["config"]), processes)
    out_dir = Path(spec["out_dir"])
    workdir = Path(workdir) if workdir else out_dir.parent / f".launch-{out_dir.name}"
    workdir.mkdir(parents=True)
    try:
        args_file = workdir / "args.json"
        args_file.write_text(json.dumps(spec))
        command = [sys.executable, "-m", "torch.distributed.run", *(launcher_args or ["--standalone"]),
                   f"--nproc-per-node={processes}", "-m", "training.launch", stage, str(args_file)]
        logger.info("%s stage in %d processes: %s", stage, processes, " ".join(command))
        returncode = _supervise(command, workdir, hooks, env, poll_s)
        if returncode != 0:
            raise StageFailed(_failure_text(stage, workdir, returncode))
        return json.loads((workdir / RESULT_FILE).read_text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _supervise(command: list[str], workdir: Path, hooks: Hooks, env: dict | None, poll_s: float) -> int:
    """Run `command` in its own process group, relay rank 0's progress, kill the group on any exit but its own."""
    with open(workdir / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, cwd=REPO_ROOT, env=env,
                                start_new_session=True, text=True, bufsize=1)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    try:
        while True:
            try:
                line = lines.get(timeout=poll_s)
            except queue.Empty:
                line = None
            if line is not None:
                _relay(line, hooks)
            hooks.check()  # raises Cancelled: the finally below ends the ranks
            if line is None and proc.poll() is not None and not reader.is_alive() and lines.empty():
                return proc.returncode
    finally:
        if proc.poll() is None:
            _kill_group(proc)


def _relay(line: str, hooks: Hooks) -> None:
    if not line.startswith(PROGRESS_PREFIX):
        logger.info("rank output: %s", line.rstrip())
        return
    report = json.loads(line[len(PROGRESS_PREFIX):])
    hooks.progress(report["stage"], report["step"], report["total"], report.get("metrics"))


def _kill_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to torchrun and every rank (one process group), SIGKILL after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


# what a rank that dies in native code (C++ exception, abort, segfault) leaves on stderr
_NATIVE_CRASH = re.compile(r"terminate called|what\(\):|Fatal Python error|Segmentation fault|core dumped|"
                           r"Signal \d+ \(SIG\w+\)|exitcode\s*:\s*-\d+")


def _failure_text(stage: str, workdir: Path, returncode: int) -> str:
    """The first failing rank's error (last line of its traceback), else the lines of the launcher's
    stderr that say how a rank died in native code (wherever they are), then the end of it."""
    errors = sorted(workdir.glob("error-rank*.txt"), key=lambda p: p.stat().st_mtime)
    if errors:
        rank = errors[0].stem.removeprefix("error-rank")
        lines = [line for line in errors[0].read_text().splitlines() if line.strip()]
        return f"{stage} stage failed on rank {rank}: {lines[-1] if lines else 'no message'}"
    log = (workdir / "stderr.log").read_text(errors="replace")
    crash = list(dict.fromkeys(line.strip() for line in log.splitlines() if _NATIVE_CRASH.search(line)))[:12]
    text = "\n".join(part for part in (" | ".join(crash), log[-2000:].strip()) if part)
    return f"{stage} stage failed (launcher exit status {returncode}): {text or 'no output'}"


# --- one rank --------------------------------------------------------------------------

def _print_progress(*, stage: str, step: int, total: int, metrics: dict | None = None) -> None:
    print(PROGRESS_PREFIX + json.dumps({"stage": stage, "step": step, "total": total, "metrics": metrics}),
          flush=True)


def main(argv: list[str]) -> int:
    from training import distributed

    stage, args_file = argv
    workdir = Path(args_file).parent
    rank = int(os.environ.get("RANK", "0"))
    try:
        spec = json.loads(Path(args_file).read_text())
        distributed.init()
        hooks = Hooks(report=_print_progress) if distributed.is_main() else NO_HOOKS
        result = _call_stage(stage, spec, hooks)
        if distributed.is_main():
            tmp = workdir / f".{RESULT_FILE}.{os.getpid()}"
            tmp.write_text(json.dumps(result))
            os.replace(tmp, workdir / RESULT_FILE)
        distributed.barrier()  # every rank leaves the group together (see distributed.barrier)
        return 0
    except Cancelled:
        return 1
    except BaseException:
        (workdir / f"error-rank{rank}.txt").write_text(traceback.format_exc())
        raise
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    # the parent reads progress from stdout; rank 0 must not buffer it
    sys.exit(main(sys.argv[1:]))
