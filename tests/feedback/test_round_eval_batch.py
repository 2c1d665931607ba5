"""Every batch after round 0 also measures the new policy: against its parent and against round 0
on held-out prompts, in shares the project sets."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from feedback.models import Checkpoint, Comparison, Project, Prompt, TrainingRound
from feedback.selectors.rounds import round_win_rate, round_win_rate_vs_round0
from feedback.services.generation import round_batch_parts
from feedback.services.rounds import round_config_resolve, round_execute
from tests.feedback.leaderboard_data import add_comparison, build_project, vote
from tests.helpers import TINY_PROMPTS, make_project, votes_cast

pytestmark = pytest.mark.django_db


def _round_two(project, r0, r1):
    """Round 2 of `project`: its policy r2 descends from round 1's r1."""
    rnd = TrainingRound.objects.create(project=project, number=2, status="done", parent_policy=r1)
    r2 = Checkpoint.objects.create(project=project, kind="policy", name="round 2", path="/x/r2", sha256="2" * 64,
                                   parent=r1, produced_by=rnd)
    rnd.policy_checkpoint = r2
    rnd.save()
    return rnd, r2


def _prompts(project, train, held_out):
    for i in range(train):
        Prompt.objects.create(project=project, messages=[{"role": "user", "content": f"train {i}"}])
    for i in range(held_out):
        Prompt.objects.create(project=project, messages=[{"role": "user", "content": f"held {i}"}], split="held_out")


def _shape(parts):
    return [(part.prompts[0].split, {p.split for p in part.prompts}, len(part.prompts),
             part.checkpoint_a.name, part.checkpoint_b.name) for part in parts]


def test_batch_is_train_vs_parent_plus_held_out_vs_parent_and_vs_round_0(alice):
    project, r0, r1, _ = build_project([alice])
    _round_two(project, r0, r1)
    r2 = Checkpoint.objects.get(project=project, name="round 2")
    _prompts(project, train=10, held_out=5)
    parts = round_batch_parts(project=project, count=8, new=r2, parent=r1, reference=r0)
    assert _shape(parts) == [("train", {"train"}, 4, "round 2", "round 1"),
                             ("held_out", {"held_out"}, 2, "round 2", "round 1"),
                             ("held_out", {"held_out"}, 2, "round 2", "round 0")]
    project.eval_parent_share, project.eval_round0_share = 0.5, 0.0
    parts = round_batch_parts(project=project, count=8, new=r2, parent=r1, reference=r0)
    assert _shape(parts) == [("train", {"train"}, 4, "round 2", "round 1"),
                             ("held_out", {"held_out"}, 4, "round 2", "round 1")]


def test_when_the_parent_is_round_0_its_share_goes_to_held_out_vs_parent(alice):
    project, r0, r1, _ = build_project([alice])
    _prompts(project, train=10, held_out=5)
    parts = round_batch_parts(project=project, count=8, new=r1, parent=r0, reference=r0)
    assert _shape(parts) == [("train", {"train"}, 4, "round 1", "round 0"),
                             ("held_out", {"held_out"}, 4, "round 1", "round 0")]
    # too few held-out prompts: train prompts take the slots left, the batch keeps its size
    Prompt.objects.filter(project=project, split="held_out", messages__0__content__in=["held 3", "held 4"]).delete()
    parts = round_batch_parts(project=project, count=8, new=r1, parent=r0, reference=r0)
    assert [(p.prompts[0].split, len(p.prompts)) for p in parts] == [("train", 5), ("held_out", 3)]
    Prompt.objects.filter(project=project, split="held_out").delete()
    parts = round_batch_parts(project=project, count=8, new=r1, parent=r0, reference=r0)
    assert [(p.prompts[0].split, len(p.prompts)) for p in parts] == [("train", 8)]


def test_round_stores_the_mixed_batch_as_it_activates_its_policy(tiny_models, alice):
    """A real round (tiny models) whose parent is not round 0: its batch has all three parts."""
    project = make_project(tiny_models, first_batch=6, prompts=TINY_PROMPTS + [
        {"prompt": "say yes", "split": "held_out"}, {"prompt": "say no", "split": "held_out"}])
    round0 = Checkpoint.objects.get(project=project, kind="policy", is_active=True)
    # a round-1 policy (round 0's weights under another row) as the active parent
    parent = Checkpoint.objects.create(project=project, kind="policy", name="round 1", path=round0.path,
                                       sha256=round0.sha256, parent=round0)
    Checkpoint.objects.filter(pk=round0.pk).update(is_active=False)
    Checkpoint.objects.filter(pk=parent.pk).update(is_active=True)
    votes_cast(project, alice, 6)
    config = round_config_resolve(project, {
        "min_pairs": 4, "next_batch_prompts": 8, "reward": {"epochs": 1, "min_steps": 1},
        "ppo": {"steps": 1, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1},
        "guards": {"prompts": 2, "max_new_tokens": 6}})
    r = TrainingRound.objects.create(project=project, number=1, config=config)  # as round_launch queues it
    done = round_execute(r.pk)
    assert done.status == "done", done.error
    new = done.policy_checkpoint
    assert Checkpoint.objects.get(project=project, kind="policy", is_active=True) == new
    batch = Comparison.objects.filter(round=done).select_related("prompt", "sample_a", "sample_b")
    shape = sorted((c.prompt.split, c.sample_a.checkpoint_id, c.sample_b.checkpoint_id) for c in batch)
    assert shape == sorted([("train", new.pk, parent.pk)] * 4 + [("held_out", new.pk, parent.pk)] * 2
                           + [("held_out", new.pk, round0.pk)] * 2)
    assert done.metrics["next_batch"] == {"comparisons": 8}
    assert [(p["split"], p["b"], p["comparisons"]) for p in done.metrics["next_batch_parts"]] == [
        ("train", "round 1", 4), ("held_out", "round 1", 2), ("held_out", "round 0", 2)]


def test_win_rates_count_the_held_out_votes_of_the_batch(alice, bob):
    project, r0, r1, _ = build_project([alice, bob])
    rnd, r2 = _round_two(project, r0, r1)
    train_vs_parent = add_comparison(project, a=r2, b=r1, batch=2, training_round=rnd)
    held_vs_parent = add_comparison(project, a=r2, b=r1, batch=2, training_round=rnd)
    held_vs_round0 = add_comparison(project, a=r2, b=r0, batch=2, training_round=rnd)
    Prompt.objects.filter(pk__in=[held_vs_parent.prompt_id, held_vs_round0.prompt_id]).update(split="held_out")
    vote(train_vs_parent, alice, "a")
    vote(held_vs_parent, alice, "a")
    vote(held_vs_parent, bob, "b")
    vote(held_vs_round0, alice, "b")
    vote(held_vs_round0, bob, "tie")
    parent = round_win_rate(rnd)
    # 2 wins, 1 loss against the parent; the round-0 votes are not among them
    assert (parent["new"], parent["old"], parent["tie"], parent["judged"]) == (2, 1, 0, 3)
    round0 = round_win_rate_vs_round0(rnd)
    assert (round0["new"], round0["old"], round0["tie"]) == (0, 1, 1) and round0["win_rate"] == 0.25


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize("body, field, reason", [
    ({"eval_parent_share": 1.5}, "eval_parent_share", "between 0 and 1"),
    ({"eval_round0_share": -0.1}, "eval_round0_share", "between 0 and 1"),
    ({"eval_round0_share": "lots"}, "eval_round0_share", "between 0 and 1"),
    ({"eval_parent_share": True}, "eval_parent_share", "between 0 and 1"),
    ({"eval_parent_share": 0.6, "eval_round0_share": 0.5}, "eval_round0_share", "at most 1"),
    ({"eval_round0_share": 0.8}, "eval_round0_share", "at most 1"),  # with the parent share's 0.25
])
def test_bad_shares_are_a_400_naming_the_field_and_change_nothing(admin_user, alice, body, field, reason):
    project, *_ = build_project([alice])
    response = _api(admin_user).patch(f"/api/v1/projects/{project.pk}/", body, format="json")
    assert response.status_code == 400 and reason in response.json()[field], response.content
    project.refresh_from_db()
    assert (project.eval_parent_share, project.eval_round0_share) == (0.25, 0.25)


def test_shares_are_set_through_the_api_and_the_settings_page(admin_user, alice, client, tiny_models):
    project, *_ = build_project([alice])
    response = _api(admin_user).patch(f"/api/v1/projects/{project.pk}/",
                                      {"eval_parent_share": 0.1, "eval_round0_share": 0.3}, format="json")
    assert response.status_code == 200 and response.json()["eval_round0_share"] == 0.3
    project.refresh_from_db()
    assert (project.eval_parent_share, project.eval_round0_share) == (0.1, 0.3)

    tiny = make_project(tiny_models, first_batch=0)
    client.force_login(admin_user)
    url = reverse("feedback:studio_project_settings", args=[tiny.pk])
    page = client.get(url).content.decode()
    assert 'name="eval_parent_share"' in page and 'value="0.25"' in page
    form = {"name": "Tiny", "guidelines": "", "votes_per_comparison": 1, "policy_base_model": tiny_models["policy"],
            "reward_base_model": tiny_models["reward"], "max_new_tokens": 8, "temperature": 1.0, "top_p": 1.0,
            "batch_size": 4}
    response = client.post(url, {**form, "eval_parent_share": 0.7, "eval_round0_share": 0.6})
    assert response.status_code == 200
    assert "at most 1" in response.context["form"].errors["eval_round0_share"][0]
    tiny.refresh_from_db()
    assert (tiny.eval_parent_share, tiny.eval_round0_share) == (0.25, 0.25)
    response = client.post(url, {**form, "eval_parent_share": 0.4, "eval_round0_share": 0.2})
    assert response.status_code == 302
    tiny.refresh_from_db()
    assert (tiny.eval_parent_share, tiny.eval_round0_share) == (0.4, 0.2)
    assert Project.objects.get(pk=tiny.pk).eval_round0_share == 0.2
