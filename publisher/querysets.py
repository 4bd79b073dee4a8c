"""`Article.objects` and `ArticleRevision.objects`: the one writer of `status`, and the
recurring filters.

Every status change is `transition(name, ...)` on a declared transition (publisher.states): a
compare-and-set UPDATE conditioned on the transition's source statuses (and, while publishing,
on the claim token), which stamps `updated_at` and, when an actor is given, writes the audit
event in the same statement's transaction. The scan's claim (`claim_first`) is the same
declaration compiled into one statement.
"""

from datetime import datetime

from django.core.exceptions import EmptyResultSet
from django.db import connection, models, transaction
from django.db.models import Case, Q, Value, When, sql
from django.db.models.expressions import RawSQL
from django.db.models.functions import Collate
from django.db.models.lookups import Exact
from django.db.models.functions import Now

from .site import cache as site_cache
from .states import RELEASE_TRANSITIONS, REVISION_TRANSITIONS, TRANSITIONS, ArticleStatus


def status_not_by_index(value: str):
    """`status = value` as a filter the planner cannot answer from an index on status (nor a
    partial index conditioned on it): on PostgreSQL the column is compared under the "C"
    collation, the same answer for an exact match. For reads that find their rows by key (ids,
    or an article and a subscriber range) among many rows in that status: with statistics taken
    before the rows arrived the planner otherwise walks every row in the status, a cost that
    grows with the burst or the mailing."""
    if connection.vendor != "postgresql":
        return Q(status=value)
    return Exact(Collate("status", "C"), Value(value))


class _NotGiven:
    def __repr__(self):
        return "NOT_GIVEN"


# `transition(actor=None)` records a system event; leaving `actor` out records none.
NOT_GIVEN = _NotGiven()


class ClaimQuerySet(models.QuerySet):
    """What a row the pipeline claims (an article, a revision of one) shares: the declared
    transitions (`transitions`, from publisher.states) as the one writer of its status, the
    in-flight filters of its claim, and the pipeline's bulk writes."""

    transitions: dict = TRANSITIONS

    # --- recurring filters -------------------------------------------------------------------

    def in_flight(self, token: str | None = None) -> "ClaimQuerySet":
        """Being published (under `token`, when given)."""
        rows = self.filter(status=ArticleStatus.PUBLISHING)
        return rows if token is None else rows.filter(claim_token=token)

    def in_flight_by_id(self, article_ids: list[int], token: str) -> "ClaimQuerySet":
        """The rows among `article_ids` still in flight under `token`, found by primary key. On
        PostgreSQL status is compared under the "C" collation (the same answer for an exact
        match) so the planner cannot take an index on status (article_lease_idx, partial on
        `publishing`, or article_status_idx): with statistics taken before a burst was claimed
        it otherwise reads every row in flight, 1.5 ms a query with 2,000 in flight against
        0.2 ms by key, a cost that grows with the burst."""
        return self.filter(status_not_by_index(ArticleStatus.PUBLISHING), pk__in=article_ids, claim_token=token)

    def due(self, horizon) -> "ClaimQuerySet":
        """Scheduled and due by `horizon` (a datetime or a database expression)."""
        return self.filter(status=ArticleStatus.SCHEDULED, publish_at__lte=horizon)

    def stale_claims(self) -> "ClaimQuerySet":
        """Claims whose lease ran out by the database clock."""
        return self.filter(status=ArticleStatus.PUBLISHING, lease_expires_at__lte=Now())

    # --- the one writer of status --------------------------------------------------------------

    def transition(self, name: str, *, token: str | None = None, actor=NOT_GIVEN, **values) -> int:
        """Move the rows of this queryset that are in one of the transition's source statuses
        (and under `token`, when given) to its target; returns how many moved. Always stamps
        `updated_at`. With an actor (None: the system), writes one audit event per row moved,
        in the same transaction."""
        declared = self.transitions[name]
        if "status" in values:
            raise TypeError("transition() sets status from the declaration; do not pass it")
        rows = self.filter(status__in=declared.sources)
        if token is not None:
            rows = rows.filter(claim_token=token)
        if declared.target is not None:
            values["status"] = declared.target
        values.setdefault("updated_at", Now())
        if actor is NOT_GIVEN:
            changed = rows.update(**values)
        else:
            with transaction.atomic(using=self.db):
                before = {pk: (status, publish_at) for pk, status, publish_at in
                          rows.select_for_update().values_list("id", "status", "publish_at")}
                if not before:
                    return 0
                changed = self.model._base_manager.filter(pk__in=before, status__in=declared.sources).update(**values)
                self._record(declared, before, actor, note=values.get("last_error") or "")
        if changed:
            # What readers see, or when the next scheduled change falls, may have moved: cached
            # public pages are forgotten once this commits.
            site_cache.site_changed()
        return changed

    def _record(self, declared, before: dict[int, tuple[str, datetime | None]], actor, *, note: str = "") -> None:
        """Write the audit events of a transition taken with an actor (the model's own)."""
        raise NotImplementedError

    def claim_first(self, *, limit: int, values: dict, outcomes: list[tuple[str, Q, str]],
                    returning: tuple[str, ...], always: dict | None = None) -> list[tuple]:
        """The scan's claim: the first `limit` rows of this (scheduled, ordered) queryset take the
        `claim` transition, or the first of `outcomes` (transition name, condition, reason) whose
        condition they meet, each row's outcome chosen by CASE. `values` are the claim's columns
        as CASE defaults; a row taking another outcome keeps them as they are; `always` are set
        on every row. This queryset must be `due(...)` (scheduled rows only). One statement,
        locked skipping rows others hold where the database can:

            WITH due AS MATERIALIZED (SELECT id ... ORDER BY ... LIMIT n FOR UPDATE SKIP LOCKED)
            UPDATE ... SET ... WHERE id IN (SELECT id FROM due) RETURNING ...

        MATERIALIZED makes the SELECT run once: as a plain IN subquery PostgreSQL may re-run it
        inside a nested loop, and SKIP LOCKED then skips the rows this statement already updated
        and hands out more than `limit`. Django's update() neither returns rows nor takes a WITH,
        so the ORM compiles both parts and they are put together here (PostgreSQL; SQLite 3.35+)."""
        transitions = self.transitions
        claim = transitions["claim"]
        for name, _, _ in outcomes:
            if transitions[name].sources != claim.sources:
                raise ValueError(f"{name} does not leave from {claim.sources}")
        meta = self.model._meta

        def by_outcome(column: str, claimed, other=None):
            return Case(*(When(condition, then=other(name, reason) if other else models.F(column))
                          for name, condition, reason in outcomes),
                        default=claimed, output_field=meta.get_field(column))

        update = {column: by_outcome(column, value) for column, value in values.items()}
        update["status"] = by_outcome("status", Value(claim.target),
                                      lambda name, _: Value(transitions[name].target))
        update["last_error"] = by_outcome("last_error", Value(""), lambda _, reason: Value(reason))
        # Expired and missed rows are dated now (the dashboard and the report go by it); a claim
        # leaves it alone (stamping every claimed row cost the 1,000-row claim ~6 ms at 1M rows).
        update["updated_at"] = by_outcome("updated_at", models.F("updated_at"), lambda *_: Now())
        update.update(always or {})
        queryset = self
        if connection.features.has_select_for_update_skip_locked:
            queryset = queryset.select_for_update(skip_locked=True)
        find, find_params = queryset.values("id")[:limit].query.sql_with_params()
        query = self.model._base_manager.filter(pk__in=RawSQL('SELECT "id" FROM "due"', ())).query.chain(
            sql.UpdateQuery)
        query.add_update_values(update)
        update_sql, update_params = query.get_compiler(self.db).as_sql()
        columns = _columns(meta, returning)
        with connection.cursor() as cursor:
            cursor.execute(f'WITH "due" AS MATERIALIZED ({find}) {update_sql} RETURNING {columns}',
                           (*find_params, *update_params))
            return cursor.fetchall()

    def update_returning(self, values: dict, returning: tuple[str, ...]) -> list[tuple]:
        """`update(**values)` that also returns `returning` of each row it wrote, in one
        statement (UPDATE ... RETURNING: PostgreSQL; SQLite 3.35+). Not for `status`: that is
        transition()'s."""
        if "status" in values:
            raise TypeError("update_returning() does not write status; take a transition")
        meta = self.model._meta
        query = self.query.chain(sql.UpdateQuery)
        query.add_update_values(values)
        try:
            update_sql, params = query.get_compiler(self.db).as_sql()
        except EmptyResultSet:  # e.g. pk__in=[]
            return []
        with connection.cursor() as cursor:
            cursor.execute(f"{update_sql} RETURNING {_columns(meta, returning)}", params)
            return cursor.fetchall()

    def update_each(self, rows: dict[int, dict], *, also: dict | None = None) -> list[int]:
        """Give each row of this queryset whose id is a key of `rows` its own values
        (`rows[id]`: field -> value, the same fields for all), and `also` (constants) on each, in
        one statement; returns the ids written. Rows this queryset does not select are left
        alone: the condition is part of the write.

        PostgreSQL: UPDATE ... FROM unnest(one typed array per column) AS v, joined on id, one
        plan whatever the chunk's size; bulk_update's CASE per row and per column cost a chunk of
        50 about 1 ms of planning and executing. Elsewhere (SQLite): bulk_update, after reading
        which ids qualify."""
        if not rows:
            return []
        meta = self.model._meta
        fields = [meta.get_field(name) for name in next(iter(rows.values()))]
        also = also or {}
        if connection.vendor != "postgresql":
            with transaction.atomic(using=self.db):
                ids = list(self.filter(pk__in=list(rows)).values_list("pk", flat=True))
                objs = [self.model(pk=pk, **rows[pk], **also) for pk in ids]
                self.filter(pk__in=ids).bulk_update(objs, [f.name for f in fields] + list(also))
            return ids
        pk = meta.pk
        columns = [pk, *fields]
        arrays = [[pk.get_db_prep_value(key, connection) for key in rows]]
        arrays += [[field.get_db_prep_save(values[field.name], connection) for values in rows.values()]
                   for field in fields]
        source = ", ".join(f"%s::{column.db_type(connection)}[]" for column in columns)
        names = ", ".join(connection.ops.quote_name(column.column) for column in columns)
        joined = self.filter(pk=RawSQL(f'"v".{connection.ops.quote_name(pk.column)}', (), output_field=pk))
        query = joined.query.chain(sql.UpdateQuery)
        query.add_update_values({**{field.name: RawSQL(f'"v".{connection.ops.quote_name(field.column)}', (),
                                                       output_field=field) for field in fields}, **also})
        update_sql, params = query.get_compiler(self.db).as_sql()
        head, where = update_sql.split(" WHERE ", 1)
        table = connection.ops.quote_name(meta.db_table)
        statement = (f'{head} FROM unnest({source}) AS "v" ({names}) WHERE {where} '
                     f"RETURNING {table}.{connection.ops.quote_name(pk.column)}")
        split = head.count("%s")
        with connection.cursor() as cursor:
            cursor.execute(statement, (*params[:split], *arrays, *params[split:]))
            return [row[0] for row in cursor.fetchall()]


class ReleaseQuerySet(models.QuerySet):
    def transition(self, name: str, *, token: str | None = None, actor=NOT_GIVEN, note: str = "", **values) -> int:
        """The one writer of a release's `status`: the rows of this queryset in one of the
        declared release transition's sources (and under `token`, when given) move to its target,
        compare-and-set; stamps `updated_at`; with an actor (None: the system) and an event
        declared, writes one history event per row moved, in the same transaction."""
        declared = RELEASE_TRANSITIONS[name]
        if "status" in values:
            raise TypeError("transition() sets status from the declaration; do not pass it")
        rows = self.filter(status__in=declared.sources)
        if token is not None:
            rows = rows.filter(claim_token=token)
        if declared.target is not None:
            values["status"] = declared.target
        values.setdefault("updated_at", Now())
        with transaction.atomic(using=self.db):
            before = dict(rows.select_for_update().values_list("id", "status"))
            if not before:
                return 0
            changed = self.model._base_manager.filter(pk__in=before, status__in=declared.sources).update(**values)
            if actor is not NOT_GIVEN and declared.event:
                event_model = self.model._meta.get_field("events").related_model
                user = actor if actor is not None and actor.is_authenticated else None
                after = self.model._base_manager.filter(pk__in=before).values_list("id", "publish_at", "unpublish_at")
                event_model.objects.bulk_create([
                    event_model(release_id=pk, actor=user, action=declared.event_for(before[pk]),
                                publish_at=publish_at, unpublish_at=unpublish_at, previous_status=before[pk],
                                note=note)
                    for pk, publish_at, unpublish_at in after])
        return changed


class ArticleQuerySet(ClaimQuerySet):
    """`Article.objects`: the claim's rows, and what readers may see."""

    def stale_claims(self) -> "ArticleQuerySet":
        """Claims whose lease ran out by the database clock. A release's members are not: their
        release holds the lease (publisher.releases' sweeper)."""
        return super().stale_claims().filter(release__isnull=True)

    def visible(self):
        """What a reader may see, by the database clock at query time: published, and its
        unpublish time empty or still ahead. The one rule every public page, feed and sitemap
        uses, so an unpublish time hides an article on its second whether or not a scan ran."""
        return self.filter(Q(unpublish_at__isnull=True) | Q(unpublish_at__gt=Now()), status=ArticleStatus.PUBLISHED)

    def taken_down(self):
        """Articles that were live and no longer are by their own schedule: `expired` after
        having gone live, or still `published` with its unpublish time passed (410 Gone)."""
        return self.filter(Q(status=ArticleStatus.EXPIRED, published_at__isnull=False)
                           | Q(status=ArticleStatus.PUBLISHED, unpublish_at__lte=Now()))

    def _record(self, declared, before: dict[int, tuple[str, datetime | None]], actor, *, note: str = "") -> None:
        event_model = self.model._meta.get_field("events").related_model
        user = actor if actor is not None and actor.is_authenticated else None
        after = self.model._base_manager.filter(pk__in=before).values_list("id", "publish_at", "unpublish_at")
        event_model.objects.bulk_create([
            event_model(article_id=pk, actor=user, action=declared.event_for(before[pk][0]),
                        publish_at=publish_at, unpublish_at=unpublish_at,
                        previous_status=before[pk][0], previous_publish_at=before[pk][1],
                        note=note if isinstance(note, str) else "")
            for pk, publish_at, unpublish_at in after
        ])


class RevisionQuerySet(ClaimQuerySet):
    """`ArticleRevision.objects`: a revision's status moves only through `transition` on the
    revision transitions (publisher.states); its audit events are the article's."""

    transitions = REVISION_TRANSITIONS

    def pending(self):
        """Changes still to go live."""
        return self.filter(status__in=("scheduled", "publishing"))

    def to_come(self):
        """Changes still to go live, on their own or with their release (`in_release`): what a
        cached page must not outlive."""
        return self.filter(status__in=("scheduled", "publishing", "in_release"))

    def _record(self, declared, before: dict[int, tuple[str, datetime | None]], actor, *, note: str = "") -> None:
        event_model = self.model._meta.get_field("article").related_model._meta.get_field("events").related_model
        user = actor if actor is not None and actor.is_authenticated else None
        after = self.model._base_manager.filter(pk__in=before).values_list("id", "article_id", "publish_at")
        event_model.objects.bulk_create([
            event_model(article_id=article_id, actor=user, action=declared.event_for(before[pk][0]),
                        publish_at=publish_at, previous_publish_at=before[pk][1],
                        note=f"Change #{pk}" + (f": {note}" if isinstance(note, str) and note else ""))
            for pk, article_id, publish_at in after
        ])


def _columns(meta, names: tuple[str, ...]) -> str:
    return ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in names)
