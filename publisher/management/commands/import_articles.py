from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from publisher import cli, imports
from publisher.models import ArticleStatus


class Command(BaseCommand):
    help = ("Import articles from a CSV file (header: title,body,publish_at,unpublish_at, optionally external_id) "
            "or a JSON list of objects with those keys. Each row is checked like the admin's form and saved as a "
            "draft, or scheduled when it has a publish_at; a rejected row is reported with its number and the "
            "reason, and writes nothing. Re-running a file updates or skips the rows it imported before (found by "
            "external_id, or by title, publish_at and body), never duplicates them. Exits 1 when any row was "
            "rejected.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="The .csv or .json file to import.")
        parser.add_argument("--format", choices=["csv", "json"], help="Format, when the file name does not say.")
        parser.add_argument("--time-zone", metavar="ZONE",
                            help="Zone of times given without an offset (default: the site's TIME_ZONE). A local "
                                 "time the clocks skip or show twice is rejected.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Check every row the same way and report; write and schedule nothing. Each row "
                                 "is checked without writing, so publishing goes on meanwhile.")

    def handle(self, *args, file, format=None, time_zone=None, dry_run=False, **options):
        zone = cli.parse_zone(time_zone)
        try:
            rows = imports.read_rows(Path(file), file_format=format)
        except imports.ImportFileError as exc:
            raise CommandError(f"{exc} Nothing was imported.") from None
        if not rows:
            raise CommandError(f"{file} holds no articles. Nothing was imported.")
        bar = cli.progress(total=len(rows), unit="rows", description="checking" if dry_run else "importing",
                           stream=self.stderr._out)
        with bar:
            result = imports.rows_import(rows, zone=zone, on_row=lambda: bar.update(1), dry_run=dry_run)
        verb = "would import" if dry_run else "imported"
        scheduled = sum(1 for a in result.imported if a.status != ArticleStatus.DRAFT)
        prefix = "(dry run) " if dry_run else ""
        self.stdout.write(f"{prefix}{verb} {len(result.imported)} of {len(rows)} rows "
                          f"({scheduled} scheduled, {len(result.imported) - scheduled} drafts): "
                          f"{len(result.created)} created, {len(result.updated)} updated, "
                          f"{len(result.existing)} skipped as existing, {len(result.rejected)} rejected"
                          + (f"; {result.claimed} due now, claimed and dispatched in chunks" if result.claimed else ""))
        for rejected in result.rejected:
            self.stdout.write(f"rejected row {rejected.number}: {rejected.reason}")
        if result.rejected:
            raise CommandError(f"{len(result.rejected)} of {len(rows)} rows rejected (listed above); "
                               f"the other rows were {'checked' if dry_run else 'imported'}.")
