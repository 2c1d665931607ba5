from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    """Preference collection, training rounds and checkpoints."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "feedback"
    verbose_name = "RLHF Studio"
