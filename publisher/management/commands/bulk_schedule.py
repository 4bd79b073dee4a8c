from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from publisher import cli, schedule_rules, services


class Command(BaseCommand):
    help = ("Schedule (or reschedule) every article the filters select, through the same service as the admin's "
            "“Schedule…” action: all at --at, or one every --every minutes in id order. An article that cannot be "
            "scheduled (already live, no body, ...) is skipped with the reason.")

    def add_arguments(self, parser):
        parser.add_argument("--at", required=True, metavar="WHEN",
                            help="Publish time: ISO 8601, with an offset or in --time-zone (2026-12-01T09:00).")
        parser.add_argument("--every", type=int, default=0, metavar="MINUTES",
                            help="Spread them out: one every MINUTES after the first (default 0: all at once).")
        parser.add_argument("--unpublish-at", metavar="WHEN", help="Optional take-down time for all of them.")
        cli.add_filter_arguments(parser)
        parser.add_argument("--dry-run", action="store_true",
                            help="Run every check and report what would happen; change nothing.")

    def handle(self, *args, at, every=0, unpublish_at=None, dry_run=False, **options):
        zone = cli.parse_zone(options.get("time_zone"))
        try:
            publish_at = cli.parse_when(at, zone=zone, what="--at")
            unpublish = cli.parse_when(unpublish_at, zone=zone, what="--unpublish-at") if unpublish_at else None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if every < 0:
            raise CommandError(f"--every must be 0 or more minutes, got {every}.")
        errors = schedule_rules.bulk_time_errors(publish_at=publish_at, unpublish_at=unpublish)
        if errors:
            raise CommandError(cli.rule_errors_text(errors, {"publish_at": "--at", "unpublish_at": "--unpublish-at"}))
        article_ids = list(cli.filtered_articles(options).values_list("pk", flat=True))
        spacing = timedelta(minutes=every) if every else None

        def apply(chunk, done_so_far):
            # Spacing continues across chunks: the next free slot follows the ones taken.
            first = publish_at + spacing * done_so_far if spacing else publish_at
            return services.articles_schedule(article_ids=chunk, publish_at=first, unpublish_at=unpublish,
                                              spacing=spacing, actor=None)

        done = cli.bulk_command(self, apply, article_ids, description="scheduling", verb="scheduled",
                                dry_run=dry_run, nothing="No article matches these filters. Nothing was changed.")
        if done:
            last = done[-1].publish_at
            self.stdout.write(f"publish times: {done[0].publish_at.isoformat()}"
                              + (f" to {last.isoformat()}" if last != done[0].publish_at else ""))

