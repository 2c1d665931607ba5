"""Small builders shared by tests."""
import random

TINY_WORDS = (
    "the a an cat dog sat on mat hello world good bad great terrible yes no please thanks why how what is are "
    "you i we it sky blue green red tell me about say something nice short long answer question explain"
).split()

TINY_PROMPTS = [
    "tell me about the cat", "why is the sky blue", "say something nice", "what is a dog",
    "explain the world", "how are you", "tell me something good", "what is green",
]


def this_cpu() -> dict:
    """Where a round or job records it ran on this machine (no GPU): the CPU, bf16 if it computes it natively."""
    from training.device import cpu_has_native_bf16

    return {"device": "cpu", "dtype": "bfloat16" if cpu_has_native_bf16() else "float32", "gpu_name": None}


def toy_preferences(n: int, seed: int = 0) -> list[dict]:
    """Preference records whose chosen responses say 'good', rejected ones 'bad', in otherwise random words."""
    rng = random.Random(seed)
    filler = "the cat dog sat on mat sky blue green red".split()
    records = []
    for _ in range(n):
        words = rng.sample(filler, 4)
        records.append({
            "prompt": rng.choice(TINY_PROMPTS),
            "chosen": " ".join(words[:2] + ["good"] + words[2:]),
            "rejected": " ".join(words[:2] + ["bad"] + words[2:]),
        })
    return records


def make_project(tiny_models, *, name="Tiny", overlap=1, prompts=TINY_PROMPTS, first_batch=len(TINY_PROMPTS),
                 members=None):
    """A project on the tiny models, with prompts, its round-0 policy and a first batch.

    `members`: the users who may annotate it; None makes every non-staff user that exists
    now a member (the tests' alice and bob), [] makes none.
    """
    from django.contrib.auth import get_user_model

    from feedback.models import Project, ProjectMembership
    from feedback.services.generation import comparisons_generate, generation_config, prompts_for_batch
    from feedback.services.projects import project_policy_init, prompts_import

    project = Project.objects.create(
        name=name, policy_base_model=tiny_models["policy"], reward_base_model=tiny_models["reward"],
        votes_per_comparison=overlap, guidelines="Prefer **helpful** answers.",
        generation_settings={"max_new_tokens": 8, "temperature": 1.0, "top_p": 1.0, "batch_size": 4},
        # Random tiny models trip the degeneration guards by chance; tests of the guards
        # turn enforcement back on in the round's config.
        guard_settings={"enforce": False},
    )
    if members is None:
        members = get_user_model().objects.filter(is_staff=False)
    ProjectMembership.objects.bulk_create([ProjectMembership(project=project, user=user) for user in members])
    prompts_import(project=project, rows=list(prompts), source="test")
    checkpoint, _ = project_policy_init(project=project)
    if first_batch:
        comparisons_generate(
            project=project, prompts=prompts_for_batch(project, first_batch),
            checkpoint_a=checkpoint, checkpoint_b=checkpoint, batch=0, config=generation_config(project),
        )
    return project


def votes_cast(project, annotator, count: int) -> None:
    """`annotator` takes and answers `count` comparisons of `project` (mostly A, some B)."""
    from feedback.services.assignment import assignment_next
    from feedback.services.votes import vote_submit

    for i in range(count):
        assignment = assignment_next(annotator=annotator, project=project)
        vote_submit(annotator=annotator, assignment_id=assignment.pk, choice="a" if i % 3 else "b", strength=2)


def queue_project(n: int, overlap: int, name: str = "Concurrent"):
    """A project with `n` comparisons of two fixed samples each, `overlap` votes needed on each."""
    from feedback.models import Checkpoint, Comparison, Project, Prompt, Sample

    project = Project.objects.create(name=name, votes_per_comparison=overlap)
    checkpoint = Checkpoint.objects.create(project=project, kind="policy", path="/none", name="r0", sha256="0", is_active=True)
    prompts = Prompt.objects.bulk_create([Prompt(project=project, messages=[{"role": "user", "content": f"q{i}"}]) for i in range(n)])
    samples = Sample.objects.bulk_create(
        [Sample(prompt=p, checkpoint=checkpoint, text=f"{p.pk}-{side}") for p in prompts for side in "ab"]
    )
    Comparison.objects.bulk_create([
        Comparison(project=project, prompt=p, sample_a=samples[2 * i], sample_b=samples[2 * i + 1], votes_needed=overlap)
        for i, p in enumerate(prompts)
    ])
    return project


def queue_drained_at_once(project, users, *, timeout: float = 300) -> list[str]:
    """Every user, in a thread of its own started together, takes and votes until the queue is
    empty; the errors the threads met (a thread's exception is otherwise lost)."""
    import threading

    from django.db import connections

    from feedback.services.assignment import assignment_next
    from feedback.services.votes import vote_submit

    errors = []
    barrier = threading.Barrier(len(users))

    def work(user):
        try:
            barrier.wait()
            while (a := assignment_next(annotator=user, project=project)) is not None:
                vote_submit(annotator=user, assignment_id=a.pk, choice="a", idempotency_key=f"{user.pk}-{a.pk}")
                # as a web request does: the connection goes back to the pool after each vote, so
                # 20 annotators and the test's own connection share the pool's 20 on a loaded machine
                connections.close_all()
        except Exception as exc:  # returned to the caller
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    return errors
