"""A new admin in real Chromium: create a project, upload 50 prompts (and a bad file),
add an annotator, sample comparisons and watch the job finish without reloading."""
import json

import pytest

from feedback.models import Comparison, Job, Project, ProjectMembership, Prompt
from tests.browser.conftest import screenshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_admin_creates_project_uploads_prompts_adds_annotator_and_samples(
        page, live_server, login, admin_user, alice, tiny_models, tmp_path, celery_worker):
    login(page, "root", "root-pw-123")
    page.goto(f"{live_server.url}/studio/")
    page.click("text=New project")
    page.fill("#id_name", "Browser project")
    page.fill("#id_guidelines", "Prefer **short** answers.")
    page.fill("#id_policy_base_model", "/no/such/model")
    page.fill("#id_reward_base_model", tiny_models["reward"])
    page.fill("#id_max_new_tokens", "6")
    page.click("text=Preview guidelines")
    assert page.inner_html(".preview .guidelines-text").count("<strong>short</strong>") == 1
    page.click("text=Create project")
    # the error sits beside its field, and the field points at it for screen readers
    assert "does not exist" in page.inner_text("#id_policy_base_model_error")
    assert "id_policy_base_model_error" in page.get_attribute("#id_policy_base_model", "aria-describedby")
    screenshot(page, "studio-project-new-error.png")
    assert not Project.objects.exists()
    page.fill("#id_policy_base_model", tiny_models["policy"])
    page.click("text=Create project")
    page.wait_for_selector("text=Project Browser project created")
    project = Project.objects.get(name="Browser project")
    screenshot(page, "studio-project.png")

    # upload: a bad file first (error in place, nothing imported), then 50 prompts
    page.click("nav.subnav >> text=Prompts")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"prompt": "ok", "split": "test"}\n')
    page.set_input_files("#id_file", str(bad))
    page.click("text=Preview")
    assert "Row 2, split" in page.inner_text("#id_file_error")
    screenshot(page, "studio-upload-error.png")
    assert Prompt.objects.count() == 0

    good = tmp_path / "prompts.jsonl"
    good.write_text("\n".join(json.dumps({"prompt": f"tell me about the cat {i}"}) for i in range(50)))
    # drop the file on the drop zone, as a person dragging it from their desktop would
    page.evaluate("""([name, text]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([text], name, {type: "application/x-ndjson"}));
        document.querySelector("[data-dropzone]").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true}));
    }""", ["prompts.jsonl", good.read_text()])
    assert page.evaluate("document.querySelector('#id_file').files[0].name") == "prompts.jsonl"
    page.fill("#id_holdout_percent", "10")
    page.click("text=Preview")
    assert "50 prompts ready to import: 45 train, 5 held-out" in page.inner_text("#preview-summary")
    screenshot(page, "studio-upload-preview.png")
    assert Prompt.objects.count() == 0
    page.click("text=Import 50 prompts")
    page.wait_for_selector("text=Imported 50 prompts")
    assert Prompt.objects.filter(project=project).count() == 50

    # add the annotator
    page.click("nav.subnav >> text=Members")
    page.select_option("#id_user", label="alice")
    page.click("button:has-text('Add')")
    page.wait_for_selector("text=alice added")
    screenshot(page, "studio-members.png")
    assert ProjectMembership.objects.filter(project=project, user=alice).exists()

    # sample comparisons; the job's progress updates in place until it is done
    page.click("nav.subnav >> text=" + project.name)
    page.fill("#id_prompts", "3")
    page.click("button:has-text('Sample')")
    job = Job.objects.get(project=project, kind=Job.Kind.BATCH)
    marker = page.evaluate("window.__same_page = true")
    assert marker is True
    page.wait_for_selector(f"#job-{job.pk} .status-done", timeout=120_000)
    assert page.evaluate("window.__same_page") is True  # no reload happened
    assert "comparisons: 3" in page.inner_text(f"#job-{job.pk}")
    assert Comparison.objects.filter(project=project).count() == 3
    screenshot(page, "studio-project-job-done.png")

    page.click("nav.subnav >> text=Queue")
    screenshot(page, "studio-queue.png")
    page.set_viewport_size({"width": 380, "height": 800})
    page.goto(f"{live_server.url}/studio/projects/{project.pk}/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "studio-project-narrow.png")
