"""Exporting a policy: a .tar of a Hugging Face folder that loads offline and answers as the checkpoint does."""
import io
import tarfile

import pytest
import torch
from rest_framework.authtoken.models import Token
from transformers import AutoModelForCausalLM, AutoTokenizer

from feedback.models import Checkpoint, TrainingRound
from feedback.services.checkpoints import checkpoint_register
from tests.helpers import TINY_PROMPTS, make_project, toy_preferences
from training.config import PPOConfig, RewardConfig
from training.generation import encode_prompts
from training.models import load_policy
from training.ppo import train_ppo
from training.reward import train_reward_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def ppo_checkpoint(tiny_models, tmp_path):
    """A project with a round-1 LoRA policy trained by PPO on the tiny models."""
    project = make_project(tiny_models, name="Export me", first_batch=0)
    root = Checkpoint.objects.get(project=project)
    train_reward_model(toy_preferences(8), tiny_models["reward"], tmp_path / "rm", RewardConfig(epochs=1))
    train_ppo(tiny_models["policy"], tiny_models["policy"], tmp_path / "rm", TINY_PROMPTS, tmp_path / "p1",
              PPOConfig(steps=1, batch_size=4, mini_batch_size=2, ppo_epochs=1, max_new_tokens=4, learning_rate=5e-2))
    training_round = TrainingRound.objects.create(
        project=project, number=1, status=TrainingRound.Status.DONE, config={"ppo": {"steps": 1}},
        snapshot={"votes": 12, "pairs": 8, "vote_ids_sha256": "ab" * 32},
        metrics={"reward_summary": {"eval_accuracy": 0.75}, "ppo_summary": {"final_kl": 0.0123}})
    checkpoint = checkpoint_register(project=project, kind=Checkpoint.Kind.POLICY, path=tmp_path / "p1",
                                     name="round 1", parent=root, produced_by=training_round)
    return checkpoint


def _untar(content: bytes, dest):
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:") as tar:
        names = tar.getnames()
        tar.extractall(dest, filter="data")
    return names


def test_api_export_loads_offline_and_answers_like_the_checkpoint(client, admin_user, ppo_checkpoint, tmp_path):
    assert (ppo_checkpoint.path and (tmp_path / "p1" / "adapter_config.json").exists())  # a LoRA checkpoint
    token = Token.objects.create(user=admin_user)
    response = client.get(f"/api/v1/checkpoints/{ppo_checkpoint.pk}/export/",
                          HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-tar"
    assert response.streaming
    names = _untar(b"".join(response.streaming_content), tmp_path / "out")
    folder = tmp_path / "out" / f"export-me-checkpoint-{ppo_checkpoint.pk}"
    assert f"{folder.name}/model.safetensors" in names and f"{folder.name}/README.md" in names
    assert not (folder / "adapter_config.json").exists()

    exported = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert tokenizer.chat_template
    ours, our_tokenizer = load_policy(ppo_checkpoint.path)
    base, _ = load_policy(Checkpoint.objects.get(project=ppo_checkpoint.project, parent=None).path)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(exported.state_dict()[q], base.state_dict()[q])  # the adapters were merged in
    for prompt in TINY_PROMPTS[:3]:
        enc = encode_prompts(our_tokenizer, [prompt])
        kwargs = dict(do_sample=False, max_new_tokens=8, pad_token_id=tokenizer.pad_token_id)
        assert torch.equal(exported.generate(**enc, **kwargs), ours.generate(**enc, **kwargs))

    card = (folder / "README.md").read_text()
    assert "ab" * 32 in card and "0.750" in card and "0.012" in card and '"steps": 1' in card
    assert "GGUF: not produced" in card


def test_studio_button_downloads_and_annotators_cannot(client, admin_user, alice, ppo_checkpoint):
    client.force_login(admin_user)
    page = client.get(f"/studio/projects/{ppo_checkpoint.project_id}/checkpoints/").content.decode()
    url = f"/studio/projects/{ppo_checkpoint.project_id}/checkpoints/{ppo_checkpoint.pk}/export/"
    assert f'href="{url}"' in page
    response = client.get(url)
    assert response.status_code == 200 and "export-me-checkpoint" in response["Content-Disposition"]
    assert b"".join(response.streaming_content)[257:262] == b"ustar"
    client.force_login(alice)
    assert client.get(url).status_code == 403  # "this page is for staff": the studio is staff only
    token = Token.objects.create(user=alice)
    assert client.get(f"/api/v1/checkpoints/{ppo_checkpoint.pk}/export/",
                      HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 403


def test_reward_checkpoints_are_not_models(client, admin_user, ppo_checkpoint, tiny_models):
    reward = Checkpoint.objects.create(project=ppo_checkpoint.project, kind=Checkpoint.Kind.REWARD,
                                       path=tiny_models["reward"], name="rm", sha256="0" * 64)
    client.force_login(admin_user)
    assert client.get(f"/api/v1/checkpoints/{reward.pk}/export/").status_code == 404
