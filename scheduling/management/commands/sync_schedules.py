from django.core.management.base import BaseCommand

from scheduling.services import schedules_sync


class Command(BaseCommand):
    help = ("Write the declared periodic jobs (scheduling/schedules.py) into django-celery-beat's tables. "
            "Idempotent: creates what is missing and keeps edits made in the admin unless --reset.")

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true",
                            help="Overwrite existing rows with the declared defaults (loses admin edits).")
        parser.add_argument("--dry-run", action="store_true", help="Show what would change; write nothing.")

    def handle(self, *args, reset=False, dry_run=False, verbosity=1, **options):
        result = schedules_sync(reset=reset, dry_run=dry_run)
        if verbosity < 1:
            return
        prefix = "(dry run) " if dry_run else ""
        for label, names in (("created", result.created), ("reset", result.updated),
                             ("disabled (no longer declared)", result.disabled)):
            for name in names:
                self.stdout.write(f"{prefix}{label}: {name}")
        for name in result.unchanged:
            if name in result.edited:
                self.stdout.write(f"{prefix}kept as edited: {name} (differs from the declaration: "
                                  f"{', '.join(result.edited[name])}; --reset restores it)")
            else:
                self.stdout.write(f"{prefix}unchanged: {name}")
