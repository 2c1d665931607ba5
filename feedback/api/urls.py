"""Routes of /api/v1/ (scripts depend on these paths)."""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from feedback.api import views

router = DefaultRouter()
router.register("projects", views.ProjectViewSet, basename="project")
router.register("votes", views.MyVotesViewSet, basename="vote")
router.register("jobs", views.JobViewSet, basename="job")

rounds = views.RoundViewSet.as_view({"get": "list", "post": "create"})
round_detail = views.RoundViewSet.as_view({"get": "retrieve"})
round_cancel = views.RoundViewSet.as_view({"post": "cancel"})
round_review = views.RoundViewSet.as_view({"post": "review"})
round_retry = views.RoundViewSet.as_view({"post": "retry"})
checkpoints = views.CheckpointViewSet.as_view({"get": "list"})
checkpoint_promote = views.CheckpointViewSet.as_view({"post": "promote"})
checkpoint_rollback = views.CheckpointViewSet.as_view({"post": "rollback"})

urlpatterns = [
    path("", include(router.urls)),
    path("projects/<int:project_pk>/rounds/", rounds, name="round-list"),
    path("projects/<int:project_pk>/rounds/<int:number>/", round_detail, name="round-detail"),
    path("projects/<int:project_pk>/rounds/<int:number>/cancel/", round_cancel, name="round-cancel"),
    path("projects/<int:project_pk>/rounds/<int:number>/review/", round_review, name="round-review"),
    path("projects/<int:project_pk>/rounds/<int:number>/retry/", round_retry, name="round-retry"),
    path("projects/<int:project_pk>/checkpoints/", checkpoints, name="checkpoint-list"),
    path("projects/<int:project_pk>/checkpoints/<int:pk>/promote/", checkpoint_promote, name="checkpoint-promote"),
    path("projects/<int:project_pk>/checkpoints/rollback/", checkpoint_rollback, name="checkpoint-rollback"),
    path("comparisons/<int:comparison_id>/votes/", views.vote_create, name="vote-create"),
    path("checkpoints/<int:checkpoint_id>/generate/", views.checkpoint_generate, name="checkpoint-generate"),
    path("checkpoints/<int:checkpoint_id>/export/", views.checkpoint_export, name="checkpoint-export"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # split: the page's script is a separate file, so the docs work under a CSP without inline script
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]
