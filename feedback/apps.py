from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _create_cache_table(using: str = "default", **kwargs) -> None:
    """`migrate` also creates the database cache's table, so no deployment forgets it."""
    from django.conf import settings
    from django.core.management import call_command

    if any(c["BACKEND"].endswith("DatabaseCache") for c in settings.CACHES.values()):
        call_command("createcachetable", database=using, verbosity=0)


class FeedbackConfig(AppConfig):
    """Preference collection, training rounds and checkpoints."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "feedback"
    verbose_name = "RLHF Studio"

    def ready(self) -> None:
        from django.conf import settings

        from training import device

        post_migrate.connect(_create_cache_table, sender=self)
        # Every process (web, worker, serving) hands training/ the device from the settings;
        # nothing touches CUDA until a model is loaded.
        device.configure(settings.RLHF_DEVICE, settings.RLHF_DTYPE)
