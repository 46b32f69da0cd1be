"""`reconciler report PATH... --out report.html`: an inventory page for scheduled jobs.

Reads manifests, state (without private keys), Lightsail and its instances
(paged GetInstances, once per region read), builds the inventory
(``fleet.inventory``) and writes it as one self-contained HTML page.
"""

from __future__ import annotations

import argparse

from reconciler.cli.arguments import common, paths_argument, scoping
from reconciler.errors import EXIT_ERROR, EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    paths_argument(parser)
    parser.add_argument(
        "--out",
        metavar="FILE",
        default="report.html",
        help="the HTML file to write (default: report.html)",
    )
    scoping(parser)
    common(parser)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from reconciler.cli import options
    from reconciler.cli.checks import policy_findings
    from reconciler.cli.drift import instances_unread_line, observe
    from reconciler.fleet.inventory import INSTANCES_UNKNOWN, build_report
    from reconciler.output import html as report_html
    from reconciler.output.terminal import TERMINAL
    from reconciler.state.files import write_output

    # Unmanaged key pairs show as such in their origin; not counted as findings.
    # Instances are read (paged GetInstances, once per region read) for the
    # instances column and the unused / unmanaged-key-in-use findings.
    seen = observe(
        args.paths, options.from_args(args), include_unmanaged=False, include_instances=True
    )
    live = seen.live
    now = time.time()
    report = build_report(
        seen.desired,
        seen.entries,
        seen.pending,
        live,
        seen.findings,
        now=now,
        source=seen.backend.location,
        instances=seen.instances,
        instance_regions=seen.instance_regions,
        policy=policy_findings(seen.desired, live, now=now),
        instances_unread=[instances_unread_line(u) for u in seen.instances_unread],
    )
    page = report_html.render(report)
    write_output(Path(args.out), page.encode(), what="--out")
    TERMINAL.say(
        f"Wrote {args.out}: {len(report.rows)} key pair(s) in {len(report.regions)} region(s)."
    )
    for unread in live.unread():
        TERMINAL.error(unread.describe())
    for line in report.instances_unread:
        TERMINAL.warning(f"{line}; {INSTANCES_UNKNOWN}")
    return EXIT_ERROR if live.failed_regions or report.instances_unread else EXIT_OK
