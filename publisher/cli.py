"""What the operator commands share: reading times and filters from the command line, the
progress bar, and the dry run (the real work, rolled back).

Commands stay thin: they parse with these helpers and call the same services as the admin.
"""

import contextlib
import shutil
import sys
from datetime import date, datetime, time, timedelta, tzinfo

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from tqdm import tqdm

from .models import Article, ArticleStatus
from .zones import UnknownZoneError, local_time_resolve, zone_named

# Articles one service call handles: the progress bar moves per chunk, and every article still
# gets its own transaction inside the service.
CHUNK = 100


def parse_zone(name: str | None) -> tzinfo:
    try:
        return zone_named(name or "")
    except UnknownZoneError as exc:
        raise CommandError(f"--time-zone {exc}") from None


def parse_when(text: str, *, zone: tzinfo, what: str) -> datetime:
    """An ISO 8601 time: with an offset ('2026-12-01T09:00+01:00', 'Z') it means that instant;
    without one it is a wall-clock time in `zone`, and one the clocks skip or show twice is
    refused with the reason (same rules as the admin's forms). Raises ValueError in words."""
    text = (text or "").strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date and time: expected ISO 8601 such as "
                         "2026-12-01T09:00 or 2026-12-01T09:00+01:00.") from None
    if timezone.is_aware(value):
        return value
    try:
        return local_time_resolve(naive=value, zone=zone)
    except ValidationError as exc:
        raise ValueError(f"{what}: {' '.join(exc.messages)} Give the UTC offset to say which.") from None


def parse_day(text: str, *, zone: tzinfo, what: str, end: bool = False) -> datetime:
    """A date (YYYY-MM-DD, the start of that local day, or with `end` the start of the next)
    or a full time as `parse_when` reads it."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        try:
            return parse_when(text, zone=zone, what=what)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if end:
        day += timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=zone)


def rule_errors_text(errors, options: dict[str, str]) -> str:
    """Broken schedule rules as one command-line message, each after the option it concerns
    (`options` maps a field such as publish_at to its option, --at)."""
    return " ".join(f"{options[e.field]}: {e.message}" if e.field in options else e.message for e in errors)


def parse_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise CommandError(f"--ids {text!r}: expected article ids separated by commas, such as 12,13,40.") from None
    if not ids or any(i <= 0 for i in ids):
        raise CommandError(f"--ids {text!r}: expected positive article ids separated by commas.")
    return ids


def add_filter_arguments(parser: CommandParser, *, statuses: list[str] | None = None) -> None:
    group = parser.add_argument_group("which articles (combined with AND)")
    group.add_argument("--status", action="append", choices=statuses or ArticleStatus.values, default=None,
                       help="Only articles in this status (repeat for several).")
    group.add_argument("--title-contains", metavar="TEXT", help="Only articles whose title contains TEXT "
                                                                "(case-insensitive).")
    group.add_argument("--ids", metavar="ID,ID,...", help="Only these article ids.")
    group.add_argument("--from", dest="date_from", metavar="WHEN",
                       help="Only articles whose publish time is at or after WHEN (YYYY-MM-DD or ISO time).")
    group.add_argument("--to", dest="date_to", metavar="WHEN",
                       help="Only articles whose publish time is before WHEN (a date includes that whole day).")
    parser.add_argument("--time-zone", metavar="ZONE",
                        help="Zone of times given without an offset (default: the site's TIME_ZONE).")


def filtered_articles(options: dict, *, default_statuses: list[str] | None = None,
                      require_filter: bool = True) -> QuerySet:
    """The articles the filter options select, in id order. Refuses an empty filter (it would
    select the whole table) unless `require_filter` is off."""
    zone = parse_zone(options.get("time_zone"))
    queryset = Article.objects.order_by("pk")
    given = False
    if options.get("status"):
        queryset, given = queryset.filter(status__in=options["status"]), True
    elif default_statuses:
        queryset = queryset.filter(status__in=default_statuses)
    if options.get("title_contains"):
        queryset, given = queryset.filter(title__icontains=options["title_contains"]), True
    if options.get("ids"):
        queryset, given = queryset.filter(pk__in=parse_ids(options["ids"])), True
    start = end = None
    if options.get("date_from"):
        start = parse_day(options["date_from"], zone=zone, what="--from")
        queryset, given = queryset.filter(publish_at__gte=start), True
    if options.get("date_to"):
        end = parse_day(options["date_to"], zone=zone, what="--to", end=True)
        queryset, given = queryset.filter(publish_at__lt=end), True
    if start and end and end <= start:
        raise CommandError("--to must be after --from.")
    if require_filter and not given:
        raise CommandError("Say which articles: give at least one of --status, --title-contains, --ids, --from, "
                           "--to (nothing was changed).")
    return queryset


def progress(*, total: int, unit: str, description: str, stream=None) -> tqdm:
    """A progress bar on stderr (stdout stays for results, so it can be piped)."""
    # The width from the terminal, else 100: a pseudo-terminal reporting 0 columns (some CI and
    # `docker exec` sessions) would otherwise get an empty bar.
    return tqdm(total=total, unit=f" {unit}", desc=description, file=stream or sys.stderr, leave=True,
                ncols=shutil.get_terminal_size(fallback=(100, 24)).columns, mininterval=0.2)


def chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


@contextlib.contextmanager
def dry_run_atomic(dry_run: bool):
    """With `dry_run`, everything inside runs for real (same checks, same reasons) in one
    transaction that is rolled back; work queued with on_commit is dropped with it, so nothing
    is dispatched either."""
    if not dry_run:
        yield
        return
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def bulk_command(command, apply, article_ids: list[int], *, description: str, verb: str, dry_run: bool,
                 nothing: str) -> list:
    """A bulk command's whole run: refuse an empty selection with `nothing`, apply chunk by
    chunk under the progress bar (see bulk_run), print the summary; return the done articles."""
    if not article_ids:
        raise CommandError(nothing)
    done, skipped = bulk_run(apply, article_ids, description=description, stream=command.stderr._out,
                             dry_run=dry_run)
    bulk_report(command.stdout, done=done, skipped=skipped, verb=verb, dry_run=dry_run)
    return done


def bulk_run(apply, article_ids: list[int], *, description: str, stream, dry_run: bool) -> tuple[list, list]:
    """Call `apply(chunk, done_so_far) -> services.BulkResult` on the ids chunk by chunk under
    a progress bar; return (done articles, skipped)."""
    done, skipped = [], []
    with progress(total=len(article_ids), unit="articles", description=description, stream=stream) as bar, \
            dry_run_atomic(dry_run):
        for chunk in chunks(article_ids):
            result = apply(chunk, len(done))
            done += result.done
            skipped += result.skipped
            bar.update(len(chunk))
    return done, skipped


def bulk_report(stdout, *, done, skipped, verb: str, dry_run: bool) -> None:
    """The summary every bulk command prints: how many, and each skipped article with why."""
    prefix = "(dry run) would have " if dry_run else ""
    stdout.write(f"{prefix}{verb} {len(done)} article{'s' if len(done) != 1 else ''}, skipped {len(skipped)}")
    for item in skipped:
        stdout.write(f"skipped #{item.article_id} “{item.title}”: {item.reason}")
