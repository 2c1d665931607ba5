"""Routes of the annotator and studio pages."""
from django.urls import path

from feedback import views, views_projects, views_studio

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
    path("studio/projects/<int:project_id>/checkpoints/<int:checkpoint_id>/export/",
         views_studio.checkpoint_export_view, name="checkpoint_export"),
    path("studio/projects/<int:project_id>/checkpoints/rollback/",
         views_studio.checkpoint_rollback_view, name="checkpoint_rollback"),
    path("studio/projects/<int:project_id>/playground/", views_studio.playground, name="playground"),
    path("studio/projects/<int:project_id>/playground/stream/", views_studio.playground_stream_view,
         name="playground_stream"),
    path("studio/projects/<int:project_id>/playground/send/", views_studio.playground_send_view,
         name="playground_send"),
    # projects and people (feedback/views_projects.py)
    path("studio/projects/", views_projects.projects_list, name="studio_projects"),
    path("studio/projects/new/", views_projects.project_new, name="studio_project_new"),
    path("studio/projects/<int:project_id>/", views_projects.project_detail, name="studio_project"),
    path("studio/projects/<int:project_id>/settings/", views_projects.project_settings, name="studio_project_settings"),
    path("studio/projects/<int:project_id>/archive/", views_projects.project_archive_view, name="studio_project_archive"),
    path("studio/projects/<int:project_id>/setup/", views_projects.project_setup_view, name="studio_project_setup"),
    path("studio/projects/<int:project_id>/batches/", views_projects.project_batch, name="studio_batch"),
    path("studio/projects/<int:project_id>/exports/", views_projects.project_export_job, name="studio_export_job"),
    path("studio/projects/<int:project_id>/prompts/", views_projects.project_prompts, name="studio_prompts"),
    path("studio/projects/<int:project_id>/prompts/confirm/", views_projects.project_prompts_confirm,
         name="studio_prompts_confirm"),
    path("studio/projects/<int:project_id>/members/", views_projects.project_members_view, name="studio_members"),
    path("studio/projects/<int:project_id>/members/<int:user_id>/remove/", views_projects.project_member_remove,
         name="studio_member_remove"),
    path("studio/projects/<int:project_id>/queue/", views_projects.project_queue, name="studio_queue"),
    path("studio/comparisons/<int:comparison_id>/<str:action>/", views_projects.comparison_action,
         name="studio_comparison_action"),
    path("studio/annotators/", views_projects.annotators, name="studio_annotators"),
    path("studio/annotators/<int:user_id>/reset/", views_projects.annotator_reset, name="studio_annotator_reset"),
    path("studio/jobs/<int:job_id>/status.json", views_projects.job_status, name="studio_job_status"),
]
