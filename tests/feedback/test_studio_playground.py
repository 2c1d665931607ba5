"""The playground: two checkpoints answer one prompt, streamed; the pair can go to the annotators."""
import json

import pytest
from django.urls import reverse

from feedback.models import Checkpoint, Comparison, Prompt
from feedback.services import playground
from tests.helpers import make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_policies(tiny_models):
    project = make_project(tiny_models, first_batch=0)
    root = Checkpoint.objects.get(project=project, kind="policy")
    other = Checkpoint.objects.create(project=project, kind="policy", name="round 1", path=root.path,
                                      sha256=root.sha256, parent=root)
    Prompt.objects.create(project=project, messages=[{"role": "user", "content": "held out: why is the sky blue"}],
                          split="held_out")
    return project, root, other


def _stream(client, project, data):
    response = client.post(reverse("feedback:playground_stream", args=[project.pk]), data)
    if response.status_code != 200:
        return response, None
    assert response.streaming and response["Content-Type"] == "application/x-ndjson"
    events = [json.loads(line) for chunk in response.streaming_content for line in chunk.decode().splitlines() if line]
    return response, events


def test_both_answers_stream_in_pieces_and_the_pair_goes_to_the_queue(client, admin_user, two_policies):
    project, root, other = two_policies
    client.force_login(admin_user)
    data = {"prompt": "tell me about the cat", "checkpoint_a": root.pk, "checkpoint_b": other.pk,
            "max_new_tokens": 12, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    _, events = _stream(client, project, data)
    pieces = {side: [e["text"] for e in events if e.get("side") == side and "text" in e] for side in "ab"}
    assert len(pieces["a"]) > 1 and len(pieces["b"]) > 1  # streamed, not one blob at the end
    done = {e["side"]: e for e in events if e.get("done")}
    assert set(done) == {"a", "b"} and all(1 <= d["token_count"] <= 12 for d in done.values())
    assert events[-1]["end"] and events[-1]["pair"]

    _, again = _stream(client, project, data)
    assert [e for e in again if "text" in e and e["side"] == "a"] == [e for e in events if "text" in e and e["side"] == "a"]

    send = client.post(reverse("feedback:playground_send", args=[project.pk]), {"pair": events[-1]["pair"]})
    assert send.status_code == 200
    comparison = Comparison.objects.get(pk=send.json()["comparison"])
    assert comparison.status == "open" and comparison.prompt.text == "tell me about the cat"
    assert comparison.prompt.source == "playground"
    assert (comparison.sample_a.checkpoint, comparison.sample_b.checkpoint) == (root, other)
    assert comparison.sample_a.text == "".join(pieces["a"]).strip()
    assert comparison.sample_a.generation_params["seed"] == 7 and comparison.sample_b.generation_params["seed"] == 8
    assert comparison.sample_a.generation_params["top_p"] == 0.9
    # a second click stores nothing new
    assert client.post(reverse("feedback:playground_send", args=[project.pk]),
                       {"pair": events[-1]["pair"]}).json()["comparison"] == comparison.pk
    assert Comparison.objects.count() == 1


def test_a_held_out_prompt_is_used_as_is(client, admin_user, two_policies):
    project, root, other = two_policies
    held = Prompt.objects.get(project=project, split="held_out")
    client.force_login(admin_user)
    _, events = _stream(client, project, {"prompt_id": held.pk, "checkpoint_a": root.pk, "checkpoint_b": root.pk,
                                          "max_new_tokens": 4, "temperature": 0.7, "top_p": 1.0})
    comparison = Comparison.objects.get(pk=client.post(reverse("feedback:playground_send", args=[project.pk]),
                                                       {"pair": events[-1]["pair"]}).json()["comparison"])
    assert comparison.prompt == held and Prompt.objects.filter(project=project).count() == 9


def test_settings_are_validated_and_capped(client, admin_user, two_policies, tiny_models):
    project, root, other = two_policies
    foreign = make_project(tiny_models, name="Other", first_batch=0)
    foreign_ckpt = Checkpoint.objects.get(project=foreign)
    client.force_login(admin_user)
    response, _ = _stream(client, project, {"prompt": "", "checkpoint_a": foreign_ckpt.pk, "checkpoint_b": other.pk,
                                            "max_new_tokens": 10_000, "temperature": 0, "top_p": 1.0})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) >= {"prompt", "checkpoint_a", "max_new_tokens", "temperature"}
    assert "256" in errors["max_new_tokens"][0]


def test_forged_or_foreign_pairs_are_refused(client, admin_user, two_policies, tiny_models):
    project, root, other = two_policies
    client.force_login(admin_user)
    response = client.post(reverse("feedback:playground_send", args=[project.pk]), {"pair": "made-up"})
    assert response.status_code == 400 and response.json()["errors"]["pair"] == "not a pair this playground produced"
    foreign = make_project(tiny_models, name="Other", first_batch=0)
    _, events = _stream(client, project, {"prompt": "hi", "checkpoint_a": root.pk, "checkpoint_b": other.pk,
                                          "max_new_tokens": 2, "temperature": 1.0, "top_p": 1.0})
    response = client.post(reverse("feedback:playground_send", args=[foreign.pk]), {"pair": events[-1]["pair"]})
    assert response.status_code == 400 and not Comparison.objects.exists()


def test_model_cache_keeps_at_most_two(tiny_models, tmp_path):
    import shutil

    from training.model_cache import ModelCache

    cache = ModelCache(2)
    paths = []
    for i in range(3):
        shutil.copytree(tiny_models["policy"], tmp_path / f"p{i}")
        paths.append(str(tmp_path / f"p{i}"))
    first = cache.get(paths[0])
    assert cache.get(paths[0]) is first  # loaded once
    cache.get(paths[1])
    cache.get(paths[0])  # now the most recent
    cache.get(paths[2])
    assert cache.paths() == [paths[0], paths[2]]


def test_playground_page_is_escaped_and_scripted_from_a_file(client, admin_user, two_policies):
    project, root, other = two_policies
    Prompt.objects.create(project=project, messages=[{"role": "user", "content": "<script>alert(1)</script>"}],
                          split="held_out")
    client.force_login(admin_user)
    html = client.get(reverse("feedback:playground", args=[project.pk])).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "playground.js" in html and "<script>" not in html  # no inline script (CSP)
