"""``edgecam learn DIR --name NAME``: a custom model from a folder of examples, in seconds, with NumPy.

``DIR`` holds one subfolder per state (``DIR/open/*.png``, ``DIR/closed/...``:
what ``edgecam collect`` and the web page's buttons write). Each example goes
through the base model once (:mod:`edgecam.model.embedding`); a head is fitted on
the embeddings (:mod:`edgecam.model.heads`), cross-validated, and stored in the model
folder as ``NAME.head.npz`` (:mod:`edgecam.model.custom_models`). ``--model NAME``
then works everywhere; a running service takes the new head on ``systemctl
reload edgecam``.
"""

from __future__ import annotations

import datetime
import json
import sys
import time

import numpy as np

from edgecam import registry
from edgecam.config import schema as config_mod
from edgecam.commands import load_config
from edgecam.measure.significance import wilson_interval
from edgecam.model import custom_models, heads
from edgecam.model.custom_models import BACKUP_SUFFIX
from edgecam.model.heads import METHODS
from edgecam.errors import EXIT_CONFIG, EdgecamError, ModelError
from edgecam.names import label_problem
from edgecam.pictures import PictureError, read_image, shown

DEFAULT_METHOD = "logreg"  # best held-out accuracy of the three on the scene tests (docs/custom-states.md)
MIN_EXAMPLES = 2  # per state, for cross-validation; 10 or more are advised
SLOW_LOGREG_STATES = 100  # past this many states logreg takes minutes (200 states, 400 examples: 28 s, one core)


def register(sub) -> None:
    p = sub.add_parser("learn", help="learn your own states from example pictures (one subfolder per state)")
    p.add_argument("examples", metavar="DIR", help="folder with one subfolder of pictures per state (DIR/open/1.png)")
    p.add_argument("--name", required=True, help="the custom model's name: then --model NAME")
    p.add_argument("--force", action="store_true",
                   help=f"replace a custom model of that name (the old one is kept as NAME{BACKUP_SUFFIX})")
    p.add_argument("--base", default="mobilenet_v3_small", help="the registry model whose embedding is learned on")
    p.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD,
                   help=f"the head: logistic regression (default), nearest class mean, k nearest neighbours")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (at most the smallest state's count)")
    p.add_argument("--config", help="config file (model folder, runtime, threads)")
    p.add_argument("--dir", metavar="DIR", help="model folder to store it in (default: see 'edgecam models list')")
    p.add_argument("--json", action="store_true", help="print the result (path, accuracy, timings) as JSON")
    p.set_defaults(func=cmd_learn)


def cmd_learn(args) -> int:
    started = time.perf_counter()
    # import cost: measure.evaluate (54 ms) and the classifier (cv2, 94 ms) on every `edgecam --help` otherwise
    from edgecam.measure import evaluate as ev
    from edgecam.model.classifier import load_classifier

    name, reg, cfg = _request(args)
    photos = ev.load_folders(args.examples)
    classes, counts = _states(args, photos)
    clf = load_classifier(cfg.model, embedding=True)
    t_embed = time.perf_counter()
    x, targets = _embeddings(args, clf, photos, classes, counts)
    if args.method == "logreg" and len(classes) > SLOW_LOGREG_STATES:
        # Its gradient steps cost examples x embedding x states each, once per fold and once more: 1,000 states
        # took 189 s (docs/hardening.md); the nearest class mean fits them in half a second.
        print(f"edgecam: note: {len(classes)} states: --method logreg takes minutes here; --method ncm takes "
              "about a second", file=sys.stderr)
    t_fit = time.perf_counter()
    cv = heads.cross_validate(x, targets, classes, args.method, n_folds=args.folds)
    head = heads.fit(x, targets, classes, args.method, cv.unknown_distance())
    t_done = time.perf_counter()
    lo, hi = wilson_interval(cv.correct, cv.n)
    model = custom_models.CustomModel(
        name=name, base=args.base, base_sha256=custom_models.base_sha256(cfg.model.dir, args.base, reg), head=head, crop="stretch",
        examples={c: int(sum(1 for t in targets if t == i)) for i, c in enumerate(classes)},
        cv={"method": args.method, "folds": cv.n_folds, "n": cv.n, "accuracy": round(cv.accuracy, 4),
            "interval": [round(lo, 4), round(hi, 4)],
            **({"confusion": cv.confusion().tolist()} if len(classes) <= heads.CONFUSION_SHOWN else {})},
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    path = custom_models.save(model, registry.models_dir(cfg.model.dir), keep_previous=True)
    timing = {"embed_s": round(t_fit - t_embed, 3), "fit_s": round(t_done - t_fit, 3),
              "total_s": round(time.perf_counter() - started, 3)}
    if args.json:
        print(json.dumps({**model.meta(), "path": str(path), "embedding_size": int(x.shape[1]), **timing}))
        return 0
    print(f"learned {name}: {len(classes)} states ({', '.join(f'{c} {n}' for c, n in model.examples.items())} "
          f"examples) on {args.base}'s {x.shape[1]}-value embedding, head {args.method}")
    print(f"cross-validated accuracy ({cv.n_folds}-fold, {cv.n} examples): {cv.accuracy:.3f} "
          f"(95% CI {lo:.3f}-{hi:.3f})")
    print(heads.confusion_text(cv))
    print(f"unknown past a distance of {head.unknown_distance:.3f} from every state "
          f"({heads.UNKNOWN_MARGIN:g} x the farthest held-out example)")
    print(f"time: embeddings {timing['embed_s']:.2f} s, fit and cross-validation {timing['fit_s']:.2f} s, "
          f"{timing['total_s']:.2f} s in all")
    print(f"saved {shown(path)}; use it with --model {name} (a running service: sudo systemctl reload edgecam)")
    return 0


def _request(args) -> tuple[str, dict, config_mod.Config]:
    """The custom model's name, the registry and the config, checked before any work is done."""
    name = custom_models.check_name(args.name)
    reg = registry.load_registry()
    if name in reg:
        raise ModelError(f"--name {name}: that is a registry model's name; choose another")
    if args.base not in reg:
        raise ModelError(f"--base {args.base}: not a registry model; known models: {', '.join(reg)}")
    if args.folds < 2:
        raise EdgecamError(f"--folds {args.folds}: expected 2 or more", EXIT_CONFIG)
    cfg = load_config(args, {"model.name": args.base, "model.dir": args.dir, "model.labels": config_mod.CLEAR,
                             "model.crop": "stretch"})
    existing = custom_models.find(name, registry.models_dir(cfg.model.dir))
    if existing is not None and not args.force:
        raise ModelError(f"--name {name}: a custom model of that name exists ({existing}); pass --force to replace "
                         f"it (the old one is kept as {existing.name}{BACKUP_SUFFIX}) or choose another name")
    return name, reg, cfg


def _states(args, photos) -> tuple[list[str], dict[str, int]]:
    """The states (the subfolders' names, sorted) and each one's count of examples, checked."""
    classes = sorted({p.label for p in photos.photos})
    bad = [c for c in classes if label_problem(c)]
    if bad:  # a state's name is a label: it names folders and shows in MQTT payloads and the page
        raise EdgecamError(f"{shown(args.examples)}: the subfolder '{shown(bad[0])}' cannot name a state; rename "
                           f"it: expected {label_problem(bad[0])}", EXIT_CONFIG)
    counts = {c: sum(1 for p in photos.photos if p.label == c) for c in classes}
    if len(classes) < 2:
        raise EdgecamError(f"{args.examples}: only one state ({classes[0]}); a head needs two or more subfolders "
                           "of examples", EXIT_CONFIG)
    few = [f"{c} ({n})" for c, n in counts.items() if n < MIN_EXAMPLES]
    if few:
        raise EdgecamError(f"{args.examples}: too few examples of {', '.join(few)}; give each state at least "
                           f"{MIN_EXAMPLES} (10 or more are advised): edgecam collect ... --label STATE", EXIT_CONFIG)
    return classes, counts


def _embeddings(args, clf, photos, classes: list[str], counts: dict[str, int]) -> tuple[np.ndarray, list[int]]:
    """Each readable example's embedding and its state's index; unreadable ones are left out (said once)."""
    rows, targets, unreadable = [], [], []
    for photo in photos.photos:
        try:
            image = read_image(photo.path)
        except PictureError as e:
            unreadable.append(e.message)
            continue
        rows.append(clf.embed(image))
        targets.append(classes.index(photo.label))
    if unreadable:
        print(f"edgecam: {len(unreadable)} of {len(photos)} pictures could not be read and were left out "
              f"(first: {unreadable[0]})", file=sys.stderr)
    readable = {c: targets.count(i) for i, c in enumerate(classes)}
    short = [f"{c} ({readable[c]} of {counts[c]})" for c in classes if readable[c] < MIN_EXAMPLES]
    if short:
        what = "none of its pictures can be read" if not rows else f"too few readable pictures of {', '.join(short)}"
        raise EdgecamError(f"{shown(args.examples)}: {what} (first: {unreadable[0]}); give each state at least "
                           f"{MIN_EXAMPLES} pictures that are not empty or damaged", EXIT_CONFIG)
    return np.stack(rows), targets
