"""The exports load in the tools people train with: TRL's RewardTrainer and DPOTrainer run a step."""
import json

import pytest

from tests.feedback.test_api import _client, _vote_everything
from tests.helpers import make_project

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def trl_export(tiny_models, admin_user, alice, tmp_path):
    project = make_project(tiny_models, first_batch=6)
    _vote_everything(project, [(alice, ["a", "b", "a", "b", "a", "b"])])

    def export(fmt: str):
        response = _client(admin_user).get(f"/api/v1/projects/{project.pk}/export/?format={fmt}")
        path = tmp_path / f"{fmt}.jsonl"
        path.write_bytes(b"".join(response.streaming_content))
        return path

    return export


def _dataset(path):
    import datasets

    return datasets.load_dataset("json", data_files=str(path), split="train")


def test_reward_trainer_takes_a_step_on_the_trl_export(trl_export, tiny_models, tmp_path):
    trl = pytest.importorskip("trl")
    from training.models import load_reward_model

    model, tokenizer = load_reward_model(tiny_models["reward"])
    before = {k: v.clone() for k, v in model.named_parameters()}
    args = trl.RewardConfig(output_dir=str(tmp_path / "rm"), max_steps=1, per_device_train_batch_size=2,
                            report_to=[], save_strategy="no", logging_steps=1, use_cpu=True)
    trainer = trl.RewardTrainer(model=model, args=args, train_dataset=_dataset(trl_export("trl")), processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1
    assert any(not (p == before[k]).all() for k, p in model.named_parameters())


def test_dpo_trainer_takes_a_step_on_the_trl_export(trl_export, tiny_models, tmp_path):
    trl = pytest.importorskip("trl")
    from training.models import load_policy

    model, tokenizer = load_policy(tiny_models["policy"], trainable=True)
    model.train()
    args = trl.DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2,
                         report_to=[], save_strategy="no", logging_steps=1, use_cpu=True, max_length=64)
    trainer = trl.DPOTrainer(model=model, args=args, train_dataset=_dataset(trl_export("trl-conversational")),
                             processing_class=tokenizer)
    assert trainer.train().global_step == 1


def test_openai_rows_follow_the_documented_field_rules(trl_export):
    for line in trl_export("openai").read_text().splitlines():
        row = json.loads(line)
        assert set(row) == {"input", "preferred_output", "non_preferred_output"}
        messages = row["input"]["messages"]
        assert messages and all(set(m) == {"role", "content"} and m["role"] in ("system", "user", "assistant")
                                for m in messages)
        assert messages[-1]["role"] == "user"
        for key in ("preferred_output", "non_preferred_output"):
            assert len(row[key]) == 1 and row[key][0]["role"] == "assistant" and isinstance(row[key][0]["content"], str)
