"""A project built straight from rows (no models loaded): round 0, round 1's policy, external pairs, votes."""
import random

from feedback.models import Assignment, Checkpoint, Comparison, Project, ProjectMembership, Prompt, Sample, TrainingRound, Vote


def build_project(users, *, name="Board"):
    """A project with round-0 and round-1 policies (round 1 done) and a pair of external models."""
    project = Project.objects.create(name=name, votes_per_comparison=3)
    for u in users:
        ProjectMembership.objects.create(project=project, user=u)
    r0 = Checkpoint.objects.create(project=project, kind="policy", name="round 0", path="/x/r0", sha256="0" * 64,
                                   is_active=False)
    rnd = TrainingRound.objects.create(project=project, number=1, status="done", parent_policy=r0,
                                       metrics={"reward_summary": {"eval_accuracy": 0.71},
                                                "ppo_summary": {"final_kl": 0.05}})
    r1 = Checkpoint.objects.create(project=project, kind="policy", name="round 1", path="/x/r1", sha256="1" * 64,
                                   parent=r0, produced_by=rnd, is_active=True)
    rnd.policy_checkpoint = r1
    rnd.save()
    return project, r0, r1, rnd


def add_comparison(project, *, a, b, batch=0, training_round=None, gold=""):
    """A comparison of checkpoint/model `a` (sample A) against `b`."""
    prompt = Prompt.objects.create(project=project, messages=[{"role": "user", "content": "hi"}])

    def sample(src):
        if isinstance(src, Checkpoint):
            return Sample.objects.create(prompt=prompt, checkpoint=src, text=f"from {src.name}")
        return Sample.objects.create(prompt=prompt, model_name=src, text=f"from {src}")

    return Comparison.objects.create(project=project, prompt=prompt, sample_a=sample(a), sample_b=sample(b),
                                     batch=batch, round=training_round, votes_needed=3, gold_choice=gold)


def vote(comparison, user, choice, *, left_is_a=True, ms=5000):
    """Store a vote as the queue would have (an assignment, then the vote)."""
    Assignment.objects.create(comparison=comparison, annotator=user, status="voted", left_is_a=left_is_a,
                              reserved_until="2030-01-01T00:00:00Z")
    return Vote.objects.create(comparison=comparison, annotator=user, choice=choice, time_spent_ms=ms,
                               left_sample=comparison.sample_a if left_is_a else comparison.sample_b)
