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
    # A member of a scheduled release (publisher.releases): it goes live with the release, never alone.
    IN_RELEASE = "in_release", "In a scheduled release"


INITIAL = ArticleStatus.DRAFT

D, SC, PG, PD, F, E, M = (ArticleStatus.DRAFT, ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING,
                          ArticleStatus.PUBLISHED, ArticleStatus.FAILED, ArticleStatus.EXPIRED, ArticleStatus.MISSED)
IR = ArticleStatus.IN_RELEASE


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
    # Members of a release (publisher.releases): scheduled, claimed and held with their release;
    # they go live through `make_live` in the release's one flip.
    Transition("release_schedule", (D, SC, PG, F, M, IR), IR, "editor",
               "its release was scheduled (or rescheduled): it goes live with the release", event="scheduled",
               event_from={IR: "rescheduled", SC: "rescheduled", PG: "rescheduled", F: "rescheduled",
                           M: "rescheduled"}),
    Transition("release_unschedule", (IR, PG, F, M), D, "editor",
               "its release was unscheduled, or it left a scheduled release: back to draft", event="unscheduled"),
    Transition("release_claim", (IR,), PG, "scan", "its release is due within the look-ahead: claimed with it"),
    Transition("release_hold", (PG, F), IR, "pipeline",
               "its release was blocked: not live, waiting with its release (a failed member keeps its reason)"),
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


IN_RELEASE_REASON = ("it is in a scheduled release and goes live with it: reschedule or unschedule the release, "
                     "or remove the article from it first")

ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("schedule", "Schedule", ("schedule",), {
        PD: "it is already live (change its unpublish time on the article instead)",
        IR: IN_RELEASE_REASON,
    }),
    Action("unschedule", "Unschedule", ("unschedule",), {
        D: "it is already a draft",
        PD: "it is already live (set an unpublish time to take it down)",
        E: "it has expired, there is nothing to unschedule",
        IR: IN_RELEASE_REASON,
    }),
    Action("publish_now", "Publish now", ("publish_now",), {
        PD: "it is already live",
        PG: "it is being published right now",
        E: "it has expired (schedule it again to put it back)",
        IR: IN_RELEASE_REASON,
    }),
    Action("unpublish_now", "Unpublish now", ("unpublish_now",), {
        D: "it is a draft, not live",
        SC: "it is not live yet (unschedule it instead)",
        PG: "it is being published right now: wait until it is live",
        F: "it is not live (publishing failed)",
        E: "it is already down",
        M: "it is not live (it was missed)",
        IR: "it is not live yet: it goes live with its release",
    }),
    Action("retry", "Retry", ("retry", "retry_now"), {
        status: f"it is {label.lower()}, not failed: only failed or missed articles can be retried"
        for status, label in ArticleStatus.choices if status not in (F, M)
    }),
)}

# Groups the selectors and screens use, named once.
NEEDS_ATTENTION = ACTIONS["retry"].applies_to  # the pipeline gave up, or a lateness policy skipped it
IN_FLIGHT = (SC, PG, IR)  # has a slot still to come
ON_THE_AGENDA = (SC, PG, PD, F, M, IR)  # has or had a slot, except drafts and what expired


class StateMachineError(Exception):
    """The declaration above is inconsistent."""


def validate(transitions: dict[str, Transition] = TRANSITIONS, actions: dict[str, Action] = ACTIONS,
             statuses: tuple[str, ...] = tuple(ArticleStatus.values), initial: str = INITIAL,
             groups: tuple[tuple[str, ...], ...] = (NEEDS_ATTENTION, IN_FLIGHT, ON_THE_AGENDA)) -> None:
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
    for group in groups:
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


# --- Releases ---------------------------------------------------------------------------------
# A release (publisher.models.Release) puts its member articles live together, in one database
# transaction, or none of them. Its members move through the article transitions above
# (release_schedule, release_claim, make_live, release_hold, release_unschedule).

class ReleaseStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    PREPARING = "preparing", "Preparing"  # claimed within the look-ahead: members rendered, thumbnailed
    BLOCKED = "blocked", "Blocked"  # a member failed preparation: nothing of it went live
    PUBLISHED = "published", "Published"
    ROLLED_BACK = "rolled_back", "Rolled back"  # its rollback time passed: members taken down


RELEASE_INITIAL = ReleaseStatus.DRAFT
RD, RS, RP, RB, RL, RR = (ReleaseStatus.DRAFT, ReleaseStatus.SCHEDULED, ReleaseStatus.PREPARING,
                          ReleaseStatus.BLOCKED, ReleaseStatus.PUBLISHED, ReleaseStatus.ROLLED_BACK)

RELEASE_TRANSITIONS: dict[str, Transition] = {t.name: t for t in (
    # The editor wins over an in-flight claim, as for articles: the claim's members are held again.
    Transition("schedule", (RD, RS, RP, RB), RS, "editor", "schedule or reschedule: every member with it",
               event="scheduled", event_from={RS: "rescheduled", RP: "rescheduled", RB: "rescheduled"}),
    Transition("unschedule", (RS, RP, RB), RD, "editor", "back to draft, and every member with it",
               event="unscheduled"),
    Transition("claim", (RS,), RP, "scan", "due within the look-ahead: claimed, members prepared in chunks"),
    Transition("reclaim", (RP,), None, "sweeper", "lease expired: claimed again under a new token"),
    Transition("publish", (RP,), RL, "pipeline",
               "due by the database clock and every member prepared: all members live in one transaction"),
    Transition("block", (RP,), RB, "pipeline", "a member failed preparation: none goes live, the scheduler is mailed",
               event="blocked"),
    Transition("change_rollback", (RL,), None, "editor", "set or clear the rollback time of a live release",
               event="rollback_changed"),
    Transition("roll_back", (RL,), RR, "scan",
               "its rollback time passed (the rollback sent for that second, or the scan's safety net): its new "
               "articles taken down, its changes' previous versions restored",
               event="rolled_back"),
)}

RELEASE_ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("schedule", "Schedule", ("schedule",), {
        RL: "it is already live (set a rollback time instead)",
        RR: "it was rolled back",
    }),
    Action("unschedule", "Unschedule", ("unschedule",), {
        RD: "it is already a draft",
        RL: "it is already live (set a rollback time to take it down)",
        RR: "it was rolled back",
    }),
)}

RELEASE_EDITABLE = (RD, RS, RB)  # members may be added or removed


validate(RELEASE_TRANSITIONS, RELEASE_ACTIONS, tuple(ReleaseStatus.values), RELEASE_INITIAL, groups=())


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
    # A member of a scheduled release (publisher.release_changes): applied in the release's flip, never alone.
    IN_RELEASE = "in_release", "In a scheduled release"
    # Its release was rolled back: the article got back the content this change replaced.
    ROLLED_BACK = "rolled_back", "Rolled back"


REVISION_INITIAL = RevisionStatus.DRAFT

VD, VS, VP, VA, VF, VC = (RevisionStatus.DRAFT, RevisionStatus.SCHEDULED, RevisionStatus.PUBLISHING,
                          RevisionStatus.APPLIED, RevisionStatus.FAILED, RevisionStatus.CANCELLED)
VI, VR = RevisionStatus.IN_RELEASE, RevisionStatus.ROLLED_BACK

REVISION_TRANSITIONS: dict[str, Transition] = {t.name: t for t in (
    # The editor wins over an in-flight claim here too: the claim's remaining steps do nothing.
    Transition("schedule", (VD, VS, VP, VF), VS, "editor", "schedule or reschedule the change",
               event="change_scheduled", event_from={VS: "change_rescheduled", VP: "change_rescheduled",
                                                     VF: "change_rescheduled"}),
    Transition("publish_now", (VD, VS, VF), VP, "editor", "claimed now, down the scan's pipeline",
               event="change_published_now"),
    Transition("cancel", (VD, VS, VP, VF), VC, "editor", "dropped; an in-flight claim is abandoned",
               event="change_cancelled"),
    Transition("claim", (VS,), VP, "scan", "due within the look-ahead: claimed and dispatched"),
    Transition("reclaim", (VP,), None, "sweeper", "lease expired: claimed again under a new token"),
    Transition("apply", (VP,), VA, "pipeline", "due by the database clock: copied into the live article",
               event="change_applied"),
    Transition("abandon", (VS, VP), VC, "pipeline",
               "the article is no longer live (the editor took it down): nothing is applied",
               event="change_abandoned"),
    Transition("fail", (VP,), VF, "pipeline", "retries spent, or a sweeper gave up after the last attempt",
               event="change_failed"),
    # Members of a release (publisher.release_changes): scheduled, claimed and held with their
    # release; applied through `apply` in the release's one flip, rolled back with it.
    Transition("release_schedule", (VD, VS, VF, VI), VI, "editor",
               "its release was scheduled (or rescheduled): it is applied with the release",
               event="change_scheduled", event_from={VI: "change_rescheduled", VS: "change_rescheduled",
                                                     VF: "change_rescheduled"}),
    Transition("release_unschedule", (VS, VI, VP, VF), VD, "editor",
               "its release was unscheduled or is a draft, or it left a release: back to draft"),
    Transition("release_claim", (VI,), VP, "scan", "its release is due within the look-ahead: claimed with it"),
    Transition("release_hold", (VP, VF), VI, "pipeline",
               "its release was blocked: not applied, waiting with its release (a failed one keeps its reason)"),
    Transition("roll_back", (VA,), VR, "scan",
               "its release's rollback time passed: the article got back the content this change replaced",
               event="change_rolled_back"),
)}

REVISION_IN_RELEASE_REASON = ("it is in a scheduled release and is applied with it: reschedule or unschedule the "
                              "release, or remove the change from it first")

# The editor's actions on a change, with the reason each does not apply (the change's page).
REVISION_ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("schedule", "Schedule the change", ("schedule",), {
        VA: "it is already live", VC: "it was cancelled", VR: "it was rolled back with its release",
        VI: REVISION_IN_RELEASE_REASON,
    }),
    Action("publish_now", "Publish the change now", ("publish_now",), {
        VP: "it is being published right now", VA: "it is already live", VC: "it was cancelled",
        VR: "it was rolled back with its release", VI: REVISION_IN_RELEASE_REASON,
    }),
    Action("cancel", "Cancel the change", ("cancel",), {
        VA: "it is already live", VC: "it was cancelled", VR: "it was rolled back with its release",
        VI: REVISION_IN_RELEASE_REASON,
    }),
)}

# A change still to go live (the calendar, the site's next change, the article's page).
REVISION_PENDING = (VS, VP)

validate(REVISION_TRANSITIONS, REVISION_ACTIONS, tuple(RevisionStatus.values), REVISION_INITIAL,
         groups=(REVISION_PENDING,))


def transitions_into(target: str) -> list[Transition]:
    return [t for t in TRANSITIONS.values() if t.target == target]


def _diagram(transitions: dict[str, Transition], initial: str) -> list[str]:
    lines = ["```mermaid", "stateDiagram-v2", f"    [*] --> {initial}"]
    for t in transitions.values():
        for source in t.sources:
            lines.append(f"    {source} --> {t.target or source}: {t.name}")
    return lines + ["```"]


def _transition_rows(transitions: dict[str, Transition]) -> list[str]:
    rows = []
    for t in transitions.values():
        event = t.event or "—"
        if t.event_from:
            event += " (" + ", ".join(f"{e} from {s}" for s, e in t.event_from.items()) + ")"
        rows.append(f"| `{t.name}` | {', '.join(t.sources)} | {t.target or '(unchanged)'} | {t.by} | {event} "
                    f"| {t.doc} |")
    return rows


def render_markdown() -> str:
    """docs/states.md, generated from the declaration."""
    lines = ["# Article states", "",
             "Generated from `publisher/states.py` by `python -m publisher.states --write docs/states.md`;",
             "a test fails when this file is stale. Edit the declaration, not this page.", ""]
    lines += _diagram(TRANSITIONS, INITIAL)
    lines += ["", "## Statuses", "", "| Status | Label |", "|---|---|"]
    lines += [f"| `{value}` | {label} |" for value, label in ArticleStatus.choices]
    lines += ["", "## Transitions", "",
              "Every write of `status` is one of these, through `Article.objects.transition(name, ...)`: a",
              "compare-and-set on the source statuses that stamps `updated_at` (the scan's claim is the same",
              "declaration compiled into one statement).", "",
              "| Transition | From | To | By | Audit event | What |", "|---|---|---|---|---|---|"]
    lines += _transition_rows(TRANSITIONS)
    lines += ["", "## Editor actions", "", "| Action | Applies to | Does not apply to |", "|---|---|---|"]
    for a in ACTIONS.values():
        reasons = "; ".join(f"{s}: {r}" for s, r in a.not_applicable.items())
        lines.append(f"| `{a.name}` ({a.label}) | {', '.join(a.applies_to)} | {reasons} |")
    lines += ["", "## Groups", "",
              f"- Needs attention (retry applies): {', '.join(NEEDS_ATTENTION)}",
              f"- In flight (a slot still to come): {', '.join(IN_FLIGHT)}",
              f"- On the agenda: {', '.join(ON_THE_AGENDA)}", ""]
    lines += ["# Release states", "",
              "A release's members go live together in one transaction, or none does (docs/releases.md). Every",
              "write of a release's `status` is one of these, through `Release.objects.transition(name, ...)`.", ""]
    lines += _diagram(RELEASE_TRANSITIONS, RELEASE_INITIAL)
    lines += ["", "## Release statuses", "", "| Status | Label |", "|---|---|"]
    lines += [f"| `{value}` | {label} |" for value, label in ReleaseStatus.choices]
    lines += ["", "## Release transitions", "",
              "| Transition | From | To | By | History event | What |", "|---|---|---|---|---|---|"]
    lines += _transition_rows(RELEASE_TRANSITIONS)
    lines += ["", "## Release actions", "", "| Action | Applies to | Does not apply to |", "|---|---|---|"]
    for a in RELEASE_ACTIONS.values():
        reasons = "; ".join(f"{s}: {r}" for s, r in a.not_applicable.items())
        applies = [s for s in ReleaseStatus.values if s not in a.not_applicable]
        lines.append(f"| `{a.name}` ({a.label}) | {', '.join(applies)} | {reasons} |")
    lines += ["", f"Members may be added or removed while the release is: {', '.join(RELEASE_EDITABLE)}.", ""]
    lines += ["# Revision states", "",
              "A revision is a frozen change to a live article (title, body, image, alt text), applied at",
              "its publish time through the same claim, lease and pipeline (`publisher/revisions.py`).", ""]
    lines += _diagram(REVISION_TRANSITIONS, REVISION_INITIAL)
    lines += ["", "| Status | Label |", "|---|---|"]
    lines += [f"| `{value}` | {label} |" for value, label in RevisionStatus.choices]
    lines += ["", "Every write of a revision's `status` is one of these, through",
              "`ArticleRevision.objects.transition(name, ...)`, the same compare-and-set as an article's.", "",
              "| Transition | From | To | By | Audit event | What |", "|---|---|---|---|---|---|"]
    lines += _transition_rows(REVISION_TRANSITIONS)
    lines += ["", "| Action | Applies to | Does not apply to |", "|---|---|---|"]
    for a in REVISION_ACTIONS.values():
        reasons = "; ".join(f"{s}: {r}" for s, r in a.not_applicable.items())
        applies = [s for s in RevisionStatus.values if s not in a.not_applicable]
        lines.append(f"| `{a.name}` ({a.label}) | {', '.join(applies)} | {reasons} |")
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
