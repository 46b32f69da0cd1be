"""The benchmarks the project keeps (SPEC section 10), run by ``make bench``.

``python -m bench [validate|plan|apply|memory|emulator ...] [--quick]`` prints one line
per figure, each the median of several runs beside its baseline or bound,
with the ratio and whether it meets its target. Every benchmark makes its own
data in a temporary folder; nothing here is imported by ``reconciler``.

    cli.py       argument parsing, the header, the summary
    report.py    figure lines, targets, medians, number formatting
    workload.py  generated manifests, seeded emulator stores, state files
    harness.py   the emulator in this process, measured code in a child one
    child.py     ``python -m bench.child TASK PARAMS``: the child's side
    validate.py  (1) validate beside the YAML parse floor
    plan.py      (2) plan beside a naive boto3 loop
    apply.py     (3) apply beside the latency bound; bytes and fsyncs
    memory.py    (4) peak RSS of ``reconciler plan``
    emulator.py  (5) the emulator's persistence: creates with --data beside in memory
    ratelimit.py apply against a rate limit; the pace's recovery after an outage
    fleet.py     plan of 50 accounts x 4 regions beside a Terraform-like provider
"""
