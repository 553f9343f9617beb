"""The model: reading .tflite files, the runtime and the backends that run it, and what surrounds one inference.

Before: preprocessing (``preprocess``), regions of the picture (``regions``).
The inference: ``runtime`` (TFLite interpreters), ``backends`` (CPU, Coral,
AI Camera, Hailo), ``classifier`` (a model and its labels), learned heads and
embeddings (``heads``, ``embedding``, ``custom_models``, ``exports``).
After: label rules (``rules``: allow, deny, thresholds) and smoothing over
time (``smoothing``). Reads the graph of a file without running it
(``tflite_file``, ``model_graph``). Running it: ``inference`` (one interpreter
or two side by side) with the layout ``calibration`` decides (as configured,
cached, or measured on the first frames, with ``timing``'s helpers).

May import: the root modules, ``camera`` (frames), ``config``, ``registry``.
"""
