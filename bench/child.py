"""``python -m bench.child TASK PARAMS_JSON``: run one measured task, print its result.

The parent starts a fresh interpreter per run so that nothing is warm that a
user's run would not have warm, and so that the emulator's CPU (in the
parent) is not charged to the code measured. The last line of stdout is the
result as JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bench import apply, fleet, plan, ratelimit

TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "plan": plan.measure_plan,
    "naive": plan.measure_naive,
    "fleet_baseline": fleet.measure_baseline,
    "apply": apply.measure_apply,
    "apply_boto3": apply.measure_boto3_floor,
    "apply_botocore_standard": ratelimit.measure_botocore_standard,
    "ratelimit_outage": ratelimit.measure_outage,
}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in TASKS:
        sys.stderr.write(f"usage: python -m bench.child {{{','.join(TASKS)}}} PARAMS_JSON\n")
        return 2
    result = TASKS[argv[0]](json.loads(argv[1]))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
