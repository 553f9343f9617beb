"""/metrics of the HTTP output: the pipeline's counters as Prometheus text (format 0.0.4).

A metric is ``(name, kind, help, samples)``, ``samples`` a list of ``(suffix, value)`` (``suffix``: its labels,
``{rule="door"}``, or a histogram's ``_bucket{le="0.1"}``); other parts of edgecam add theirs through
``Stats.metric_sources`` (the events output) or ``Stats.extra`` (an output's status: the MQTT output's).
"""

from __future__ import annotations

import math
import re

#: The status counts of an output (``stats.extra``, the MQTT output's) that only ever grow: exported as
#: counters ``edgecam_<output>_<key>_total``; the other numbers are gauges.
COUNTED = {"published": "messages published", "dropped": "messages dropped from a full queue",
           "reconnects": "reconnections to the broker", "rate_skipped": "results not sent, over max_rate_hz"}


def render(metrics: list) -> str:
    """The text format of ``metrics``, in their order."""
    lines: list[str] = []
    for name, kind, help_, samples in metrics:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        lines += [f"{name}{suffix} {_num(value)}" for suffix, value in samples]
    return "\n".join(lines) + "\n"


def pipeline_metrics(s: dict, flowing: bool) -> list:
    """The frame counters, rates, the inference histogram and the source's state, from a Stats snapshot ``s``."""
    # Seconds, Prometheus' base unit (promtool refuses "_ms"); Stats keeps milliseconds.
    buckets = [(f'_bucket{{le="{_num(le / 1000)}"}}', n) for le, n in s["inference_ms_buckets"]]
    buckets.append(('_bucket{le="+Inf"}', s["inference_ms_count"]))
    buckets += [("_sum", float(s["inference_ms_sum"]) / 1000), ("_count", s["inference_ms_count"])]
    return [
        ("edgecam_frames_captured_total", "counter", "Frames the source produced.", [("", s["frames_captured"])]),
        ("edgecam_frames_dropped_total", "counter", "Frames captured but never classified.",
         [("", s["frames_dropped"])]),
        ("edgecam_frames_output_dropped_total", "counter",
         "Frames captured but never drawn (the outputs fell behind a live source).",
         [("", s.get("frames_output_dropped", 0))]),
        ("edgecam_frames_inferred_total", "counter", "Frames classified.", [("", s["frames_inferred"])]),
        ("edgecam_frames_without_result_total", "counter",
         "Frames a camera that classifies (the AI Camera) sent without a result.", [("", s["frames_without_result"])]),
        ("edgecam_frames_output_total", "counter", "Frames handed to the outputs.", [("", s["frames_output"])]),
        ("edgecam_capture_fps", "gauge", "Capture rate, frames per second.", [("", s["capture_fps"])]),
        ("edgecam_inference_fps", "gauge", "Inference rate, results per second.", [("", s["inference_fps"])]),
        ("edgecam_output_fps", "gauge", "Output rate, frames per second.", [("", s["output_fps"])]),
        ("edgecam_inference_seconds", "histogram", "Interpreter invoke() time in seconds.", buckets),
        ("edgecam_reconnects_total", "counter", "Times the source was reopened.", [("", s["reconnects"])]),
        ("edgecam_source_up", "gauge", "1 while frames arrive, else 0.", [("", flowing)]),
    ] + ([("edgecam_result_age_seconds", "gauge",
           "Staleness: seconds from the capture of the newest result's frame to now.", [("", s["result_age_s"])])]
         if s.get("result_age_s") is not None else [])


def label_metrics(s: dict) -> list:
    """What is shown now: each region's state and score, or the whole picture's label and score."""
    regions = s["region_states"]
    if regions:
        return [
            ("edgecam_region_state", "gauge", "Each region's current state (unknown: none passes its rules).",
             [(f'{{region="{n}",label="{_escape_label(label or "none")}"}}', 1) for n, (label, _) in regions.items()]),
            ("edgecam_region_score", "gauge", "Score of each region's state (0..1).",
             [(f'{{region="{n}"}}', float(score)) for n, (_, score) in regions.items()]),
            ("edgecam_region_classified_total", "counter", "Times each region was classified.",
             [(f'{{region="{n}"}}', s["region_classified"].get(n, 0)) for n in regions]),
        ]
    out = []
    if s["current_label"]:
        out.append(("edgecam_label_info", "gauge", "The current top label.",
                    [(f'{{label="{_escape_label(s["current_label"])}"}}', 1)]))
    out.append(("edgecam_label_score", "gauge", "Score of the current top label (0..1).",
                [("", float(s["current_score"]))]))
    return out


def server_metrics(slots, server) -> list:
    """The HTTP server's own: open streams and refusals (``slots``: its :class:`StreamSlots`; ``server``: None
    before it listens)."""
    return [
        ("edgecam_http_stream_clients", "gauge", "Open streams: /stream.mjpg and event clips (clip.mjpg).",
         [("", slots.clients)]),
        ("edgecam_http_streams_refused_total", "counter",
         "Stream requests refused with 503: every http.max_clients slot was taken.", [("", slots.refused)]),
        ("edgecam_http_connections_refused_total", "counter",
         "Connections refused with 503: too many served at once.",
         [("", server.refused if server is not None else 0)]),
    ]


def labelled(metrics: list, name: str, value: str) -> list:
    """``metrics`` with the label ``name="value"`` first on every sample (``_bucket{le=...}`` included)."""
    label = f'{name}="{_escape_label(value)}"'
    out = []
    for metric, kind, help_, samples in metrics:
        tagged = []
        for suffix, v in samples:
            head, brace, labels = suffix.partition("{")
            tagged.append((f"{head}{{{label},{labels}" if brace and labels != "}" else f"{head}{{{label}}}", v))
        out.append((metric, kind, help_, tagged))
    return out


def merged(metrics: list) -> list:
    """One family per name, in the order each first came, holding the samples of every one of that name
    (several cameras' metrics, each :func:`labelled`: one HELP and TYPE per family, as the format wants)."""
    families: dict[str, tuple] = {}
    for metric, kind, help_, samples in metrics:
        if metric in families:
            families[metric][3].extend(samples)
        else:
            families[metric] = (metric, kind, help_, list(samples))
    return list(families.values())


def status_metrics(extra: dict) -> list:
    """Each output's status numbers (``Stats.extra``): counters for :data:`COUNTED`, gauges for the rest."""
    out = []
    for sink_name, values in sorted(extra.items()):
        for key, value in sorted(values.items()):
            if not isinstance(value, (bool, int, float)):
                continue
            name = _metric_name(f"edgecam_{sink_name}_{key}")
            if key in COUNTED:  # only ever grows: a counter (rate() works on it), named _total
                out.append((f"{name}_total", "counter", f"{sink_name}: {COUNTED[key]}.", [("", value)]))
            else:
                out.append((name, "gauge", f"{sink_name} status: {key}.", [("", value)]))
    return out


def _num(value) -> str:
    """A sample value as the text format wants it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)
