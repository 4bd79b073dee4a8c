from django.core.management.base import BaseCommand

from scheduling.services import schedules_sync


class Command(BaseCommand):
    help = ("Write the declared periodic jobs (scheduling/schedules.py) into django-celery-beat's tables. "
            "Idempotent: creates what is missing and keeps edits made in the admin unless --reset.")

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true",
                            help="Overwrite existing rows with the declared defaults (loses admin edits).")

    def handle(self, *args, reset=False, verbosity=1, **options):
        result = schedules_sync(reset=reset)
        if verbosity < 1:
            return
        for label, names in (("created", result.created), ("reset", result.updated),
                             ("kept as edited", result.unchanged), ("disabled (no longer declared)", result.disabled)):
            for name in names:
                self.stdout.write(f"{label}: {name}")
