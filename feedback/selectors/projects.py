"""Which projects a user may see: staff see all, everyone else only the projects they belong to."""
from django.contrib.auth.models import AbstractUser
from django.db.models import QuerySet
from django.http import Http404

from feedback.models import Project, ProjectMembership


def projects_for_user(user: AbstractUser, *, include_archived: bool | None = None) -> QuerySet[Project]:
    """The projects `user` may work in.

    Annotators never see archived projects; staff see them unless include_archived is False.
    """
    projects = Project.objects.all()
    if not user.is_staff:
        projects = projects.filter(memberships__user=user)
        include_archived = False
    if include_archived is False:
        projects = projects.filter(archived_at__isnull=True)
    return projects.order_by("name")


def project_for_user(user: AbstractUser, project_id) -> Project:
    """One project `user` may work in, or Http404 (the same answer whether it exists or not)."""
    try:
        return projects_for_user(user).get(pk=int(project_id))
    except (TypeError, ValueError, Project.DoesNotExist):
        raise Http404("no such project") from None


def project_members(project: Project) -> QuerySet[ProjectMembership]:
    return ProjectMembership.objects.filter(project=project).select_related("user").order_by("user__username")
