"""The pipeline: the app built from a config, the classify loop that feeds the outputs, and the checks before start.

``app``: builds a run from one config in named steps, runs it, reloads on
SIGHUP. ``camera``: everything of one camera (source, regions, live settings,
outputs, event rules, its pipeline), given what the cameras share. ``live``:
the settings a reload swaps at once. ``loop``: the classify loop between the
capture thread and the outputs. ``preflight``: what ``edgecam run`` rejects at start.

May import every package below it (camera, model, outputs, events, health,
config, registry); only ``commands`` and ``measure`` import it.
"""
