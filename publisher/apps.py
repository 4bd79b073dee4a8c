from django.apps import AppConfig


class PublisherConfig(AppConfig):
    name = "publisher"
    verbose_name = "Publishing"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
