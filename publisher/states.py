"""The article state machine, declared once: statuses, named transitions, editor actions.

Everything else derives from this module: the one writer of `status`
(`publisher.querysets.ArticleQuerySet.transition`), the services' checks, the admin's buttons
and flags, the selectors' groups and `docs/states.md`
(`python -m publisher.states --write docs/states.md`). Adding a status means adding it to
`ArticleStatus` and giving it transitions here; the declaration is checked at import.
"""

import sys
from dataclasses import dataclass, field

from django.db import models


class ArticleStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    PUBLISHING = "publishing", "Publishing"
    PUBLISHED = "published", "Published"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"
    # Only with a lateness policy (PUBLISHER_MAX_LATENESS): found too late to be worth publishing.
    MISSED = "missed", "Missed"


INITIAL = ArticleStatus.DRAFT

D, SC, PG, PD, F, E, M = (ArticleStatus.DRAFT, ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING,
                          ArticleStatus.PUBLISHED, ArticleStatus.FAILED, ArticleStatus.EXPIRED, ArticleStatus.MISSED)


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple[str, ...]
    target: str | None  # None: the status stays (a change of times or of the claim)
    by: str  # who takes it: "editor", "scan", "pipeline", "sweeper"
    doc: str
    # The audit event an actor's transition records (an ArticleEventAction value), and the
    # event it records instead when coming from some statuses.
    event: str | None = None
    event_from: dict[str, str] = field(default_factory=dict)

    def event_for(self, previous_status: str) -> str | None:
        return self.event_from.get(previous_status, self.event)


TRANSITIONS: dict[str, Transition] = {t.name: t for t in (
    # The editor wins over an in-flight claim: its remaining steps then do nothing.
    Transition("schedule", (D, SC, PG, F, M, E), SC, "editor", "schedule or reschedule",
               event="scheduled", event_from={SC: "rescheduled", PG: "rescheduled", F: "rescheduled",
                                              M: "rescheduled"}),
    Transition("unschedule", (SC, PG, F, M), D, "editor", "back to draft; an in-flight claim is abandoned",
               event="unscheduled"),
    Transition("clear_times", (D, E), None, "editor", "a draft or expired article drops its times"),
    Transition("publish_now", (D, SC, F, M), PG, "editor", "claimed now, down the scan's pipeline",
               event="published_now"),
    Transition("retry", (F, M), SC, "editor", "back to scheduled, published at its (future) publish time",
               event="retried"),
    Transition("retry_now", (F, M), PG, "editor", "claimed now: its publish time has passed", event="retried"),
    Transition("unpublish_now", (PD,), E, "editor", "taken down now (the page answers 410 Gone)",
               event="unpublished_now"),
    Transition("record_published", (D, SC, F, M), PD, "editor",
               "back-catalogue: recorded as live since a past time, rendered here, nobody mailed",
               event="recorded_published"),
    Transition("change_unpublish", (PD,), None, "editor", "set or clear a live article's take-down time",
               event="unpublish_changed"),
    Transition("claim", (SC,), PG, "scan", "due within the look-ahead: claimed and dispatched"),
    Transition("expire_unclaimed", (SC,), E, "scan", "publish and unpublish times both passed while down"),
    Transition("miss", (SC,), M, "scan", "found later than PUBLISHER_MAX_LATENESS"),
    Transition("make_live", (PG,), PD, "pipeline", "due by the database clock: live"),
    Transition("expire_in_flight", (PG,), E, "pipeline", "its unpublish time passed before it went live"),
    Transition("fail", (PG,), F, "pipeline", "retries spent, or a sweeper gave up after the last attempt",
               event="failed"),
    Transition("reclaim", (PG,), None, "sweeper", "lease expired: claimed again under a new token"),
    Transition("take_down", (PD,), E, "scan", "its unpublish time passed"),
)}


@dataclass(frozen=True)
class Action:
    """An editor's action: the transition it takes and, for every status it does not apply
    to, the reason in the editor's words."""

    name: str
    label: str
    transitions: tuple[str, ...]
    not_applicable: dict[str, str]

    @property
    def applies_to(self) -> tuple[str, ...]:
        return tuple(s for s in ArticleStatus.values if s not in self.not_applicable)

    def reason(self, status: str) -> str | None:
        """Why this action does not apply to an article in `status` (None: it applies)."""
        return self.not_applicable.get(status)


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("schedule", "Schedule", ("schedule",), {
        PD: "it is already live (change its unpublish time on the article instead)",
    }),
    Action("unschedule", "Unschedule", ("unschedule",), {
        D: "it is already a draft",
        PD: "it is already live (set an unpublish time to take it down)",
        E: "it has expired, there is nothing to unschedule",
    }),
    Action("publish_now", "Publish now", ("publish_now",), {
        PD: "it is already live",
        PG: "it is being published right now",
        E: "it has expired (schedule it again to put it back)",
    }),
    Action("unpublish_now", "Unpublish now", ("unpublish_now",), {
        D: "it is a draft, not live",
        SC: "it is not live yet (unschedule it instead)",
        PG: "it is being published right now: wait until it is live",
        F: "it is not live (publishing failed)",
        E: "it is already down",
        M: "it is not live (it was missed)",
    }),
    Action("retry", "Retry", ("retry", "retry_now"), {
        status: f"it is {label.lower()}, not failed: only failed or missed articles can be retried"
        for status, label in ArticleStatus.choices if status not in (F, M)
    }),
)}

# Groups the selectors and screens use, named once.
NEEDS_ATTENTION = ACTIONS["retry"].applies_to  # the pipeline gave up, or a lateness policy skipped it
IN_FLIGHT = (SC, PG)  # has a slot still to come
ON_THE_AGENDA = (SC, PG, PD, F, M)  # has or had a slot, except drafts and what expired


class StateMachineError(Exception):
    """The declaration above is inconsistent."""


def validate(transitions: dict[str, Transition] = TRANSITIONS, actions: dict[str, Action] = ACTIONS,
             statuses: tuple[str, ...] = tuple(ArticleStatus.values), initial: str = INITIAL,
             groups: tuple[tuple[str, ...], ...] | None = None) -> None:
    """Every name known, every status reachable from the initial one, every action's reasons
    exactly the statuses its transitions do not leave from."""
    known = set(statuses)
    problems = []
    for t in transitions.values():
        for status in (*t.sources, *([t.target] if t.target else [])):
            if status not in known:
                problems.append(f"transition {t.name}: unknown status {status!r}")
    for a in actions.values():
        sources = set()
        for name in a.transitions:
            if name not in transitions:
                problems.append(f"action {a.name}: unknown transition {name!r}")
            else:
                sources |= set(transitions[name].sources)
        unknown = set(a.not_applicable) - known
        if unknown:
            problems.append(f"action {a.name}: unknown statuses {sorted(unknown)}")
        if sources != known - set(a.not_applicable):
            problems.append(f"action {a.name}: reasons must cover exactly the statuses it does not apply to "
                            f"(applies to {sorted(sources)}, reasons for {sorted(a.not_applicable)})")
    for group in (NEEDS_ATTENTION, IN_FLIGHT, ON_THE_AGENDA) if groups is None else groups:
        if set(group) - known:
            problems.append(f"group {group}: unknown statuses")
    reached, frontier = {initial}, [initial]
    while frontier:
        status = frontier.pop()
        for t in transitions.values():
            if status in t.sources and t.target and t.target not in reached:
                reached.add(t.target)
                frontier.append(t.target)
    if known - reached:
        problems.append(f"unreachable from {initial}: {sorted(known - reached)}")
    if problems:
        raise StateMachineError("; ".join(problems))


validate()


# --- Revisions: a frozen change to a live article ------------------------------------------------
# A revision holds a snapshot of title, body, image and alt text that replaces the live
# article's at its publish time (publisher.revisions). It travels through the same claim, lease
# and pipeline as an article; its last step copies it into the article in one transaction.

class RevisionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    PUBLISHING = "publishing", "Publishing"
    APPLIED = "applied", "Applied"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


REVISION_INITIAL = RevisionStatus.DRAFT

RD, RS, RP, RA, RF, RC = (RevisionStatus.DRAFT, RevisionStatus.SCHEDULED, RevisionStatus.PUBLISHING,
                          RevisionStatus.APPLIED, RevisionStatus.FAILED, RevisionStatus.CANCELLED)

REVISION_TRANSITIONS: dict[str, Transition] = {t.name: t for t in (
    # The editor wins over an in-flight claim here too: the claim's remaining steps do nothing.
    Transition("schedule", (RD, RS, RP, RF), RS, "editor", "schedule or reschedule the change",
               event="change_scheduled", event_from={RS: "change_rescheduled", RP: "change_rescheduled",
                                                     RF: "change_rescheduled"}),
    Transition("publish_now", (RD, RS, RF), RP, "editor", "claimed now, down the scan's pipeline",
               event="change_published_now"),
    Transition("cancel", (RD, RS, RP, RF), RC, "editor", "dropped; an in-flight claim is abandoned",
               event="change_cancelled"),
    Transition("claim", (RS,), RP, "scan", "due within the look-ahead: claimed and dispatched"),
    Transition("reclaim", (RP,), None, "sweeper", "lease expired: claimed again under a new token"),
    Transition("apply", (RP,), RA, "pipeline", "due by the database clock: copied into the live article",
               event="change_applied"),
    Transition("abandon", (RS, RP), RC, "pipeline",
               "the article is no longer live (the editor took it down): nothing is applied",
               event="change_abandoned"),
    Transition("fail", (RP,), RF, "pipeline", "retries spent, or a sweeper gave up after the last attempt",
               event="change_failed"),
)}

# A change still to go live (the calendar, the site's next change, the article's page).
REVISION_PENDING = (RS, RP)

validate(REVISION_TRANSITIONS, {}, tuple(RevisionStatus.values), REVISION_INITIAL, groups=(REVISION_PENDING,))


def transitions_into(target: str) -> list[Transition]:
    return [t for t in TRANSITIONS.values() if t.target == target]


def render_markdown() -> str:
    """docs/states.md, generated from the declaration."""
    lines = ["# Article states", "",
             "Generated from `publisher/states.py` by `python -m publisher.states --write docs/states.md`;",
             "a test fails when this file is stale. Edit the declaration, not this page.", "",
             "```mermaid", "stateDiagram-v2", f"    [*] --> {INITIAL}"]
    for t in TRANSITIONS.values():
        for source in t.sources:
            lines.append(f"    {source} --> {t.target or source}: {t.name}")
    lines += ["```", "", "## Statuses", "", "| Status | Label |", "|---|---|"]
    lines += [f"| `{value}` | {label} |" for value, label in ArticleStatus.choices]
    lines += ["", "## Transitions", "",
              "Every write of `status` is one of these, through `Article.objects.transition(name, ...)`: a",
              "compare-and-set on the source statuses that stamps `updated_at` (the scan's claim is the same",
              "declaration compiled into one statement).", "",
              "| Transition | From | To | By | Audit event | What |", "|---|---|---|---|---|---|"]
    for t in TRANSITIONS.values():
        event = t.event or "—"
        if t.event_from:
            event += " (" + ", ".join(f"{e} from {s}" for s, e in t.event_from.items()) + ")"
        lines.append(f"| `{t.name}` | {', '.join(t.sources)} | {t.target or '(unchanged)'} | {t.by} | {event} "
                     f"| {t.doc} |")
    lines += ["", "## Editor actions", "", "| Action | Applies to | Does not apply to |", "|---|---|---|"]
    for a in ACTIONS.values():
        reasons = "; ".join(f"{s}: {r}" for s, r in a.not_applicable.items())
        lines.append(f"| `{a.name}` ({a.label}) | {', '.join(a.applies_to)} | {reasons} |")
    lines += ["", "## Groups", "",
              f"- Needs attention (retry applies): {', '.join(NEEDS_ATTENTION)}",
              f"- In flight (a slot still to come): {', '.join(IN_FLIGHT)}",
              f"- On the agenda: {', '.join(ON_THE_AGENDA)}", ""]
    lines += ["# Revision states", "",
              "A revision is a frozen change to a live article (title, body, image, alt text), applied at",
              "its publish time through the same claim, lease and pipeline (`publisher/revisions.py`).", "",
              "```mermaid", "stateDiagram-v2", f"    [*] --> {REVISION_INITIAL}"]
    for t in REVISION_TRANSITIONS.values():
        for source in t.sources:
            lines.append(f"    {source} --> {t.target or source}: {t.name}")
    lines += ["```", "", "| Status | Label |", "|---|---|"]
    lines += [f"| `{value}` | {label} |" for value, label in RevisionStatus.choices]
    lines += ["", "Every write of a revision's `status` is one of these, through",
              "`ArticleRevision.objects.transition(name, ...)`, the same compare-and-set as an article's.", "",
              "| Transition | From | To | By | Audit event | What |", "|---|---|---|---|---|---|"]
    for t in REVISION_TRANSITIONS.values():
        event = t.event or "—"
        if t.event_from:
            event += " (" + ", ".join(f"{e} from {s}" for s, e in t.event_from.items()) + ")"
        lines.append(f"| `{t.name}` | {', '.join(t.sources)} | {t.target or '(unchanged)'} | {t.by} | {event} "
                     f"| {t.doc} |")
    lines += ["", f"- Pending (still to go live): {', '.join(REVISION_PENDING)}", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render_markdown()
    if len(argv) == 2 and argv[0] == "--write":
        with open(argv[1], "w", encoding="utf-8") as out:
            out.write(text)
        return 0
    if argv:
        print("usage: python -m publisher.states [--write docs/states.md]", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
