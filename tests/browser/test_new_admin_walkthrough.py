"""Issue 11's proof in one walk: a new admin runs their own project from the browser.

The admin creates "Support bot" on the bundled SmolLM2 and the page's `setup` job really
converts the GGUF (about 17 s on the 2-core test machine, so no stand-in folder), uploads a
bad file and then 50 prompts, creates an annotator (password and API token shown once) and
samples comparisons from the real model, watching each job finish in place. The annotator
logs in with that password, votes in Support bot, and cannot see "Tiny lab": not listed,
its /annotate/?project= is refused, the API answers 404.

The round runs on Tiny lab, a second project on the tiny random models (fixture
`tiny_models`), because PPO on SmolLM2 takes minutes on these CPUs and a project's policy
base cannot change once round 0 is registered. Tiny lab's votes come from bob through the
services: voting in the browser is what the annotator has just proven, and repeating it
would only add time. Everything after that is the admin's browser again: the launch form
filled in, the round page watched to "done" without a reload (the real Celery worker), two
checkpoints compared in the playground, roll back and promote. Every page reached by a
link, never a typed URL, except where the annotator tries the one she must be refused.
About 50 s on the test machine. Screenshots: test-artifacts/walk-*.png.
"""
import json

import pytest

from feedback.models import Checkpoint, CheckpointEvent, Comparison, Job, Project, Prompt, TrainingRound, Vote
from tests.browser.conftest import (is_same_page, mark_page, playground_compare, record_round_statuses,
                                    rollback_then_promote, screenshot)
from tests.helpers import make_project, votes_cast

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Small enough for a round of a few seconds on the tiny models.
ROUND_FORM = {"#id_min_pairs": "4", "#id_next_batch_prompts": "4", "#id_reward__epochs": "1",
              "#id_reward__min_steps": "20", "#id_reward__batch_size": "4", "#id_ppo__steps": "4",
              "#id_ppo__batch_size": "4", "#id_ppo__mini_batch_size": "2", "#id_ppo__max_new_tokens": "8"}


def test_new_admin_walks_from_an_empty_studio_to_a_rolled_back_round(
        page, browser, live_server, login, admin_user, bob, tiny_models, tmp_path, celery_worker):
    url = live_server.url
    tiny = make_project(tiny_models, name="Tiny lab", members=[bob], first_batch=8)
    votes_cast(tiny, bob, 8)

    # --- a project on the bundled model: its set-up job converts SmolLM2 while the page watches
    login(page, "root", "root-pw-123")
    page.goto(f"{url}/studio/")
    screenshot(page, "walk-01-studio.png")
    page.click(".studio-links >> text=New project")
    page.fill("#id_name", "Support bot")
    page.fill("#id_guidelines", "Prefer **short**, polite answers.")
    page.fill("#id_max_new_tokens", "8")  # the policy base stays empty: the bundled SmolLM2
    page.click("text=Create project")
    page.wait_for_selector("text=Project Support bot created")
    project = Project.objects.get(name="Support bot")
    setup = Job.objects.get(project=project, kind=Job.Kind.SETUP)
    assert page.is_disabled("button[data-needs-policy]")  # nothing to sample from yet
    mark_page(page)
    screenshot(page, "walk-02-project-setup.png")
    page.wait_for_selector(f"#job-{setup.pk} .status-done", timeout=120_000)
    # sampling opens in place once round 0 is registered
    page.wait_for_selector("button[data-needs-policy]:enabled", timeout=5_000)
    assert page.inner_text("#active-policy-name") == "round 0" and page.is_hidden("#setup-pending")
    assert is_same_page(page)
    assert Checkpoint.objects.get(project=project, is_active=True).name == "round 0"

    # --- prompts: a bad file changes nothing and says why, in place; then 50 good ones
    page.click("nav.subnav >> text=Prompts")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "Where is my parcel?"}\n{"text": "no prompt field"}\n')
    page.set_input_files("#id_file", str(bad))
    page.click("button:has-text('Preview')")
    assert "Nothing imported. Row 2, prompt" in page.inner_text("#id_file_error")
    screenshot(page, "walk-03-upload-error.png")
    assert not Prompt.objects.filter(project=project).exists()
    good = tmp_path / "prompts.jsonl"
    good.write_text("\n".join(json.dumps({"prompt": f"Write a short reply to customer question {i}"})
                              for i in range(50)))
    page.set_input_files("#id_file", str(good))
    page.click("button:has-text('Preview')")
    assert "50 prompts ready to import" in page.inner_text("#preview-summary")
    screenshot(page, "walk-04-upload-preview.png")
    page.click("text=Import 50 prompts")
    page.wait_for_selector("text=Imported 50 prompts")
    assert Prompt.objects.filter(project=project).count() == 50

    # --- an annotator account for Support bot only; the secrets are on the page once
    page.click("nav.subnav >> text=Annotators")
    page.fill("#id_username", "dana")
    page.check("label:has-text('Support bot') input")
    page.click("text=Create annotator")
    password, token = page.inner_text("#new-password"), page.inner_text("#new-token")
    screenshot(page, "walk-05-annotator-created.png")
    page.click("nav.subnav >> text=All projects")
    page.click("main >> text=Support bot")
    page.click("nav.subnav >> text=Members")
    assert "dana" in page.inner_text("table")
    screenshot(page, "walk-06-members.png")

    # --- sample comparisons from SmolLM2; the job's progress updates without a reload
    page.click("nav.subnav >> text=Support bot")
    page.fill("#id_prompts", "3")
    page.click("button:has-text('Sample')")
    batch = Job.objects.get(project=project, kind=Job.Kind.BATCH)
    page.wait_for_selector(f"#job-{batch.pk}")
    mark_page(page)
    page.wait_for_selector(f"#job-{batch.pk} .status-done", timeout=120_000)
    assert is_same_page(page)
    assert "comparisons: 3" in page.inner_text(f"#job-{batch.pk}")
    screenshot(page, "walk-07-sampled.png")

    # --- the annotator votes in her project and cannot reach the other one
    annotator_context = browser.new_context(viewport={"width": 1280, "height": 900})
    annotator = annotator_context.new_page()
    login(annotator, "dana", password)
    annotator.goto(f"{url}/annotate/")
    assert "Write a short reply to customer question" in annotator.inner_text("main")
    assert "Tiny lab" not in annotator.content()
    screenshot(annotator, "walk-08-annotate.png")
    annotator.click("button:has-text('A is better')")
    annotator.wait_for_load_state()
    assert Vote.objects.filter(annotator__username="dana", comparison__project=project).count() == 1
    refused = annotator.goto(f"{url}/annotate/?project={tiny.pk}")
    assert refused.status == 404 and "Not found" in annotator.inner_text("#not-found")
    screenshot(annotator, "walk-09-other-project-refused.png")
    api = annotator_context.request
    headers = {"Authorization": f"Token {token}"}
    listed = api.get(f"{url}/api/v1/projects/", headers=headers)
    assert listed.status == 200
    rows = listed.json()
    rows = rows.get("results", rows) if isinstance(rows, dict) else rows
    assert [r["name"] for r in rows] == ["Support bot"]
    assert api.get(f"{url}/api/v1/projects/{tiny.pk}/", headers=headers).status == 404
    annotator_context.close()

    # --- a round on Tiny lab, launched from the form and watched to done in place
    page.click("nav.subnav >> text=All projects")
    page.click("main >> text=Tiny lab")
    page.click("nav.subnav >> text=Launch a round")
    for field, value in ROUND_FORM.items():
        page.fill(field, value)
    screenshot(page, "walk-10-launch.png")
    page.click("button:has-text('Launch round')")
    page.wait_for_selector("#round-status")
    mark_page(page)
    seen = record_round_statuses(page)
    page.wait_for_selector('#round-status[data-status="done"]', timeout=180_000)
    training_round = TrainingRound.objects.get(project=tiny)
    assert training_round.status == "done", training_round.error
    assert is_same_page(page) and "done" in seen
    screenshot(page, "walk-11-round-done.png")

    # --- the new checkpoint against its parent in the playground, then roll back and promote
    new = Checkpoint.objects.get(project=tiny, kind="policy", is_active=True)
    parent = new.parent
    page.click("nav.subnav >> text=Playground")
    pieces = playground_compare(page, url, tiny, new, parent, "tell me about the cat")
    assert pieces["a"] > 1 and pieces["b"] > 1, pieces
    screenshot(page, "walk-12-playground.png")
    page.click("nav.subnav >> text=Checkpoints")
    rollback_then_promote(page, url, tiny, new, parent)
    assert [e.action for e in CheckpointEvent.objects.filter(project=tiny).order_by("id")] == ["rollback", "promote"]
    assert Checkpoint.objects.get(project=tiny, kind="policy", is_active=True) == new
    screenshot(page, "walk-13-checkpoints.png")
    assert Comparison.objects.filter(project=project).count() == 3
