"""How durations and errors read to people: one wording for the admin, the status panel, the
daily report, the importer and the commands."""

from datetime import timedelta

from django.core.exceptions import ValidationError


def duration_text(value: timedelta | float) -> str:
    """'3 h 5 min', '42 s', '0.3 s', '12 ms' (a float is seconds)."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if 0 < abs(seconds) < 0.1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else "",
             f"{secs} s" if secs and not days and not hours else ""]
    return " ".join(p for p in parts if p)


def error_text(exc: Exception, *, fields: bool = False) -> str:
    """A refusal as one line: a ValidationError's messages, else the exception's own text.
    `fields` prefixes each field's messages with the field's name (the importer: a file's rows
    name their columns; an editor in the admin sees the form, not the names)."""
    if fields and isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return "; ".join(f"{name}: {' '.join(messages)}" if name != "__all__" else " ".join(messages)
                         for name, messages in exc.message_dict.items())
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)
