from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from publisher.selectors import local_day_bounds
from scheduling import reports, selectors


class Command(BaseCommand):
    help = ("Build the daily report of one past local day (TIME_ZONE) and print it. Idempotent: an existing "
            "report is shown as stored unless --rebuild. Nothing is mailed unless --email (at most once).")

    def add_arguments(self, parser):
        parser.add_argument("date", nargs="?", default="yesterday",
                            help='The local day, as YYYY-MM-DD, or "yesterday" (the default).')
        parser.add_argument("--rebuild", action="store_true",
                            help="Recompute an existing report in place (its e-mail state is kept).")
        parser.add_argument("--email", action="store_true",
                            help="Mail it to the opted-in staff unless it was already mailed.")
        parser.add_argument("--dry-run", action="store_true", help="Compute and print; store and send nothing.")

    def handle(self, *args, rebuild=False, email=False, dry_run=False, **options):
        day = self._parse(options["date"])
        if dry_run:
            self._print_dry_run(day)
            return
        try:
            report, created = reports.daily_report_build(report_date=day, rebuild=rebuild, email=email)
        except reports.ReportError as exc:
            raise CommandError(str(exc)) from None
        verb = "built" if created else ("rebuilt" if rebuild else "already there (use --rebuild to recompute)")
        self.stdout.write(f"{report}: {verb}")
        self.stdout.write(reports.report_subject(report))
        self.stdout.write(reports.report_context(report)["text_chart"])
        if email:
            status = reports.daily_report_email(report_id=report.pk, include_skipped=True)
            self.stdout.write(f"e-mail: {status}")

    def _parse(self, raw: str) -> date:
        if raw == "yesterday":
            return timezone.localdate() - timedelta(days=1)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise CommandError(f"{raw!r} is not a date: expected YYYY-MM-DD (e.g. 2026-03-29) or \"yesterday\".") \
                from None

    def _print_dry_run(self, day: date) -> None:
        zone = selectors.site_zone()
        try:
            start, end = local_day_bounds(day=day, zone=zone)
        except OverflowError:
            raise CommandError(f"{day:%Y-%m-%d} is out of range.") from None
        if end > timezone.now():
            raise CommandError(f"{day:%Y-%m-%d} has not ended yet in {zone.key}; a report covers a whole past day.")
        stats = selectors.report_stats(start=start, end=end, zone=zone)
        self.stdout.write(f"(dry run) {day:%Y-%m-%d} in {zone.key}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
        for key, value in stats.items():
            if key != "publications_per_hour":
                self.stdout.write(f"  {key}: {value}")
