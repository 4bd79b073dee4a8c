from django.core.management.base import BaseCommand

from scheduling.services import cleanup_run


class Command(BaseCommand):
    help = ("Prune task results past result_expires (database result backends), finished notifications and job "
            "runs past their retention, subscribers whose confirmation link expired unused; hand stuck claims to the sweeper. Never articles, audit events or reports. "
            "Runs until nothing is left (the periodic job does one bounded batch per run).")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would be removed; remove nothing.")

    def handle(self, *args, dry_run=False, **options):
        total = None
        while True:
            result = cleanup_run(dry_run=dry_run)
            if total is None:
                total = result
            else:
                total.notifications += result.notifications
                total.job_runs += result.job_runs
                total.webhook_deliveries += result.webhook_deliveries
                total.pending_subscribers += result.pending_subscribers
            if dry_run or not result.more:
                break
        prefix = "(dry run) would remove" if dry_run else "removed"
        self.stdout.write(f"task results: {total.task_results}")
        self.stdout.write(f"{prefix} {total.notifications} notifications and {total.job_runs} job runs")
        self.stdout.write(f"{prefix} {total.webhook_deliveries} finished webhook deliveries")
        self.stdout.write(f"{prefix} {total.pending_subscribers} subscribers who never confirmed in time")
        self.stdout.write(f"stuck claims {'found' if dry_run else 'redispatched'}: {total.claims_redispatched}"
                          + ("" if dry_run else f", given up: {total.claims_given_up}"))
        self.stdout.write(f"report e-mails interrupted mid-send: {total.report_emails_interrupted}")
