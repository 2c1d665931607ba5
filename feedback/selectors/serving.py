"""Which checkpoint a serving `model` name means, for a given user.

Names: `<project>/active`, `<project>/round-N` (round 0 is the project's root policy),
or a checkpoint id. `<project>` is the project's name or id. A project the user may not
see answers exactly as a project that does not exist, so names cannot be probed.
"""
from django.db.models import Q

from feedback.models import Checkpoint, Project
from feedback.selectors.checkpoints import active_policy, reference_policy
from feedback.selectors.projects import projects_for_user


class UnknownModel(LookupError):
    """No checkpoint the user may use has this name."""


def _project(user, ref: str) -> Project:
    projects = projects_for_user(user)
    query = Q(name=ref)
    if ref.isdigit():
        query |= Q(pk=int(ref))
    found = list(projects.filter(query)[:2])
    if not found:
        raise UnknownModel(ref)
    # A project literally named "7" wins over the project with id 7.
    return next((p for p in found if p.name == ref), found[0])


def serving_checkpoint(user, model: str) -> Checkpoint:
    """The policy checkpoint `model` names, among those `user` may use, or UnknownModel."""
    model = (model or "").strip()
    if model.isdigit():
        checkpoint = Checkpoint.objects.filter(
            pk=int(model), kind=Checkpoint.Kind.POLICY, project__in=projects_for_user(user)).first()
        if checkpoint is None:
            raise UnknownModel(model)
        return checkpoint
    ref, slash, which = model.rpartition("/")
    if not slash or not ref:
        raise UnknownModel(model)
    project = _project(user, ref)
    checkpoint = None
    if which == "active":
        checkpoint = active_policy(project)
    elif which.startswith("round-") and which[len("round-"):].isdigit():
        number = int(which[len("round-"):])
        if number == 0:
            checkpoint = reference_policy(project)
        else:
            checkpoint = Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.POLICY,
                                                   produced_by__number=number).order_by("-id").first()
    if checkpoint is None:
        raise UnknownModel(model)
    return checkpoint


def serving_models(user) -> list[dict]:
    """Every name `user` may serve: each project's active policy and each round's policy.

    A round retried after a discarded checkpoint has two; its name means the newer, as in
    serving_checkpoint().
    """
    listed = {}
    for project in projects_for_user(user):
        policies = (Checkpoint.objects.filter(project=project, kind=Checkpoint.Kind.POLICY)
                    .select_related("produced_by").order_by("created_at", "id"))
        for checkpoint in policies:
            if checkpoint.is_active:
                listed[f"{project.name}/active"] = {"checkpoint": checkpoint, "project": project}
            number = checkpoint.produced_by.number if checkpoint.produced_by_id else (0 if checkpoint.parent_id is None else None)
            if number is not None:
                listed[f"{project.name}/round-{number}"] = {"checkpoint": checkpoint, "project": project}
    return [{"id": name, **entry} for name, entry in listed.items()]
