"""Manifests on disk: the YAML walker, the schema and its fast check, reconciler.yaml, accounts."""
