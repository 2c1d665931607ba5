"""The annotate and studio pages as people use them."""
import pytest
from django.urls import reverse

from feedback.models import Comparison, TrainingRound, Vote
from feedback.services.assignment import assignment_next
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def test_annotate_needs_login(client):
    response = client.get("/annotate/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_studio_is_staff_only(client, alice):
    client.force_login(alice)
    response = client.get("/studio/")
    assert response.status_code == 403 and "This page is for staff" in response.content.decode()


def test_annotator_sees_prompt_and_both_responses_then_votes(client, alice, tiny_models):
    project = make_project(tiny_models, first_batch=2)
    client.force_login(alice)
    page = client.get("/annotate/")
    assert page.status_code == 200
    a = assignment_next(annotator=alice, project=project)
    c = a.comparison
    html = page.content.decode()
    assert c.prompt.text in html
    left, right = (c.sample_a, c.sample_b) if a.left_is_a else (c.sample_b, c.sample_a)
    assert html.index('id="response-left"') < html.index('id="response-right"')
    response = client.post(reverse("feedback:annotate_vote", args=[a.pk]), {"side": "left", "strength": "2", "time_spent_ms": "1234"})
    assert response.status_code == 302
    vote = Vote.objects.get()
    assert vote.choice == ("a" if a.left_is_a else "b")
    assert vote.left_sample_id == left.pk and vote.time_spent_ms == 1234 and vote.strength == 2
    # the next comparison appears
    nxt = client.get("/annotate/")
    assert nxt.context["comparison"].pk != c.pk


def test_model_output_is_shown_as_text_not_markup(client, alice, tiny_models):
    project = make_project(tiny_models, first_batch=1)
    c = Comparison.objects.get(project=project)
    c.sample_a.text = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    c.sample_a.save()
    client.force_login(alice)
    html = client.get("/annotate/").content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html  # shown as text


def test_empty_queue_shows_a_clear_page(client, alice, tiny_models):
    make_project(tiny_models, first_batch=0)
    client.force_login(alice)
    page = client.get("/annotate/")
    assert b"No comparisons waiting" in page.content


def test_invalid_vote_shows_error_and_stores_nothing(client, alice, tiny_models):
    project = make_project(tiny_models, first_batch=1)
    a = assignment_next(annotator=alice, project=project)
    client.force_login(alice)
    response = client.post(reverse("feedback:annotate_vote", args=[a.pk]), {"side": "sideways"}, follow=True)
    assert Vote.objects.count() == 0
    assert b"side" in response.content and b"not saved" in response.content


def test_admin_launches_a_round_and_sees_it(client, admin_user, tiny_models, django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=1)
    client.force_login(admin_user)
    studio = client.get("/studio/")
    assert project.name.encode() in studio.content
    prefix = f"p{project.pk}"
    data = {f"{prefix}-ppo_steps": 2, f"{prefix}-ppo_batch_size": 4, f"{prefix}-reward_epochs": 1,
            f"{prefix}-min_pairs": 1, f"{prefix}-next_batch_prompts": 2}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("feedback:round_launch", args=[project.pk]), data)
    assert len(callbacks) == 1  # the worker task is enqueued once the round row is committed
    r = TrainingRound.objects.get(project=project)
    assert response.status_code == 302 and response["Location"] == reverse("feedback:round_detail", args=[r.pk])
    assert r.status == "queued" and r.config["ppo"]["steps"] == 2 and r.config["ppo"]["mini_batch_size"] == 4
    detail = client.get(response["Location"])
    assert b"queued" in detail.content
    # a second launch while one is running is refused with a reason
    with django_capture_on_commit_callbacks(execute=False):
        again = client.post(reverse("feedback:round_launch", args=[project.pk]), data, follow=True)
    assert TrainingRound.objects.filter(project=project).count() == 1
    assert b"already running" in again.content
    # cancelling a queued round stops it at once
    client.post(reverse("feedback:round_cancel", args=[r.pk]))
    r.refresh_from_db()
    assert r.status == "cancelled"


def test_admin_launches_a_dpo_round_from_the_overview(client, admin_user, tiny_models,
                                                      django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=1)
    client.force_login(admin_user)
    prefix = f"p{project.pk}"
    assert b'value="dpo"' in client.get("/studio/").content
    data = {f"{prefix}-method": "dpo", f"{prefix}-dpo_epochs": 2, f"{prefix}-ppo_steps": 2,
            f"{prefix}-ppo_batch_size": 4, f"{prefix}-reward_epochs": 1, f"{prefix}-min_pairs": 1,
            f"{prefix}-next_batch_prompts": 2}
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("feedback:round_launch", args=[project.pk]), data)
    r = TrainingRound.objects.get(project=project)
    assert r.config["method"] == "dpo" and r.config["dpo"]["epochs"] == 2
    assert r.config["next_batch_prompts"] == 2 and "ppo" not in r.config  # PPO's fields are not DPO's


def test_launch_form_errors_name_the_field(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    client.force_login(admin_user)
    prefix = f"p{project.pk}"
    response = client.post(reverse("feedback:round_launch", args=[project.pk]),
                           {f"{prefix}-ppo_steps": 0, f"{prefix}-ppo_batch_size": 4, f"{prefix}-reward_epochs": 1,
                            f"{prefix}-min_pairs": 1, f"{prefix}-next_batch_prompts": 2}, follow=True)
    assert b"PPO steps" in response.content
    assert not TrainingRound.objects.exists()


def test_round_page_says_which_ppo_policy_was_kept_and_why(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    steps = [{"step": 1, "score": 0.1, "kl": 2.5, "entropy": 1.2}, {"step": 2, "score": 0.4, "kl": 7.25, "check": True}]
    reason = "the trained policy measured KL 7.25 over kl_target 6; kept the policy measured at step 1"
    r = TrainingRound.objects.create(project=project, number=1, status="done", config={}, metrics={
        "ppo": steps, "ppo_summary": {"final_kl": 2.5, "kl_target": 6.0, "kl_max": 15.0, "final_kl_coef": 0.05,
                                      "kept_step": 1, "kept_reason": reason}})
    client.force_login(admin_user)
    html = client.get(reverse("feedback:round_detail", args=[r.pk])).content.decode()
    assert "Not the last update</b>: " + reason in html
    assert ">2 <span" in html and ">check</span>" in html and ">7.2500</" in html


def test_round_page_shows_every_ppo_step_metric(client, admin_user, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    step = {"step": 1, "score": 0.123, "kl": 0.4567, "non_score_reward": -0.0091, "entropy": 1.234, "clipfrac": 0.071,
            "approx_kl": 0.01234, "vf_loss": 2.5432, "vf_clipfrac": 0.382, "grad_norm": 3.217, "response_length": 41.5,
            "eos_fraction": 0.38, "episodes_per_s": 0.44}
    r = TrainingRound.objects.create(project=project, number=1, status="done", config={},
                                     metrics={"ppo": [step], "reward_summary": {"eval_accuracy": 0.875, "eval_pairs": 8}})
    client.force_login(admin_user)
    html = client.get(reverse("feedback:round_detail", args=[r.pk])).content.decode()
    for header in ("score", "KL", "non-score", "entropy", "clipfrac", "approx KL", "value loss", "value clipfrac",
                   "grad norm", "length", "EOS", "episodes/s"):
        assert f">{header}</th>" in html, header
    for shown in ("0.123", "0.4567", "-0.0091", "1.234", "0.071", "0.01234", "2.5432", "0.382", "3.217", "41.5", "0.38",
                  "0.44", "0.875"):
        assert f">{shown}</" in html, shown
