"""The pure planner: (desired, state, live) -> Plan, with its guards, scope, saved plans, drift."""
