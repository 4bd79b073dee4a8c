"""Pictures of the daily report's publications per hour: an inline SVG for the admin, an HTML
table of bars for e-mail (mail clients drop SVG), and text bars for the plain-text part.

Inputs are the report's stored buckets ({"label", "zone", "count"}); every piece of text that
reaches the markup is escaped here, so callers may mark the result safe."""

from django.utils.html import escape

BAR_WIDTH = 26
GAP = 4
HEIGHT = 160
TOP = 18  # room for the count above the tallest bar
BOTTOM = 34  # room for the hour labels
LEFT = 8


def _labels(buckets: list[dict]) -> list[str]:
    """Each hour's label; an hour label that occurs twice (the repeated hour of a fall-back day)
    carries its zone abbreviation, so 02:00 CEST and 02:00 CET stay apart."""
    seen: dict[str, int] = {}
    for bucket in buckets:
        seen[bucket["label"]] = seen.get(bucket["label"], 0) + 1
    return [f"{b['label']} {b.get('zone', '')}".strip() if seen[b["label"]] > 1 else b["label"] for b in buckets]


def hourly_svg(buckets: list[dict], *, title: str = "Publications per hour") -> str:
    """A bar chart as a self-contained <svg> element (no scripts, no external references)."""
    peak = max([b["count"] for b in buckets] + [1])
    width = LEFT * 2 + len(buckets) * (BAR_WIDTH + GAP)
    total_height = TOP + HEIGHT + BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{total_height}" '
        f'viewBox="0 0 {width} {total_height}" class="hourly-chart" '
        f'style="font: 10px sans-serif; background: #fff">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + HEIGHT}" x2="{width - LEFT}" y2="{TOP + HEIGHT}" stroke="#999"/>',
    ]
    for i, (bucket, label) in enumerate(zip(buckets, _labels(buckets))):
        count = int(bucket["count"])
        x = LEFT + i * (BAR_WIDTH + GAP)
        height = round(HEIGHT * count / peak) if count else 0
        y = TOP + HEIGHT - height
        parts.append(
            f'<rect class="bar" x="{x}" y="{y}" width="{BAR_WIDTH}" height="{height}" fill="#417690">'
            f"<title>{escape(label)}: {count}</title></rect>"
        )
        if count:
            parts.append(f'<text x="{x + BAR_WIDTH / 2}" y="{y - 3}" text-anchor="middle">{count}</text>')
        # Label every third hour (and every repeated one) so they stay legible.
        if i % 3 == 0 or label != bucket["label"]:
            parts.append(
                f'<text x="{x + BAR_WIDTH / 2}" y="{TOP + HEIGHT + 12}" text-anchor="middle">'
                f"{escape(bucket['label'])}</text>"
            )
            if label != bucket["label"]:
                parts.append(f'<text x="{x + BAR_WIDTH / 2}" y="{TOP + HEIGHT + 24}" text-anchor="middle">'
                             f"{escape(bucket.get('zone', ''))}</text>")
    parts.append("</svg>")
    return "".join(parts)


def hourly_rows(buckets: list[dict], *, max_width: int = 300) -> list[dict]:
    """Rows for an HTML table of horizontal bars: label, count and bar width in pixels."""
    peak = max([b["count"] for b in buckets] + [1])
    return [{"label": label, "count": b["count"], "width": round(max_width * b["count"] / peak) if b["count"] else 0}
            for b, label in zip(buckets, _labels(buckets))]


def hourly_text(buckets: list[dict], *, max_width: int = 40) -> str:
    """Text bars, one line per hour: "08:00 ########## 12"."""
    peak = max([b["count"] for b in buckets] + [1])
    labels = _labels(buckets)
    pad = max([len(label) for label in labels] + [5])
    lines = []
    for bucket, label in zip(buckets, labels):
        count = bucket["count"]
        bar = "#" * (max(1, round(max_width * count / peak)) if count else 0)
        lines.append(f"{label.ljust(pad)} {bar}{' ' if bar else ''}{count}")
    return "\n".join(lines)
