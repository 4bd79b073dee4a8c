import json

from django.core.management.base import BaseCommand, CommandError

from scheduling.health import health_check


class Command(BaseCommand):
    help = ("Exit 0 when the database and the broker answer and the last scan is fresh (beat and a worker "
            "are alive); exit 1 otherwise, saying which check failed. Lists every heartbeat by the rule of "
            "scheduling/health.py. For orchestrators' liveness probes.")

    def add_arguments(self, parser):
        parser.add_argument("--max-scan-age", type=float, default=None,
                            help="Seconds the last scan may be old (default: PUBLISHER_HEALTH_SCAN_MAX_AGE, "
                                 "else six scan intervals, at least 60).")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the checks as JSON.")

    def handle(self, *args, max_scan_age=None, as_json=False, **options):
        if max_scan_age is not None and max_scan_age <= 0:
            raise CommandError(f"--max-scan-age must be a positive number of seconds, got {max_scan_age}.")
        health = health_check(max_scan_age=max_scan_age)
        if as_json:
            self.stdout.write(json.dumps(health.as_dict(), indent=2))
        else:
            for check in health.checks:
                mark = "ok  " if check.ok else ("FAIL" if check.required else "warn")
                self.stdout.write(f"{mark} {check.name:<9} {check.detail}")
        if not health.healthy:
            failed = ", ".join(c.name for c in health.checks if c.required and not c.ok)
            raise CommandError(f"unhealthy: {failed}")
        if not as_json:
            self.stdout.write("healthy")

