from django.core.management.base import BaseCommand

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
        cli.bulk_command(self, lambda chunk, _: services.articles_unschedule(article_ids=chunk, actor=None),
                         article_ids, description="unscheduling", verb="unscheduled", dry_run=dry_run,
                         nothing="No article matches these filters. Nothing was changed.")
