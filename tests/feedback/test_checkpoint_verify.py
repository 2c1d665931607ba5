"""A checkpoint is used only when its files still hash to the sha256 recorded at registration.

Workers on other machines find checkpoints by the path in the database (a shared volume);
a copy cut short or a swapped file must stop the round or job with both hashes named,
and an intact checkpoint must not be re-read on every use.
"""
import os
import shutil
from pathlib import Path

import pytest

import training.checkpoints as checkpoint_io
from feedback.models import Job, TrainingRound
from feedback.selectors.checkpoints import active_policy
from feedback.services import rounds as rounds_service
from feedback.services.checkpoints import CheckpointMismatch, checkpoint_verify
from feedback.services.jobs import generate_params, job_execute, job_generate_create
from tests.helpers import make_project

pytestmark = pytest.mark.django_db(transaction=True)


def _weights(checkpoint) -> Path:
    return next(Path(checkpoint.path).glob("*.safetensors"))


def _truncate(file: Path) -> None:
    with open(file, "r+b") as fh:
        fh.truncate(file.stat().st_size // 2)


@pytest.fixture
def own_models(tiny_models, tmp_path):
    """Copies of the tiny models: round 0's checkpoint is the base folder itself, which these tests damage."""
    return {kind: shutil.copytree(path, tmp_path / f"own-{kind}") for kind, path in tiny_models.items()}


@pytest.fixture
def hash_calls(monkeypatch):
    """Counts full hashes of checkpoint folders, starting from a process that has hashed nothing."""
    monkeypatch.setattr(checkpoint_io, "_hashed", {})
    calls = []
    real = checkpoint_io.directory_sha256

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(checkpoint_io, "directory_sha256", counting)
    return calls


def test_round_on_a_truncated_parent_policy_fails_naming_the_checkpoint_and_both_hashes(own_models):
    project = make_project(own_models, first_batch=0)
    parent = active_policy(project)
    _truncate(_weights(parent))
    resolved = rounds_service.round_config_resolve(project, {})
    queued = TrainingRound.objects.create(project=project, number=1, config=resolved)

    ended = rounds_service.round_execute(queued.pk)

    assert ended.status == "failed"
    assert repr(parent.name) in ended.error and parent.path in ended.error
    assert f"registered {parent.sha256}" in ended.error
    found = ended.error.split("found ")[1].split(";")[0]
    assert len(found) == 64 and found != parent.sha256
    assert ended.reward_checkpoint is None  # nothing was trained from the wrong weights


def test_generation_job_on_a_swapped_file_fails_clearly(own_models):
    project = make_project(own_models, first_batch=0)
    checkpoint = active_policy(project)
    weights = _weights(checkpoint)
    # same size, other bytes, moved into place the way a bad sync would
    other = weights.with_name("other.bin")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    other.write_bytes(bytes(data))
    os.replace(other, weights)
    job = job_generate_create(checkpoint=checkpoint, params=generate_params({"prompts": ["say something nice"]}))

    ended = job_execute(job.pk)

    assert ended.status == Job.FAILED
    assert "does not match its registered sha256" in ended.error and checkpoint.sha256 in ended.error
    assert ended.result in (None, {}) or "samples" not in ended.result


def test_intact_checkpoint_is_hashed_once_across_two_uses(own_models, hash_calls):
    project = make_project(own_models, first_batch=0)
    checkpoint = active_policy(project)
    checkpoint_io._hashed.clear()  # as in a worker that has not seen this checkpoint yet
    hash_calls.clear()

    assert checkpoint_verify(checkpoint) == checkpoint.path
    assert checkpoint_verify(checkpoint) == checkpoint.path
    assert hash_calls == [checkpoint.path]

    # a write after the first check is seen at the next use
    with open(_weights(checkpoint), "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(CheckpointMismatch, match="does not match its registered sha256"):
        checkpoint_verify(checkpoint)
    assert len(hash_calls) == 2


def test_a_checkpoint_missing_on_this_machine_says_to_mount_the_shared_volume(own_models):
    project = make_project(own_models, first_batch=0)
    checkpoint = active_policy(project)
    shutil.rmtree(checkpoint.path)

    with pytest.raises(CheckpointMismatch, match="folder is missing on .*mount the shared checkpoint volume"):
        checkpoint_verify(checkpoint)
