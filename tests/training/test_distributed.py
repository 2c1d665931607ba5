"""The reward model and PPO in two processes (torchrun, gloo on the CPU): the path a multi-GPU worker takes.

Each launch starts torchrun and two ranks that import torch and transformers, about 10-30 s
on a busy 2-core machine; the tests therefore keep models tiny and steps few.
"""
import json
import os
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_PROMPTS, toy_preferences
from training.config import PPOConfig, RewardConfig, config_to_dict
from training.launch import StageFailed, run_stage
from training.models import load_policy, load_reward_model
from training.progress import Cancelled, Hooks
from training.reward import score


def _reward_spec(tiny_models, out: Path, **config) -> dict:
    # 19 training pairs at batch 8: the last batch of 3 splits 2/1 between the ranks
    return {"records": toy_preferences(24), "base_path": tiny_models["reward"], "out_dir": str(out),
            "config": config_to_dict(RewardConfig(**{"epochs": 2, "min_steps": 1, "batch_size": 8,
                                                     "learning_rate": 2e-3, "eval_fraction": 0.2, **config}))}


def _recorder():
    reports = []
    return reports, Hooks(report=lambda **report: reports.append(report))


def _processes_running(marker: str) -> list[int]:
    """Pids whose command line mentions `marker` (a test's own folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_reward_model_in_two_processes_matches_one_process(tiny_models, tmp_path, full_precision):
    single = run_stage("reward", _reward_spec(tiny_models, tmp_path / "one"))
    reports, hooks = _recorder()
    double = run_stage("reward", _reward_spec(tiny_models, tmp_path / "two"), hooks, processes=2)

    # rank 0's progress reached the parent's hooks, step by step
    steps = [r["step"] for r in reports if r["stage"] == "reward"]
    assert steps == list(range(len(single["steps"]) + 1))
    # The same pairs make each step in both runs (each rank takes its shard of the same batch,
    # and the shards' losses add up to the batch's), so the results agree up to float
    # rounding: the gradient is summed in another order, and each shard is padded to its own
    # longest pair, which changes the shapes the matrix products are computed in.
    assert len(double["steps"]) == len(single["steps"])
    for a, b in zip(single["steps"], double["steps"]):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)
        assert a["accuracy"] == pytest.approx(b["accuracy"])
    assert double["summary"]["eval_accuracy"] == single["summary"]["eval_accuracy"]
    assert double["summary"]["score_scale"] == pytest.approx(single["summary"]["score_scale"], rel=1e-3)

    # the checkpoint rank 0 wrote loads and scores fresh text as the single-process one does
    texts = ["the good cat sat", "the bad cat sat"]
    scores = [score(*load_reward_model(tmp_path / name), ["say something nice"] * 2, texts) for name in ("one", "two")]
    assert torch.allclose(scores[0], scores[1], atol=1e-3)
    assert json.loads((tmp_path / "two" / "rlhf_checkpoint.json").read_text())["kind"] == "reward"
    assert not list(tmp_path.glob(".launch-*"))  # the args and result files are gone


def test_ppo_in_two_processes_writes_a_policy_that_loads(tiny_models, tmp_path):
    reports, hooks = _recorder()
    result = run_stage("ppo", {
        "policy_path": tiny_models["policy"], "reference_path": tiny_models["policy"],
        "reward_path": tiny_models["reward"], "prompts": TINY_PROMPTS, "out_dir": str(tmp_path / "policy"),
        "config": config_to_dict(PPOConfig(steps=2, batch_size=4, mini_batch_size=2, max_new_tokens=6)),
        "manifest": {"round": 1},
    }, hooks, processes=2)

    assert result["summary"]["updates"] == 2
    # two updates, then a rollout that measures the trained policy (relayed by rank 0 too)
    assert [r["step"] for r in reports] == [0, 1, 2, 2] and reports[-1]["metrics"]["check"] is True
    # the rollout figures are the whole batch's: episodes/s counts both ranks' episodes
    assert all(r["metrics"]["episodes_per_s"] > 0 for r in reports[1:3])
    model, tokenizer = load_policy(tmp_path / "policy")
    assert model is not None and tokenizer is not None
    manifest = json.loads((tmp_path / "policy" / "rlhf_checkpoint.json").read_text())
    assert manifest["kind"] == "policy" and manifest["round"] == 1


def test_ppo_batch_that_two_processes_cannot_share_fails_naming_the_setting(tiny_models, tmp_path):
    # refused before any process starts
    with pytest.raises(ValueError, match=r"ppo.batch_size: 3 cannot be shared equally by 2 training processes"):
        run_stage("ppo", {
            "policy_path": tiny_models["policy"], "reference_path": tiny_models["policy"],
            "reward_path": tiny_models["reward"], "prompts": TINY_PROMPTS, "out_dir": str(tmp_path / "policy"),
            "config": config_to_dict(PPOConfig(steps=1, batch_size=3, mini_batch_size=1, max_new_tokens=4)),
        }, processes=2)
    assert not (tmp_path / "policy").exists()


def _fail_rank_1(tiny_models, tmp_path, crash_body: str) -> StageFailed:
    """Run a 2-rank reward stage whose rank 1 runs `crash_body` instead of training; the error it fails with."""
    hook = tmp_path / "faults"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os, sys\n"
        "if os.environ.get('RANK') == '1':\n"
        "    import training.reward\n"
        "    def crash(*args, **kwargs):\n"
        + "".join(f"        {line}\n" for line in crash_body.splitlines())
        + "    training.reward.train_reward_model = crash\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(repo)])}
    with pytest.raises(StageFailed) as failed:
        run_stage("reward", _reward_spec(tiny_models, tmp_path / "rm"), processes=2, env=env)
    assert not (tmp_path / "rm").exists()
    assert _processes_running(str(tmp_path)) == []
    return failed.value


def test_a_failing_rank_fails_the_stage_with_its_error(tiny_models, tmp_path):
    # rank 1 alone crashes as it starts training (as a rank whose GPU fails would)
    failed = _fail_rank_1(tiny_models, tmp_path, "raise RuntimeError('rank 1 lost its device (simulated)')")
    assert str(failed) == "reward stage failed on rank 1: RuntimeError: rank 1 lost its device (simulated)"


def test_a_rank_dying_in_native_code_fails_the_stage_with_how_it_died(tiny_models, tmp_path):
    # rank 1 aborts the way a C++ exception does (message, then SIGABRT), after more stderr
    # noise than the 2,000 characters of the log's end that a failure shows
    message = str(_fail_rank_1(tiny_models, tmp_path, (
        "sys.stderr.write(\"terminate called after throwing an instance of 'c10::Error'\\n\")\n"
        "sys.stderr.write('  what():  gloo lost its peer (simulated)\\n')\n"
        "for i in range(100):\n"
        "    sys.stderr.write(f'warning {i}: ' + 'x' * 60 + '\\n')\n"
        "sys.stderr.flush()\n"
        "os.abort()")))
    assert message.startswith("reward stage failed (launcher exit status ")
    assert "terminate called after throwing an instance of 'c10::Error'" in message
    assert "what():  gloo lost its peer (simulated)" in message
    assert "warning 3:" not in message  # the noise is not what it shows first


def test_cancel_ends_every_rank_and_writes_no_checkpoint(tiny_models, tmp_path):
    reports = []
    hooks = Hooks(report=lambda **report: reports.append(report), should_stop=lambda: len(reports) >= 2)

    with pytest.raises(Cancelled):
        run_stage("reward", _reward_spec(tiny_models, tmp_path / "rm", epochs=100), hooks, processes=2)

    assert 2 <= len(reports) < 50
    assert not (tmp_path / "rm").exists()
    assert _processes_running(str(tmp_path)) == []
