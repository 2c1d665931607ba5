"""Project services: settings checked on save, round 0 registered at creation (or by a
set-up job when a GGUF must be converted), uploads all or nothing, archive, requeue, retire."""
import json
import shutil

import pytest

from feedback.models import Assignment, Checkpoint, Comparison, Job, Project, Prompt, Vote
from feedback.selectors.checkpoints import active_policy
from feedback.services.assignment import assignment_next, assignment_skip
from feedback.services.comparisons import comparison_requeue, comparison_retire
from feedback.services.errors import FieldError
from feedback.services.exports import export_lines, preference_snapshot
from feedback.services.jobs import job_batch_create, job_execute
from feedback.services.projects import (
    PromptImportError,
    project_archive,
    project_create,
    project_unarchive,
    project_update,
    prompts_import,
    prompts_preview,
)
from feedback.services.rounds import RoundError, round_launch
from feedback.services.votes import VoteError, vote_submit
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


def _tiny_settings(tiny_models, **extra):
    return {"name": "Mine", "policy_base_model": tiny_models["policy"], "reward_base_model": tiny_models["reward"],
            "generation_settings": {"max_new_tokens": 4, "batch_size": 4}, **extra}


def test_create_with_a_safetensors_folder_registers_round_0_at_once(tiny_models):
    project, job = project_create(data=_tiny_settings(tiny_models))
    assert job is None
    policy = active_policy(project)
    assert policy.name == "round 0" and policy.path == tiny_models["policy"] and len(policy.sha256) == 64
    # it can sample now: a batch job is accepted
    assert job_batch_create(project=project, data={"prompts": 1}).kind == Job.Kind.BATCH


@pytest.fixture
def fake_gguf(tmp_path, tiny_models, monkeypatch):
    """A .gguf file whose 'conversion' copies the tiny policy (real conversion takes ~30 s)."""
    import training.models

    gguf = tmp_path / "bundled" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    calls = []

    def convert(source, out):
        calls.append(str(source))
        shutil.copytree(tiny_models["policy"], out)
        return out

    monkeypatch.setattr(training.models, "smollm2_gguf_path", lambda: gguf)
    monkeypatch.setattr(training.models, "convert_gguf_to_safetensors", convert)
    return {"path": gguf, "calls": calls}


def test_create_with_the_bundled_model_converts_in_a_job_not_in_the_request(fake_gguf, tiny_models,
                                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        project, job = project_create(data={"name": "Bundled", "reward_base_model": tiny_models["reward"]})
    assert job.kind == Job.Kind.SETUP and job.status == Job.Status.QUEUED and len(callbacks) == 1
    assert fake_gguf["calls"] == [] and active_policy(project) is None
    with pytest.raises(FieldError, match="no active policy"):
        job_batch_create(project=project, data={"prompts": 1})

    job = job_execute(job.pk)
    assert job.status == Job.Status.DONE, job.error
    assert job.progress_step == job.progress_total == 2
    assert fake_gguf["calls"] == [str(fake_gguf["path"])]
    assert active_policy(project).name == "round 0"
    # a second project on the same base reuses the converted folder: no job, no conversion
    other, job2 = project_create(data={"name": "Bundled too"})
    assert job2 is None and active_policy(other).path == active_policy(project).path
    assert len(fake_gguf["calls"]) == 1


def test_a_local_gguf_file_is_accepted_as_policy_base_but_not_as_reward_base(fake_gguf):
    project, job = project_create(data={"name": "Local gguf", "policy_base_model": str(fake_gguf["path"])})
    assert job is not None and job.kind == Job.Kind.SETUP
    with pytest.raises(FieldError) as caught:
        project_create(data={"name": "Bad reward", "reward_base_model": str(fake_gguf["path"])})
    assert caught.value.field == "reward_base_model"


@pytest.mark.parametrize("value, reason", [
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "does not exist"),
    ("/nonexistent/model", "does not exist"),
    ("relative/../path", "does not exist"),
])
def test_base_model_that_is_not_a_local_folder_is_refused(value, reason):
    with pytest.raises(FieldError) as caught:
        project_create(data={"name": "X", "policy_base_model": value})
    assert caught.value.field == "policy_base_model" and reason in caught.value.message
    assert not Project.objects.exists()


def test_folder_without_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FieldError, match="no weights"):
        project_create(data={"name": "X", "reward_base_model": str(tmp_path)})


@pytest.mark.parametrize("data, field", [
    ({"name": ""}, "name"),
    ({"name": "X", "guidelines": "x" * 100_001}, "guidelines"),
    ({"name": "X", "votes_per_comparison": 0}, "votes_per_comparison"),
    ({"name": "X", "generation_settings": {"temperature": 0}}, "generation_settings.temperature"),
    ({"name": "X", "generation_settings": {"beams": 3}}, "generation_settings.beams"),
])
def test_bad_settings_name_the_field_and_create_nothing(data, field):
    with pytest.raises(FieldError) as caught:
        project_create(data=data)
    assert caught.value.field == field
    assert not Project.objects.exists()


def test_policy_base_is_fixed_once_round_0_exists(tiny_models, tmp_path):
    project, _ = project_create(data=_tiny_settings(tiny_models))
    copy = shutil.copytree(tiny_models["policy"], tmp_path / "copy")
    with pytest.raises(FieldError) as caught:
        project_update(project=project, data={"policy_base_model": str(copy)})
    assert caught.value.field == "policy_base_model"
    project_update(project=project, data={"guidelines": "Be *brief*.", "votes_per_comparison": 3})
    project.refresh_from_db()
    assert project.guidelines == "Be *brief*." and project.votes_per_comparison == 3
    assert project.policy_base_model == tiny_models["policy"]


def test_hold_out_percent_is_exact_and_the_preview_matches_the_import(tiny_models):
    project, _ = project_create(data=_tiny_settings(tiny_models))
    rows = [{"prompt": f"prompt number {i}"} for i in range(50)] + [{"prompt": "mine", "split": "train"}]
    preview = prompts_preview(rows=rows, holdout_percent=20, tags=["batch-1"])
    assert preview["count"] == 51 and preview["splits"] == {"train": 41, "held_out": 10}
    assert len(preview["rows"]) == 10 and not Prompt.objects.exists()  # a preview writes nothing
    prompts_import(project=project, rows=rows, holdout_percent=20, tags=["batch-1"])
    held = {p.text for p in Prompt.objects.filter(split=Prompt.Split.HELD_OUT)}
    assert len(held) == 10 and "mine" not in held
    assert all(p.tags == ["batch-1"] for p in Prompt.objects.all())
    again = prompts_preview(rows=rows, holdout_percent=20)
    assert [r["split"] for r in again["rows"]] == [r["split"] for r in preview["rows"]]


def test_a_bad_row_names_row_field_reason_and_imports_nothing(tiny_models):
    project, _ = project_create(data=_tiny_settings(tiny_models))
    with pytest.raises(PromptImportError) as caught:
        prompts_import(project=project, rows=["fine", {"prompt": "ok", "split": "test"}])
    assert (caught.value.row, caught.value.field) == (2, "split")
    assert not Prompt.objects.exists()


def test_archived_project_refuses_rounds_and_batches_until_unarchived(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    project_archive(project=project)
    with pytest.raises(RoundError, match="archived"):
        round_launch(project=project)
    with pytest.raises(FieldError, match="archived"):
        job_batch_create(project=project, data={"prompts": 1})
    project_unarchive(project=project)
    assert job_batch_create(project=project, data={"prompts": 1}).pk


def test_retired_comparison_leaves_queue_training_and_exports(tiny_models, alice, bob):
    project = make_project(tiny_models, first_batch=2)
    first, second = Comparison.objects.filter(project=project).order_by("id")
    for who in (alice, bob):
        a = assignment_next(annotator=who, project=project)
        vote_submit(annotator=who, assignment_id=a.pk, choice="a")
    held = assignment_next(annotator=alice, project=project)
    assert held is None  # overlap 1: both comparisons are complete
    comparison_retire(comparison=first)
    records, snapshot = preference_snapshot(project)
    assert [r["comparison_id"] for r in records] == [second.pk]
    assert [json.loads(line)["comparison_id"] for line in export_lines(project, "raw")] == [second.pk]
    comparison_requeue(comparison=first)
    first.refresh_from_db()
    assert first.status == Comparison.Status.COMPLETE  # back, with its vote
    assert len(preference_snapshot(project)[0]) == 2


def test_retire_drops_live_reservations_and_refuses_their_votes(tiny_models, alice):
    project = make_project(tiny_models, first_batch=1)
    a = assignment_next(annotator=alice, project=project)
    comparison_retire(comparison=a.comparison)
    assert not Assignment.objects.filter(pk=a.pk).exists()
    assert assignment_next(annotator=alice, project=project) is None
    with pytest.raises(VoteError):
        vote_submit(annotator=alice, assignment_id=a.pk, choice="a")
    assert not Vote.objects.exists()


def test_requeue_offers_a_skipped_comparison_again(tiny_models, alice):
    project = make_project(tiny_models, first_batch=1)
    a = assignment_next(annotator=alice, project=project)
    assignment_skip(annotator=alice, assignment_id=a.pk, reason="unclear")
    assert assignment_next(annotator=alice, project=project) is None
    assert comparison_requeue(comparison=a.comparison) == 1
    assert assignment_next(annotator=alice, project=project).comparison == a.comparison


def test_checkpoint_count_stays_one_when_set_up_runs_twice(tiny_models):
    from feedback.services.projects import project_policy_init

    project, _ = project_create(data=_tiny_settings(tiny_models))
    project_policy_init(project=project)
    assert Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.POLICY).count() == 1
