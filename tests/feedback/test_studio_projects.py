"""Studio pages for projects and people, as an admin uses them."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from feedback.models import Assignment, Comparison, Job, Project, ProjectMembership, Prompt
from feedback.selectors.checkpoints import active_policy
from feedback.services.assignment import assignment_next, assignment_skip
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


def _form(tiny_models, **extra):
    return {"name": "From the page", "guidelines": "Prefer **short** answers.", "votes_per_comparison": 2,
            "policy_base_model": tiny_models["policy"], "reward_base_model": tiny_models["reward"],
            "max_new_tokens": 8, "temperature": 0.7, "top_p": 1.0, "batch_size": 4, **extra}


def test_pages_are_staff_only(client, alice, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    client.force_login(alice)
    for name, args in [("studio_projects", []), ("studio_project_new", []), ("studio_project", [project.pk]),
                       ("studio_prompts", [project.pk]), ("studio_members", [project.pk]),
                       ("studio_queue", [project.pk]), ("studio_annotators", [])]:
        assert client.get(reverse(f"feedback:{name}", args=args)).status_code == 403, name  # "for staff" page


def test_studio_index_links_to_the_project_pages(staff, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    html = staff.get("/studio/").content.decode()
    for name in ("studio_projects", "studio_annotators"):
        assert reverse(f"feedback:{name}") in html
    assert reverse("feedback:studio_queue", args=[project.pk]) in html


def test_create_project_in_the_page_registers_round_0(staff, tiny_models):
    response = staff.post(reverse("feedback:studio_project_new"), _form(tiny_models))
    project = Project.objects.get(name="From the page")
    assert response.status_code == 302 and response["Location"] == reverse("feedback:studio_project", args=[project.pk])
    assert project.votes_per_comparison == 2 and project.generation_settings["max_new_tokens"] == 8
    assert active_policy(project).name == "round 0"
    page = staff.get(response["Location"])
    for fmt in ("trl", "trl-conversational", "hh-rlhf", "openai", "raw", "arena"):
        assert f"export/?format={fmt}".encode() in page.content


def test_form_errors_are_shown_in_place_and_nothing_is_created(staff, tiny_models):
    response = staff.post(reverse("feedback:studio_project_new"),
                          _form(tiny_models, policy_base_model="/nowhere/model", temperature=9))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "temperature" in errors  # the form's own range check
    response = staff.post(reverse("feedback:studio_project_new"), _form(tiny_models, policy_base_model="/nowhere/model"))
    assert "does not exist" in response.context["form"].errors["policy_base_model"][0]
    assert b"/nowhere/model does not exist" in response.content
    assert not Project.objects.exists()


def test_guidelines_preview_renders_like_the_annotate_page_and_saves_nothing(staff, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    url = reverse("feedback:studio_project_settings", args=[project.pk])
    data = _form(tiny_models, name=project.name, guidelines="**Bold** <script>alert(1)</script>", preview="1")
    data["policy_base_model"] = project.policy_base_model
    html = staff.post(url, data).content.decode()
    assert "<strong>Bold</strong>" in html and "&lt;script&gt;alert(1)" in html and "<script>alert(1)" not in html
    project.refresh_from_db()
    assert "Bold" not in project.guidelines
    del data["preview"]
    assert staff.post(url, data).status_code == 302
    project.refresh_from_db()
    assert project.guidelines.startswith("**Bold**")


def test_reveal_models_is_turned_on_in_the_settings_page_and_shown_checked(staff, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    url = reverse("feedback:studio_project_settings", args=[project.pk])
    assert 'name="reveal_models"' in staff.get(url).content.decode()
    data = _form(tiny_models, name=project.name, reveal_models="on")
    data["policy_base_model"] = project.policy_base_model
    assert staff.post(url, data).status_code == 302
    project.refresh_from_db()
    assert project.reveal_models is True
    assert staff.get(url).context["form"].initial["reveal_models"] is True
    del data["reveal_models"]  # an unticked box is absent from the post: off again
    staff.post(url, data)
    project.refresh_from_db()
    assert project.reveal_models is False


def _upload(staff, project, name, content: bytes, **extra):
    return staff.post(reverse("feedback:studio_prompts", args=[project.pk]),
                      {"kind": "prompts", "holdout_percent": 10, "tags": "uploaded, v1",
                       "file": SimpleUploadedFile(name, content), **extra})


def test_upload_previews_then_imports_all_on_confirm(staff, tiny_models):
    project = make_project(tiny_models, first_batch=0, prompts=[])
    body = "\n".join(json.dumps({"prompt": f"question {i}"}) for i in range(50)).encode()
    preview = _upload(staff, project, "prompts.jsonl", body)
    assert preview.status_code == 200
    assert preview.context["preview"]["count"] == 50 and len(preview.context["preview"]["rows"]) == 10
    assert b"question 0" in preview.content and b"40 more rows" in preview.content
    assert Prompt.objects.count() == 0  # nothing before the confirmation
    token = preview.context["token"]
    done = staff.post(reverse("feedback:studio_prompts_confirm", args=[project.pk]), {"token": token}, follow=True)
    assert b"Imported 50 prompts" in done.content
    assert Prompt.objects.filter(project=project).count() == 50
    assert Prompt.objects.filter(split=Prompt.Split.HELD_OUT).count() == 5
    assert Prompt.objects.first().tags == ["uploaded", "v1"]
    # the same token cannot import twice
    staff.post(reverse("feedback:studio_prompts_confirm", args=[project.pk]), {"token": token})
    assert Prompt.objects.count() == 50


def test_bad_file_shows_row_field_reason_and_imports_nothing(staff, tiny_models):
    project = make_project(tiny_models, first_batch=0, prompts=[])
    body = b'{"prompt": "fine"}\n{"prompt": ""}\n'
    response = _upload(staff, project, "bad.jsonl", body)
    assert response.status_code == 200
    assert "Row 2, prompt: is missing or empty" in response.context["form"].errors["file"][0]
    assert b"Row 2, prompt: is missing or empty" in response.content
    assert not Prompt.objects.exists()
    wrong_type = _upload(staff, project, "prompts.txt", b"hello")
    assert "must end in" in wrong_type.context["form"].errors["file"][0]


def test_csv_pairs_upload_imports_comparisons(staff, tiny_models):
    project = make_project(tiny_models, first_batch=0, prompts=[])
    body = b"prompt,response_a,response_b\nhi,hello there,go away\nbye,see you,whatever\n"
    preview = _upload(staff, project, "pairs.csv", body, kind="comparisons", holdout_percent=0)
    assert preview.context["preview"]["count"] == 2 and b"hello there" in preview.content
    staff.post(reverse("feedback:studio_prompts_confirm", args=[project.pk]), {"token": preview.context["token"]})
    assert Comparison.objects.filter(project=project).count() == 2


def test_cancelled_upload_imports_nothing_and_leaves_no_file(staff, tiny_models, settings):
    project = make_project(tiny_models, first_batch=0, prompts=[])
    preview = _upload(staff, project, "p.json", b'["a", "b"]')
    assert (settings.DATA_DIR / "uploads" / preview.context["token"]).exists()
    staff.post(reverse("feedback:studio_prompts_confirm", args=[project.pk]),
               {"token": preview.context["token"], "cancel": "1"})
    assert not Prompt.objects.exists()
    assert list((settings.DATA_DIR / "uploads").iterdir()) == []


def test_sample_form_creates_a_batch_job_and_its_status_is_polled(staff, tiny_models,
                                                                  django_capture_on_commit_callbacks):
    project = make_project(tiny_models, first_batch=0)
    with django_capture_on_commit_callbacks(execute=False):
        response = staff.post(reverse("feedback:studio_batch", args=[project.pk]),
                              {"prompts": 3, "samples_per_prompt": 2, "split": "train"})
    job = Job.objects.get(project=project)
    assert response.status_code == 302 and job.kind == Job.Kind.BATCH and job.params["prompts"] == 3
    page = staff.get(reverse("feedback:studio_project", args=[project.pk]))
    assert reverse("feedback:studio_job_status", args=[job.pk]).encode() in page.content
    status = staff.get(reverse("feedback:studio_job_status", args=[job.pk])).json()
    assert status["status"] == "queued" and status["final"] is False


def test_archive_and_unarchive_from_the_project_page(staff, tiny_models):
    project = make_project(tiny_models, first_batch=0)
    url = reverse("feedback:studio_project_archive", args=[project.pk])
    assert staff.post(url, {"archive": "1"}).status_code == 302
    project.refresh_from_db()
    assert project.archived_at is not None
    staff.post(url, {"archive": "0"})
    project.refresh_from_db()
    assert project.archived_at is None


def test_members_are_added_and_removed(staff, tiny_models, alice):
    project = make_project(tiny_models, first_batch=0, members=[])
    url = reverse("feedback:studio_members", args=[project.pk])
    assert staff.post(url, {"user": alice.pk, "role": "annotator"}).status_code == 302
    assert ProjectMembership.objects.filter(project=project, user=alice).exists()
    assert b"alice" in staff.get(url).content
    staff.post(reverse("feedback:studio_member_remove", args=[project.pk, alice.pk]))
    assert not ProjectMembership.objects.filter(project=project, user=alice).exists()


def test_create_annotator_shows_password_and_token_once_and_they_work(staff, client, tiny_models,
                                                                      django_user_model):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    project = make_project(tiny_models, first_batch=1)
    response = staff.post(reverse("feedback:studio_annotators"), {"username": "dora", "projects": [project.pk]})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    password, token = response.context["password"], response.context["token"]
    assert password.encode() in response.content and token.encode() in response.content
    dora = django_user_model.objects.get(username="dora")
    assert not dora.is_staff and Token.objects.get(user=dora).key == token
    assert ProjectMembership.objects.filter(project=project, user=dora).exists()
    listing = staff.get(reverse("feedback:studio_annotators"))
    assert b"dora" in listing.content and password.encode() not in listing.content
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get(f"/api/v1/projects/{project.pk}/comparisons/next/").status_code == 200
    duplicate = staff.post(reverse("feedback:studio_annotators"), {"username": "Dora"})
    assert duplicate.context["form"].errors["username"] == ["is taken"]

    reset = staff.post(reverse("feedback:studio_annotator_reset", args=[dora.pk]))
    new_password = reset.context["password"]
    dora.refresh_from_db()
    assert new_password != password and dora.check_password(new_password) and not dora.check_password(password)
    assert api.get("/api/v1/projects/").status_code == 401  # the old token was rotated


def test_queue_page_shows_reservations_skips_and_retires(staff, tiny_models, alice, bob):
    project = make_project(tiny_models, first_batch=2)
    held = assignment_next(annotator=alice, project=project)
    skipped = assignment_next(annotator=bob, project=project)
    assignment_skip(annotator=bob, assignment_id=skipped.pk, reason="offensive")
    html = staff.get(reverse("feedback:studio_queue", args=[project.pk])).content.decode()
    assert "alice until" in html and "bob: offensive" in html
    only_skipped = staff.get(reverse("feedback:studio_queue", args=[project.pk]) + "?only=skipped")
    assert [r["comparison"].pk for r in only_skipped.context["rows"]] == [skipped.comparison_id]
    action = reverse("feedback:studio_comparison_action", args=[held.comparison_id, "retire"])
    assert staff.post(action).status_code == 302
    held.comparison.refresh_from_db()
    assert held.comparison.status == Comparison.Status.RETIRED
    requeue = reverse("feedback:studio_comparison_action", args=[skipped.comparison_id, "requeue"])
    staff.post(requeue)
    assert not Assignment.objects.filter(pk=skipped.pk).exists()
