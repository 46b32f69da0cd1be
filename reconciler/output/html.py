"""A Report as one self-contained HTML page: inline CSS, inline script, inline SVG.

The page fetches nothing (a Content-Security-Policy forbids it): it can be
mailed, attached to a CI run or opened from disk. The table is rendered here,
so the page reads without script; the script only sorts and filters rows, in
time linear in the rows, so thousands stay responsive. Every value from
Lightsail or the manifests is escaped.
"""

from __future__ import annotations

import html
import time

from reconciler.fleet.inventory import INSTANCES_UNKNOWN, KeyPairRow, Report
from reconciler.output.escape import visible

# Age buckets for the chart: (label, upper bound in days).
AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 7 d", 7),
    ("7-30 d", 30),
    ("30-90 d", 90),
    ("90-180 d", 180),
    ("180-365 d", 365),
    ("1-2 y", 730),
    ("> 2 y", float("inf")),
)

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)

STYLE = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --bg:#f6f7fa; --accent:#2b6cb0;
  --warn:#b7791f; --bad:#c53030; --ok:#2f855a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  margin: 0; background: var(--bg); }
header { background: #1d2330; color: #fff; padding: 16px 24px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: #c5cbd6; font-size: 13px; }
main { padding: 16px 24px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px;
  margin-bottom: 16px; }
h2 { font-size: 15px; margin: 0 0 8px; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px;
  min-width: 140px; }
.card b { display: block; font-size: 22px; }
.card span { color: var(--muted); font-size: 12px; }
.row2 { display: grid; grid-template-columns: minmax(280px, 1fr) minmax(320px, 1.4fr); gap: 16px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: #eef1f6; position: sticky; top: 0; white-space: nowrap; }
#keypairs th { cursor: pointer; user-select: none; }
#keypairs th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 10px; }
#keypairs th[aria-sort=descending]::after { content: " \\25BC"; font-size: 10px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
#keypairs td:nth-child(-n+4), #regions td { white-space: nowrap; }
.tag { display: inline-block; background: #edf2f7; border-radius: 3px; padding: 0 5px; margin: 1px;
  font-size: 12px; white-space: nowrap; }
.origin { font-size: 12px; padding: 0 6px; border-radius: 8px; background: #e2e8f0; }
.origin-unmanaged { background: #fefcbf; }
.origin-declared { background: #e9d8fd; }
.finding { color: var(--bad); display: block; font-size: 12px; }
.policy { color: var(--warn); display: block; font-size: 12px; }
.policy-error { color: var(--bad); font-weight: 600; }
.due { color: var(--bad); font-weight: 600; white-space: nowrap; }
.unknown { color: var(--muted); }
.controls { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }
.controls input[type=search] { padding: 4px 8px; min-width: 280px; }
#shown { color: var(--muted); }
.failed { color: var(--bad); }
.note { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 16px;
  margin: 0 0 12px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--fg); }
"""

SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("keypairs");
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
  var filter = document.getElementById("filter");
  var region = document.getElementById("region");
  var onlyFindings = document.getElementById("only-findings");
  var shown = document.getElementById("shown");
  function apply() {
    var terms = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var wantRegion = region.value;
    var needFindings = onlyFindings.checked;
    var count = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = (!wantRegion || r.dataset.region === wantRegion) &&
        (!needFindings || r.dataset.findings !== "0");
      for (var t = 0; ok && t < terms.length; t++) { ok = texts[i].indexOf(terms[t]) !== -1; }
      r.hidden = !ok;
      if (ok) { count++; }
    }
    shown.textContent = "Showing " + count + " of " + rows.length + " key pairs";
    shown.dataset.count = String(count);
  }
  var order = rows.map(function (_, i) { return i; });
  function sortBy(th) {
    var col = th.cellIndex;
    var numeric = th.dataset.type === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) {
      c.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var keys = rows.map(function (r) {
      var cell = r.cells[col];
      var v = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
      return numeric ? (v === "" ? Infinity : parseFloat(v)) : v.toLowerCase();
    });
    order.sort(function (a, b) {
      var x = keys[a], y = keys[b];
      // Ties keep the report's own order (by address) in both directions.
      return (x < y ? -1 : x > y ? 1 : 0) * dir || a - b;
    });
    var fragment = document.createDocumentFragment();
    order.forEach(function (i) { fragment.appendChild(rows[i]); });
    body.appendChild(fragment);
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  filter.addEventListener("input", apply);
  region.addEventListener("change", apply);
  onlyFindings.addEventListener("change", apply);
  apply();
})();
"""


def escape(value: object) -> str:
    """A value from outside as HTML text: markup escaped, controls and bidi shown visibly."""
    return html.escape(visible(value))


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def _date(epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def _tags(row: KeyPairRow) -> str:
    if not row.tags:
        return '<span class="unknown">none</span>'
    return "".join(
        f'<span class="tag">{escape(k)}' + ("" if v is None else f"={escape(v)}") + "</span>"
        for k, v in sorted(row.tags.items())
    )


def _instances(row: KeyPairRow) -> str:
    """How many instances were launched with the key pair; their names in the tooltip."""
    if row.instances is None:
        return '<td class="num unknown" data-v="" title="instances not read">not known</td>'
    names = ", ".join(row.instances)
    if len(names) > 2000:  # a tooltip, not a listing: thousands of names help nobody
        names = names[:2000] + f"... ({len(row.instances)} in all)"
    title = f' title="{escape(names)}"' if names else ""
    return f'<td class="num" data-v="{len(row.instances)}"{title}>{len(row.instances)}</td>'


def _rotation(report: Report, row: KeyPairRow) -> str:
    """When ``createdAt + rotate.after`` falls: a date, or "due now" once the planner would
    rotate it (overdue since that date); blank without ``rotate``."""
    if row.rotation_due is None:
        return '<td data-v=""></td>'
    when = _date(row.rotation_due)
    if not row.rotation_now:
        return f'<td data-v="{row.rotation_due:.0f}" title="rotate on {when}">{when}</td>'
    late = int(max(0.0, report.generated_at - row.rotation_due) // 86400)
    title = f"due since {when}" + (f" ({late} d overdue)" if late else "")
    return f'<td class="due" data-v="{row.rotation_due:.0f}" title="{title}">due now</td>'


def _row(report: Report, row: KeyPairRow) -> str:
    age = report.age_days(row)
    age_cell = (
        '<td class="num" data-v="">-</td>'
        if age is None
        else f'<td class="num" data-v="{age:.3f}" title="created {_date(row.created_at or 0)}">'
        f"{age:.0f} d</td>"
    )
    findings = "".join(f'<span class="finding">{escape(f)}</span>' for f in row.findings)
    findings += "".join(
        f'<span class="policy policy-{escape(p.severity)}" data-rule="{escape(p.rule)}">'
        f"{escape(p.severity)}: {escape(p.message)} [{escape(p.rule)}]</span>"
        for p in row.policy
    )
    count = len(row.findings) + len(row.policy)
    return (
        f'<tr data-region="{escape(row.address.where)}" data-findings="{count}">'
        f"<td>{escape(str(row.address))}</td>"
        f"<td>{escape(row.address.where)}</td>"
        f'<td><span class="origin origin-{escape(row.origin)}">{escape(row.origin)}</span></td>'
        f"{age_cell}<td>{_tags(row)}</td>{_instances(row)}{_rotation(report, row)}"
        f'<td data-v="{count}">{findings or "-"}</td></tr>'
    )


def age_histogram(report: Report) -> list[tuple[str, int]]:
    counts = [0] * len(AGE_BUCKETS)
    for row in report.rows:
        age = report.age_days(row)
        if age is None:
            continue
        for i, (_, bound) in enumerate(AGE_BUCKETS):
            if age < bound:
                counts[i] += 1
                break
    return [(label, counts[i]) for i, (label, _) in enumerate(AGE_BUCKETS)]


def age_chart(report: Report) -> str:
    """A bar chart of key ages as inline SVG (no script needed)."""
    buckets = age_histogram(report)
    width, height, left, bottom, top = 460, 200, 36, 24, 16
    slot = (width - left) / len(buckets)
    peak = max([count for _, count in buckets] + [1])
    scale = (height - bottom - top) / peak
    parts = [
        f'<svg id="age-chart" role="img" aria-label="Key pairs by age" viewBox="0 0 {width} '
        f'{height}" width="100%" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
        'stroke="#9aa3b2"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>',
    ]
    for i, (label, count) in enumerate(buckets):
        bar = count * scale
        x = left + i * slot + slot * 0.15
        y = height - bottom - bar
        parts.append(
            f'<rect class="bar" data-count="{count}" x="{x:.1f}" y="{y:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{bar:.1f}" fill="#2b6cb0">'
            f"<title>{escape(label)}: {count} key pair(s)</title></rect>"
        )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{max(y - 3, top - 2):.1f}" '
            f'text-anchor="middle">{count}</text>'
        )
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{height - 8}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _region_table(report: Report, *, accounts: bool = False) -> str:
    counts = report.account_counts() if accounts else report.region_counts()
    table, heading = ("accounts", "Account") if accounts else ("regions", "Region")
    lines = [
        f'<table id="{table}"><thead><tr><th>{heading}</th><th class="num">Key pairs</th>'
        '<th class="num">Managed</th><th class="num">Unmanaged</th>'
        '<th class="num">With findings</th></tr></thead><tbody>'
    ]
    for c in counts:
        lines.append(
            f'<tr data-region="{escape(c.region)}"><td>{escape(c.region)}</td>'
            f'<td class="num" data-field="total">{c.total}</td>'
            f'<td class="num" data-field="managed">{c.managed}</td>'
            f'<td class="num" data-field="unmanaged">{c.unmanaged}</td>'
            f'<td class="num" data-field="findings">{c.with_findings}</td></tr>'
        )
    for region, message in sorted(report.failed_regions.items()) if not accounts else ():
        lines.append(
            f'<tr class="failed"><td>{escape(region)}</td>'
            f'<td colspan="4">could not be read: {escape(message)}</td></tr>'
        )
    lines.append("</tbody></table>")
    return "".join(lines)


def render(report: Report) -> str:
    counts = report.region_counts()
    total = len(report.rows)
    managed = sum(c.managed for c in counts)
    unmanaged = sum(c.unmanaged for c in counts)
    flagged = sum(c.with_findings for c in counts)
    options = "".join(
        f'<option value="{escape(c.region)}">{escape(c.region)}</option>' for c in counts
    )
    cards = (
        f'<div class="card"><b id="count-total">{total}</b><span>key pairs</span></div>'
        f'<div class="card"><b id="count-managed">{managed}</b><span>managed</span></div>'
        f'<div class="card"><b id="count-unmanaged">{unmanaged}</b><span>unmanaged</span></div>'
        f'<div class="card"><b id="count-findings">{flagged}</b><span>with findings</span></div>'
        f'<div class="card"><b id="count-regions">{len(counts)}</b><span>regions</span></div>'
    )
    by_account = ""
    if report.account_counts():
        accounts = len(report.account_counts())
        cards += (
            f'<div class="card"><b id="count-accounts">{accounts}</b><span>accounts</span></div>'
        )
        by_account = f"<section><h2>By account</h2>{_region_table(report, accounts=True)}</section>"
    rows = "\n".join(_row(report, row) for row in report.rows)
    notes = "".join(
        f'<p class="note failed" data-note="instances-unread">{escape(line)}; '
        f"{escape(INSTANCES_UNKNOWN)}.</p>"
        for line in report.instances_unread
    )
    source = f" &middot; state {escape(report.source)}" if report.source else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Lightsail key pairs report</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>Lightsail key pairs</h1>
<p>Generated {_stamp(report.generated_at)}{source} by lightsail-reconciler</p></header>
<main>
{notes}<div class="cards">{cards}</div>
<div class="row2">
<section><h2>By region</h2>{_region_table(report)}</section>
<section><h2>Key ages</h2>{age_chart(report)}</section>
</div>
{by_account}
<section><h2>Key pairs</h2>
<div class="controls">
<input type="search" id="filter" placeholder="Filter: name, tag, origin, finding..."
 aria-label="Filter key pairs">
<label>Region <select id="region"><option value="">all</option>{options}</select></label>
<label><input type="checkbox" id="only-findings"> only with findings</label>
<span id="shown">Showing {total} of {total} key pairs</span>
</div>
<table id="keypairs"><thead><tr>
<th>Key pair</th><th>Region</th><th>Origin</th><th class="num" data-type="num">Age</th>
<th>Tags</th><th class="num" data-type="num">Instances</th><th data-type="num">Rotation due</th>
<th data-type="num">Findings</th>
</tr></thead>
<tbody>
{rows}
</tbody></table>
</section>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
