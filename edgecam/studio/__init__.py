"""Teaching a camera from its web page: drawn regions, the review queue, retraining, and why a state.

* :mod:`.drawn`: regions drawn on the live view, kept in the state directory
  (``feature_dir(state_dir, "regions")``); a region of the config file wins.
* :mod:`.review`: crops the model was unsure of, in a bounded queue on disk
  (``feature_dir(state_dir, "review")``).
* :mod:`.trainer` and :mod:`.versions`: ``learn``'s embeddings, heads and
  cross-validation run in a background thread; the last few heads of each
  drawn region are kept (``feature_dir(state_dir, "models")``), one is in use.
* :mod:`.live`: what the camera's output loop applies on a reload (the
  regions drawn, the head in use), and the review queue's feeding.
* :mod:`.api` and :mod:`.page`: the JSON endpoints (``/api/teach/...``) and
  the page (``/teach``) using them. docs/teach.md documents both.
"""
