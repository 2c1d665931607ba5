"""The OpenAI-compatible endpoint, driven by the official `openai` client against a live server."""
import json

import openai
import pytest
from rest_framework.authtoken.models import Token

from feedback.models import Checkpoint
from tests.helpers import make_project

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(settings, live_server, tiny_models, alice, bob):
    """A tiny project alice belongs to (bob does not), served by the serving process's routes."""
    settings.ROOT_URLCONF = "rlhf_site.serve_urls"
    project = make_project(tiny_models, name="Support bot", first_batch=0, members=[alice])
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=Token.objects.create(user=alice).key,
                           max_retries=0, timeout=60)
    return project, client


def ask(client, **kwargs):
    return client.chat.completions.create(
        **{"model": "Support bot/active", "messages": [{"role": "user", "content": "tell me about the cat"}],
           "max_tokens": 6, **kwargs})


def test_plain_completion_with_usage_and_seed(served):
    project, client = served
    first = ask(client, temperature=0.7, top_p=0.9, seed=11)
    choice = first.choices[0]
    assert first.object == "chat.completion" and first.model == "Support bot/active"
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 1 <= first.usage.completion_tokens <= 6 and first.usage.prompt_tokens > 3
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    again = ask(client, temperature=0.7, top_p=0.9, seed=11)
    assert again.choices[0].message.content == choice.message.content  # the seed is the request's own
    root = Checkpoint.objects.get(project=project)
    by_id = ask(client, model=str(root.pk), seed=11, temperature=0.7, top_p=0.9)
    by_round = ask(client, model=f"{project.pk}/round-0", seed=11, temperature=0.7, top_p=0.9)
    assert by_id.choices[0].message.content == by_round.choices[0].message.content == choice.message.content


def test_streamed_pieces_add_up_to_the_completion(served):
    _, client = served
    whole = ask(client, seed=5, max_tokens=10).choices[0].message.content
    stream = ask(client, seed=5, max_tokens=10, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] in (
        ["stop"], ["length"])
    assert chunks[-1].usage.completion_tokens >= 1 and not chunks[-1].choices


def test_n_choices_differ_and_stop_sequences_cut(served):
    _, client = served
    many = ask(client, n=3, seed=1, max_tokens=8, temperature=1.0)
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert len({c.message.content for c in many.choices}) > 1
    words = many.choices[0].message.content.split()
    assert len(words) >= 3
    cut = ask(client, n=3, seed=1, max_tokens=8, temperature=1.0, stop=[words[2], "zzz"])
    assert cut.choices[0].message.content == " ".join(words[:2])
    assert cut.choices[0].finish_reason == "stop"
    assert all(words[2] not in c.message.content.split() for c in cut.choices)


def test_models_lists_what_the_caller_may_use(served, live_server, bob):
    project, client = served
    assert {m.id for m in client.models.list()} == {"Support bot/active", "Support bot/round-0"}
    outsider = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=Token.objects.create(user=bob).key,
                             max_retries=0)
    assert list(outsider.models.list()) == []


def test_unknown_model_and_not_a_member_are_404(served, live_server, bob):
    _, client = served
    with pytest.raises(openai.NotFoundError) as err:
        ask(client, model="Support bot/round-7")
    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"
    outsider = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=Token.objects.create(user=bob).key,
                             max_retries=0)
    with pytest.raises(openai.NotFoundError):
        ask(outsider)


def test_bad_token_is_401_in_openai_shape(served, live_server):
    bad = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        ask(bad)
    assert err.value.status_code == 401 and err.value.body["code"] == "invalid_api_key"


def test_bad_parameter_is_400_naming_it(served):
    _, client = served
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, temperature=5)
    assert err.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, n=0)
    assert err.value.body["param"] == "n"
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, messages=[{"role": "wizard", "content": "hi"}])
    assert err.value.body["param"] == "messages[0].role"


def test_rate_limited_per_token(served, monkeypatch):
    from rest_framework.throttling import ScopedRateThrottle

    # DRF reads the rates once, at import; monkeypatch puts the original dict back afterwards
    # (the cache itself is fresh per test: see tests/conftest.py).
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "serve": "2/min"})
    _, client = served
    client.models.list()
    client.models.list()
    with pytest.raises(openai.RateLimitError):
        client.models.list()


def test_the_web_process_does_not_serve_v1(client):
    assert client.post("/v1/chat/completions", data=json.dumps({}), content_type="application/json").status_code == 404
