"""Measurements: ``edgecam bench``, ``eval``, ``models compare`` and ``threads: auto``.

``bench`` (a pipeline run measured), ``evaluate`` (accuracy on labelled
photos), ``compare`` and ``compare_plot`` (settings and models side by side),
``model_probe`` (one model measured in a process of its own), ``calibration``
(the thread layout measured at start), with ``timing`` and ``significance``
(percentiles, peak RSS, intervals, paired tests).
"""
