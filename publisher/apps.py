from django.apps import AppConfig


class PublisherConfig(AppConfig):
    name = "publisher"
    verbose_name = "Publishing"

    def ready(self):
        from django.conf import settings
        from PIL import Image

        from . import checks  # noqa: F401  (registers the system checks)

        # Pillow warns past this many pixels and refuses twice as many, wherever it opens an
        # image (Django's ImageField included); the pipeline turns the warning into an error.
        Image.MAX_IMAGE_PIXELS = settings.PUBLISHER_MAX_IMAGE_PIXELS
