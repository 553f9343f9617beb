"""The configuration: typed schema, strict loading, value checks, YAML text helpers."""
