"""The board edgecam runs on: temperature, power, clock, memory, disk (:mod:`.board`), the work stepped
down before the firmware's soft temperature limit (:mod:`.thermal`), and the thread that watches both
(:mod:`.monitor`). Everything is read from ``/sys`` and ``/proc`` under ``$EDGECAM_HOST_ROOT`` (default ``/``),
so a recorded tree can be replayed (docs/pi-health.md)."""
