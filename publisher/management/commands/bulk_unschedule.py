from django.core.management.base import BaseCommand, CommandError

from publisher import cli, services


class Command(BaseCommand):
    help = ("Send every article the filters select back to draft (publish and unpublish times cleared), through "
            "the same service as the admin's “Unschedule” action. An article that cannot be unscheduled (already "
            "live, a draft) is skipped with the reason.")

    def add_arguments(self, parser):
        cli.add_filter_arguments(parser)
        parser.add_argument("--dry-run", action="store_true",
                            help="Run every check and report what would happen; change nothing.")

    def handle(self, *args, dry_run=False, **options):
        article_ids = list(cli.filtered_articles(options).values_list("pk", flat=True))
        if not article_ids:
            raise CommandError("No article matches these filters. Nothing was changed.")
        done, skipped = cli.bulk_run(
            lambda chunk, _: services.articles_unschedule(article_ids=chunk, actor=None), article_ids,
            description="unscheduling", stream=self.stderr._out, dry_run=dry_run)
        cli.bulk_report(self.stdout, done=done, skipped=skipped, verb="unscheduled", dry_run=dry_run)
