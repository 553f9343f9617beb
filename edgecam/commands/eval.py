"""``edgecam eval``: top-1/top-5 accuracy with 95% intervals; ``--compare`` a second setting (McNemar).

The evaluation itself is :mod:`edgecam.measure.evaluate`, its statistics :mod:`edgecam.measure.significance`.
"""

from __future__ import annotations

import json

import shlex

from edgecam import registry
from edgecam.config import schema as config_mod
from edgecam.commands import add_model_args, load_config, model_overrides
from edgecam.errors import ConfigError
from edgecam.model import custom_models


def register(sub) -> None:
    p = sub.add_parser("eval", help="top-1/top-5 accuracy with 95%% intervals over labelled photos; --compare two settings")
    # Not required=True: argparse's "the following arguments are required: --images" does not say what to add.
    p.add_argument("--images", help="folder of photos, or of one subfolder per class (named after its label)")
    p.add_argument("--expected", help="CSV with columns file,label_index (and optionally label); "
                                      "without it, --images holds one subfolder per class")
    add_model_args(p)
    p.add_argument("--compare", metavar="KEY=VALUE[,...]",
                   help="also evaluate this setting on the same photos and test the difference (McNemar): "
                        "model, crop, crop_fraction, threshold, labels, runtime; e.g. crop=square")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.set_defaults(func=cmd_eval)


def _missing_images(args) -> str:
    """The one line for an eval without --images: the user's own command, with what to add."""
    given = [(flag, getattr(args, dest, None)) for flag, dest in (
        ("--config", "config"), ("--model", "model"), ("--labels", "labels"), ("--threads", "threads"),
        ("--runtime", "runtime"), ("--crop", "crop"), ("--backend", "backend"), ("--compare", "compare"))]
    line = shlex.join(["edgecam", "eval", *[str(x) for flag, v in given if v is not None for x in (flag, v)],
                       "--images", "PHOTOS", "--expected", "PHOTOS/expected.csv"] + (["--json"] if args.json else []))
    return (f"--images is missing: the labelled photos to score. Add them, e.g.: {line} "
            f"(expected.csv: file,label_index per photo; or leave --expected out when PHOTOS holds one "
            f"subfolder per class, named after its label)")


def cmd_eval(args) -> int:
    """Accuracy with 95% intervals; with --compare, a second setting on the same photos and McNemar's test."""
    # import cost: measure.evaluate 54 ms and the backends 7 ms of every `edgecam --help` otherwise
    from edgecam.measure import evaluate as ev
    from edgecam.model.backends import load_classifier

    if not args.images:
        raise ev.EvalError(_missing_images(args))

    cfg_a = load_config(args, model_overrides(args))
    settings = [cfg_a.model]
    if args.compare:
        overrides = ev.parse_compare(args.compare)
        try:
            cfg_b = config_mod.apply_overrides(cfg_a, overrides)
        except ConfigError as e:
            raise ev.EvalError(f"--compare {args.compare}: {'; '.join(e.problems)}") from None
        if cfg_b.model == cfg_a.model:
            raise ev.EvalError(f"--compare {args.compare}: that is the setting already in use; nothing to compare")
        settings.append(cfg_b.model)
    photos = ev.load_photos(args.images, args.expected)
    for m in settings:  # a bad model name in either setting fails before anything loads
        if custom_models.find(m.name, registry.models_dir(m.dir)) is None:
            registry.resolve(m.name, m.labels, dest_dir=m.dir)
    classifiers = [load_classifier(m) for m in settings]
    results = ev.evaluate(classifiers, photos, [m.threshold for m in settings])
    diffs = [ev.compare(results[0], results[1], k) for k in (1, 5)] if len(results) == 2 else []
    if args.json:
        if not diffs:
            print(json.dumps(results[0].to_dict()))
        else:
            print(json.dumps({"n": results[0].n, "a": results[0].to_dict(), "b": results[1].to_dict(),
                              "top1": diffs[0].to_dict(), "top5": diffs[1].to_dict()}))
        return 0
    if not diffs:
        print(ev.result_line(results[0]))
        return 0
    print(f"A  {ev.result_line(results[0])}")
    print(f"B  {ev.result_line(results[1])}")
    for d in diffs:
        print(ev.difference_line(d))
    return 0
