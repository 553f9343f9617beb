"""Events: rules that act when a label or a region's state appears, and the history they leave.

The ``events:`` section's schema is :mod:`edgecam.config.events`; ``rules.py`` when an event starts and
ends (pure: results and times in, starts and ends out); ``history.py`` the
SQLite history (WAL, one writer thread) with its retention (``retention.py``:
the clock it does not trust blindly); ``disk.py`` the folder's layout, its
lock and the repair after a power cut; ``media.py`` snapshots and where media files live;
``clips.py`` the pre-roll ring of JPEG frames and the clip writer;
``sink.py`` the pipeline output that ties them together (``hub.py``: what several cameras' outputs
share in one folder); ``webhook.py``
the JSON POSTs; ``web.py`` the /events page and /api/events, mounted on the HTTP output;
``checks.py`` what ``edgecam check-config`` refuses in the events' config.

May import every package below it (config, registry, camera, model, health, outputs: the Sink base, the
overlay, the examples); nothing imports it but the pipeline, the commands and the service. Importing it
registers its output, fed before every other one (:data:`edgecam.outputs.SINKS`).
"""

from edgecam.outputs import SinkPlugin, register

register(SinkPlugin("events", "events", lambda cfg, ctx: bool(cfg.events.rules), "edgecam.events.sink:EventsSink"),
         first=True)
