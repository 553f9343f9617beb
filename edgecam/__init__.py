"""edgecam: a real-time camera image classifier for the Raspberry Pi.

A frame goes source (``sources/``) -> capture thread and preprocessing
(``capture.py``, ``preprocess.py``) -> inference (``inference.py``,
``classifier.py``, ``runtime.py``) -> output loop (``pipeline.py``: smoothing,
overlay, sinks in ``sinks/``); ``app.py`` builds it from the config
(``config.py``). Models come from the registry (``registry/``); the command
line is ``cli.py`` with one module per command in ``commands/``; the systemd
service is ``service/``. docs/development.md, "How it works", maps every file.
"""

__version__ = "0.1.0"
