"""Routes of the annotator and studio pages."""
from django.urls import path

from feedback import views, views_studio

app_name = "feedback"

urlpatterns = [
    path("", views.home, name="home"),
    path("annotate/", views.annotate, name="annotate"),
    path("annotate/<int:assignment_id>/vote/", views.annotate_vote, name="annotate_vote"),
    path("annotate/<int:assignment_id>/skip/", views.annotate_skip, name="annotate_skip"),
    path("studio/", views.studio, name="studio"),
    path("studio/projects/<int:project_id>/rounds/", views.studio_round_launch, name="round_launch"),
    path("studio/rounds/<int:round_id>/", views_studio.round_detail, name="round_detail"),
    path("studio/rounds/<int:round_id>/status.json", views_studio.round_status_json, name="round_status"),
    path("studio/rounds/<int:round_id>/cancel/", views_studio.round_cancel_view, name="round_cancel"),
    path("studio/rounds/<int:round_id>/retry/", views_studio.round_retry_view, name="round_retry"),
    path("studio/projects/<int:project_id>/launch/", views_studio.round_launch_page, name="round_launch_page"),
    path("studio/projects/<int:project_id>/launch/plan/", views_studio.round_plan_partial, name="round_plan"),
    path("studio/projects/<int:project_id>/checkpoints/", views_studio.checkpoints_page, name="checkpoints"),
    path("studio/projects/<int:project_id>/checkpoints/<int:checkpoint_id>/promote/",
         views_studio.checkpoint_promote_view, name="checkpoint_promote"),
    path("studio/projects/<int:project_id>/checkpoints/rollback/",
         views_studio.checkpoint_rollback_view, name="checkpoint_rollback"),
    path("studio/projects/<int:project_id>/playground/", views_studio.playground, name="playground"),
    path("studio/projects/<int:project_id>/playground/stream/", views_studio.playground_stream_view,
         name="playground_stream"),
    path("studio/projects/<int:project_id>/playground/send/", views_studio.playground_send_view,
         name="playground_send"),
]
