"""Routes of the annotator and studio pages."""
from django.urls import path

from feedback import views

app_name = "feedback"

urlpatterns = [
    path("", views.home, name="home"),
    path("annotate/", views.annotate, name="annotate"),
    path("annotate/<int:assignment_id>/vote/", views.annotate_vote, name="annotate_vote"),
    path("annotate/<int:assignment_id>/skip/", views.annotate_skip, name="annotate_skip"),
    path("studio/", views.studio, name="studio"),
    path("studio/projects/<int:project_id>/rounds/", views.studio_round_launch, name="round_launch"),
    path("studio/rounds/<int:round_id>/", views.round_detail, name="round_detail"),
    path("studio/rounds/<int:round_id>/cancel/", views.round_cancel_view, name="round_cancel"),
    path("studio/rounds/<int:round_id>/retry/", views.round_retry_view, name="round_retry"),
]
