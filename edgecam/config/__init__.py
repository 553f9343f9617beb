"""The configuration: typed schema, strict loading, value checks, YAML text helpers; the ``events:`` (``events.py``)
and ``health:`` (``health.py``) sections too, and several cameras (``cameras.py``: ``cameras:``, each camera's config).
May import only the package root (never events or health).
"""
