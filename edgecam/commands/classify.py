"""``edgecam classify IMAGE...``: the top-k labels of photos."""

from __future__ import annotations

import json
import sys

from edgecam.commands import add_model_args, load_config, model_overrides
from edgecam.errors import EXIT_CONFIG
from edgecam.pictures import PictureError, read_image, shown


def register(sub) -> None:
    p = sub.add_parser("classify", help="print the top-k labels of photos")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photos to classify (JPEG, PNG, BMP...)")
    add_model_args(p)
    p.add_argument("--top-k", type=int, dest="top_k", help="how many labels to print per photo (default: model.top_k)")
    p.add_argument("--json", action="store_true", help="print a JSON list (one object per photo) instead of text")
    p.set_defaults(func=cmd_classify)


def cmd_classify(args) -> int:
    from edgecam.model.backends import load_classifier  # import cost: 7 ms of every `edgecam --help` (cv2 later)

    cfg = load_config(args, model_overrides(args))
    clf = load_classifier(cfg.model)
    k = cfg.model.top_k
    out = []
    status = 0
    for path in args.images:
        try:
            image = read_image(path)
        except PictureError as e:
            print(f"edgecam: {e.message}; skipped", file=sys.stderr)
            status = EXIT_CONFIG
            continue
        result = clf.classify(image)
        top = result.top_k(k, cfg.model.threshold)
        if args.json:
            out.append({"image": shown(path), "model": clf.name, "runtime": clf.runtime,
                        "top_k": [{"index": l.index, "label": l.name, "score": round(l.score, 6)} for l in top]})
        else:
            print(f"{shown(path)}:")
            for l in top:
                print(f"  {l.score:6.1%}  {l.name}")
    if args.json:
        print(json.dumps(out, indent=2))
    return status
