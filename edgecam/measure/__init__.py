"""Measurements: ``edgecam bench``, ``eval`` and ``models compare``.

``bench`` (a pipeline run measured), ``evaluate`` (accuracy on labelled
photos), ``compare`` and ``compare_plot`` (settings and models side by side),
``model_probe`` (one model measured in a process of its own), ``significance``
(intervals, paired tests). The thread layout a run measures at start
(``threads: auto``) and the timing helpers it shares with these are in
:mod:`edgecam.model` (``calibration``, ``timing``): the pipeline needs them,
and the pipeline may not import this package (bench imports the pipeline).

May import every package but ``commands``.
"""
