"""Inventory and onboarding: the whole fleet as a report, import --all, adoption."""
