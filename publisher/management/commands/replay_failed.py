from django.core.management.base import BaseCommand

from publisher import cli, services
from publisher.states import NEEDS_ATTENTION


class Command(BaseCommand):
    help = ("Retry failed (and missed) articles through the same service as the admin's “Retry” action: one whose "
            "publish time has come is published now, one whose time is still ahead is scheduled again for it. "
            "Without filters, every failed or missed article.")

    def add_arguments(self, parser):
        cli.add_filter_arguments(parser, statuses=list(NEEDS_ATTENTION))
        parser.add_argument("--dry-run", action="store_true",
                            help="List what would be retried (and what not, and why); change nothing.")

    def handle(self, *args, dry_run=False, **options):
        articles = cli.filtered_articles(options, default_statuses=list(NEEDS_ATTENTION), require_filter=False)
        article_ids = list(articles.values_list("pk", flat=True))
        cli.bulk_command(self, lambda chunk, _: services.articles_retry(article_ids=chunk, actor=None),
                         article_ids, description="retrying", verb="retried", dry_run=dry_run,
                         nothing="No failed or missed article matches. Nothing was retried.")
