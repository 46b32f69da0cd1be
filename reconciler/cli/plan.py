"""`reconciler plan PATH...`: show what apply would change, optionally saved for `apply FILE`."""

from __future__ import annotations

import argparse

from reconciler.cli.arguments import common, output_format, paths_argument, planning
from reconciler.errors import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.output.base import Kind


def add_arguments(parser: argparse.ArgumentParser) -> None:
    paths_argument(parser)
    output_format(parser, Kind.PLAN)
    parser.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 2 when changes are pending"
    )
    parser.add_argument("--out", metavar="FILE", help="save the plan for `reconciler apply FILE`")
    planning(parser)
    common(parser)


# The formats a saved plan keeps its rendering in, for `reconciler show`.
SHOWN = ("text", "json", "markdown")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from dataclasses import replace

    from reconciler.cli import checks, options, workflow
    from reconciler.cli import custody as key_commands
    from reconciler.manifests.load import load_desired
    from reconciler.output.base import PlanView
    from reconciler.output.formats import get
    from reconciler.output.jsondoc import plan_json
    from reconciler.output.terminal import TERMINAL
    from reconciler.planning import savedplan

    opts = options.from_args(args)
    desired = load_desired(checks.manifest_paths(args.paths), accounts=opts.accounts)
    backend = workflow.open_backend(opts)
    with workflow.lightsail_for(opts) as lightsail:
        doc, live = workflow.observe(
            desired, workflow.read_without_secrets(backend), lightsail, opts
        )
        result, _ = workflow.build_plan(desired, doc, lightsail, opts, live=live)
    stored = key_commands.check(opts, doc, opts.region_filter, entries=opts.scope.only(doc.entries))
    if stored:
        result = dataclasses.replace(
            result, findings=result.findings + key_commands.plan_findings(stored)
        )
    report = checks.plan_report(result, desired, live)
    sources = {a: kp.source for a, kp in desired.key_pairs.items()}
    view = PlanView(result, report, sources, TERMINAL.color)
    output = get(args.format)
    TERMINAL.out(output.plan(view))
    output.publish(view)
    result.raise_if_unsafe()
    if args.out:
        savedplan.write(
            args.out,
            result,
            desired,
            options.settings(opts),
            backend.location,
            rendered=plan_json(result),
            shown={name: get(name).plan(replace(view, color=False)) for name in SHOWN},
            where=options.where(opts),
            saw=savedplan.seen(doc.entries, live),
        )
        TERMINAL.say(f"Saved the plan to {args.out}; apply it with `reconciler apply {args.out}`.")
    if result.findings or report.errors:
        return EXIT_ERROR
    if args.detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return EXIT_OK
