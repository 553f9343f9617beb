"""A TFLite image classifier: model file + labels -> :class:`Classification`.

Everything about the model is read from the model itself (input size, dtype
and quantization, output quantization, number of classes) and checked against
the labels, so that a wrong file fails at start with one clear line.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecam import registry
from edgecam.errors import ModelError
from edgecam.model import custom_models, exports
from edgecam.model import embedding as emb
from edgecam.model.interpreter import TFLITE_IDENTIFIER, NotBuilt, check_model_file, load_error  # noqa: F401 (their old home)
from edgecam.model.preprocess import InputSpec, Preprocessor
from edgecam.model.runtime import interpreter_class, resolve_threads
from edgecam.native_stderr import captured
from edgecam.registry import store as registry_store
from edgecam.result import Classification, Extra

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class ClassifierOptions:
    """How a :class:`Classifier` loads its model (everything but the file and its labels).

    ``name``: the model's name for logs and results (default: the file's stem).
    ``runtime`` / ``threads``: see :mod:`edgecam.model.runtime`; ``auto`` threads
    are ``cores - 1`` (a pipeline decides its layout instead:
    :func:`edgecam.model.calibration.plan`). ``crop`` / ``crop_fraction``: see
    :mod:`edgecam.model.preprocess`. ``mean`` / ``std``: the input normalisation
    ((pixel - mean) / std). ``labels_path``: named in a label-count mismatch.
    ``model_content``: the model's bytes instead of the file's. ``embedding``:
    the pooled features are a second output (:mod:`edgecam.model.embedding`);
    ``head``: a fitted :class:`edgecam.model.heads.Head` on them, whose classes
    replace the model's.
    """

    name: str = ""
    runtime: str = "auto"
    threads: int | str = "auto"
    crop: str = "center_fraction"
    crop_fraction: float = 0.875
    mean: float = 127.5
    std: float = 127.5
    labels_path: str | Path | None = None
    model_content: bytes | None = None
    embedding: bool = False
    head: object = None


class Classifier:
    """Loads a model once and classifies pictures with it (on the CPU: see :mod:`edgecam.model.backends` for the others).

    Args:
        model_path: the .tflite file.
        labels: class names, one per model output (1001 with ``background`` at
            0, or 1000).
        options: a :class:`ClassifierOptions`; or its fields as keywords
            (``Classifier(path, labels, threads=1)``).
    """

    backend = "cpu"  # where the model runs (edgecam.model.backends)

    def __init__(self, model_path: str | Path, labels: list[str], options: ClassifierOptions | None = None,
                 **fields):
        if options is not None and fields:
            raise TypeError("Classifier: give options or their fields as keywords, not both")
        opts = options if options is not None else ClassifierOptions(**fields)
        self.options = opts
        self.model_path = Path(model_path)
        self.name = opts.name or self.model_path.stem
        self._content = opts.model_content
        if opts.model_content is None:
            check_model_file(self.model_path)
        self.runtime, self._Interpreter = interpreter_class(opts.runtime)
        self.threads = resolve_threads(opts.threads)
        checked = self._checking_build()
        eager = checked is None
        if eager:
            checked = self._build(self.threads)
        inputs = checked.get_input_details()
        if len(inputs) != 1:
            raise ModelError(f"model file {self.model_path}: has {len(inputs)} inputs, expected one image input")
        self.input_spec = self._input_spec(inputs[0], opts)
        self._read_outputs(checked.get_output_details(), opts.embedding)
        # The interpreter that classifies: built now with a delegate, else at its first use or by
        # build() (a pipeline's, once its layout is decided), so that it is built once.
        self.interpreter = checked if eager else NotBuilt(self)
        del checked
        # A fitted edgecam.model.heads.Head on the embedding: its classes replace the model's. In a
        # one-item list that replica() copies share, so that swap_head() reaches them all.
        self._head = [opts.head]
        self.labels = self._checked_labels(labels, opts)
        self._own_labels = self.labels  # what swap_head(None) brings back
        self.custom = None  # the edgecam.model.custom_models.CustomModel this runs, if any (load_custom)
        self.custom_path: Path | None = None
        self._in_index = inputs[0]["index"]
        self.preprocessor = Preprocessor(self.input_spec, opts.crop, opts.crop_fraction)
        if eager:
            # One warm-up run: the first invoke sets up the workspace and is
            # several times slower; better here than on the first camera frame.
            self.interpreter.invoke()
        spec = self.input_spec
        logger.info(
            "loaded %s: input %dx%d %s, %d classes, runtime %s, %d thread(s)",
            self.name, spec.width, spec.height, np.dtype(spec.dtype).name, self.num_classes, self.runtime,
            self.threads,
        )

    def _input_spec(self, inp: dict, opts: ClassifierOptions) -> InputSpec:
        """The model's one input, checked to be an RGB image of a type the preprocessing writes."""
        shape = tuple(int(s) for s in inp["shape"])
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ModelError(
                f"model file {self.model_path}: input shape {list(shape)} is not one RGB image (expected [1, H, W, 3])"
            )
        dtype = np.dtype(inp["dtype"]).type
        if dtype not in (np.uint8, np.int8, np.float32):
            raise ModelError(f"model file {self.model_path}: input type {np.dtype(dtype).name} is not uint8, int8 or float32")
        scale, zero = inp["quantization"]
        return InputSpec(width=shape[2], height=shape[1], dtype=dtype, scale=float(scale), zero_point=int(zero),
                         mean=opts.mean, std=opts.std)

    def _read_outputs(self, outputs: list, embedding: bool) -> None:
        """The score output (and the embedding's, with ``embedding``): indices, types, quantization."""
        out = outputs[0]
        self.num_classes = int(np.prod(tuple(int(s) for s in out["shape"])))
        # An embedding variant (edgecam.model.embedding) has the pooled features as its second output.
        if len(outputs) != 1 + bool(embedding) or self.num_classes < 2:
            raise ModelError(
                f"model file {self.model_path}: outputs {[list(o['shape']) for o in outputs]} are not one score vector; "
                "is this a classification model?"
            )
        self.embedding_spec = None
        if embedding:
            feat = outputs[1]
            self.embedding_spec = (feat["index"], np.dtype(feat["dtype"]).type, float(feat["quantization"][0]),
                                   int(feat["quantization"][1]))
        self._out_index = out["index"]
        self._out_dtype = np.dtype(out["dtype"]).type
        self._out_scale, self._out_zero = (float(out["quantization"][0]), int(out["quantization"][1]))
        # A quantized output whose range is [0, 1] is a softmax already (every
        # MobileNet here: uint8, scale 1/256). Its quantized sum can be well off
        # 1 (0.85 seen), so decide from the quantization, not from the sum.
        self._probabilities = None
        if self._out_dtype != np.float32 and self._out_scale > 0:
            info = np.iinfo(self._out_dtype)
            lo = (info.min - self._out_zero) * self._out_scale
            hi = (info.max - self._out_zero) * self._out_scale
            self._probabilities = lo >= -1e-6 and hi <= 1.0 + 1e-6

    def _checked_labels(self, labels, opts: ClassifierOptions) -> tuple[str, ...]:
        """The class names: the head's when there is one, else ``labels``, one per model output."""
        if opts.head is not None:
            if self.embedding_spec is None:
                raise ValueError("a head needs the embedding output (embedding=True)")
            labels = list(opts.head.labels)
            self.num_classes = len(labels)
        if len(labels) != self.num_classes:
            where = f"labels file {opts.labels_path}" if opts.labels_path else f"labels for {self.model_path.name}"
            raise ModelError(
                f"{where}: {len(labels)} labels but the model has {self.num_classes} classes "
                f"({self.model_path}); pass the labels file that belongs to this model (--labels PATH)"
            )
        return tuple(labels)

    def _checking_build(self):
        """An interpreter that proves the runtime takes the model and tells its tensors; None: build the real one.

        Without the default delegate (XNNPACK) it costs a few ms, where the
        real one packs the weights and warms up (tens of ms here, more on a
        Pi). With a delegate of our own (the Edge TPU) the real one is built at
        load: its errors belong there.
        """
        if self._options():
            return None
        resolver = getattr(sys.modules.get(self._Interpreter.__module__), "OpResolverType", None)
        if resolver is None:  # a runtime without the option: build the real one at once
            return None
        return self._build(1, experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)

    def _build(self, n: int, **more):
        """A new interpreter with ``n`` threads, tensors allocated (``more``: other Interpreter arguments)."""
        try:
            # The runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate" itself: DEBUG log.
            with captured("tflite"):
                source = {"model_content": self._content} if self._content is not None else \
                    {"model_path": str(self.model_path)}
                interpreter = self._Interpreter(**source, num_threads=n, **self._options(), **more)
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise load_error(self.model_path, e) from None
        return interpreter

    def _options(self) -> dict:
        """More keyword arguments for the runtime's Interpreter (a delegate: edgecam.model.backends.edgetpu)."""
        return {}

    @property
    def built(self) -> bool:
        """Whether the interpreter that classifies exists yet (see :meth:`build`)."""
        return not isinstance(self.interpreter, NotBuilt)

    def build(self, threads: int | None = None):
        """The interpreter, built now with ``threads`` (else the classifier's) unless it is already, with those."""
        n = self.threads if threads is None else threads
        if not self.built or n != self.threads:
            self.reconfigure(n)
        return self.interpreter

    def reconfigure(self, threads: int) -> None:
        """Rebuild the interpreter with ``threads`` threads (warmed up, ready to invoke).

        The old interpreter is let go first, so that only one is alive at a time.
        """
        self.interpreter = None
        self.interpreter = self._build(threads)
        self.interpreter.invoke()  # XNNPACK's set-up, here rather than on a frame
        self.threads = threads

    def replica(self) -> Classifier:
        """Another classifier on the same model with its own interpreter (same threads).

        For a second inference thread: it may call :meth:`classify_prepared`
        while this one does. It shares the labels and the preprocessor, so
        only one of the two may use :meth:`classify` / :meth:`prepare` at a time.
        """
        twin = copy.copy(self)
        twin.interpreter = self._build(self.threads)
        twin.interpreter.invoke()
        return twin

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model's input."""
        return self.input_spec.width, self.input_spec.height

    @property
    def view_size(self) -> tuple[int, int]:
        """(width, height) of a picture whose crop is exactly the model's input (see :class:`Preprocessor`)."""
        return self.preprocessor.view_size

    def set_input(self, image: np.ndarray, order: str = "bgr") -> None:
        """Preprocess ``image`` straight into the interpreter's input buffer."""
        # tensor() is a view of the interpreter's own memory: no copy. The view
        # must be gone before invoke(), which refuses to run while one is held.
        view = self.interpreter.tensor(self._in_index)()[0]
        self.preprocessor(image, view, order)
        del view

    def output_scores(self) -> np.ndarray:
        """The class probabilities of the last ``interpreter.invoke()``."""
        return self._outputs()[0]

    @property
    def head(self):
        """The :class:`edgecam.model.heads.Head` in use, or None (the model's own classes)."""
        return self._head[0]

    def swap_head(self, head) -> None:
        """Use ``head`` from the next result on (a reload after ``edgecam learn``); it may have other classes.

        None: the model's own classes again (a head taught on the page, undone)."""
        if self.embedding_spec is None:
            raise ValueError(f"{self.name}: loaded without its embedding output")
        self._head[0] = head
        self.labels = tuple(head.labels) if head is not None else self._own_labels
        self.num_classes = len(self.labels)

    def output_embedding(self) -> np.ndarray:
        """The embedding (float32, dequantized) of the last ``interpreter.invoke()``; needs ``embedding=True``."""
        if self.embedding_spec is None:
            raise ValueError(f"{self.name}: loaded without its embedding output")
        index, dtype, scale, zero = self.embedding_spec
        raw = self.interpreter.get_tensor(index).reshape(-1)
        if dtype == np.float32 or scale == 0:
            return raw.astype(np.float32)
        return (raw.astype(np.float32) - zero) * scale

    def _outputs(self) -> tuple[np.ndarray, dict, tuple[str, ...]]:
        """(class probabilities, extra facts for the result, class names) of the last invoke.

        With a head: the head's probabilities over its classes, and in the
        extra how far the picture is from what the head was taught
        (``distance``) and whether that is past its ``unknown_distance``.
        """
        head = self._head[0]  # one read: a reload may swap it meanwhile
        if head is None:
            return self.scores(self.interpreter.get_tensor(self._out_index)), {}, self.labels
        probs, distance = head.predict(self.output_embedding())
        d = float(distance[0])
        return probs[0], {Extra.DISTANCE: d, Extra.UNKNOWN: d > head.unknown_distance}, head.labels

    def embed(self, image: np.ndarray, order: str = "bgr") -> np.ndarray:
        """The embedding of one picture (any size; preprocessed as this classifier does)."""
        self.set_input(image, order)
        self.interpreter.invoke()
        return self.output_embedding()

    def scores(self, raw: np.ndarray) -> np.ndarray:
        """Dequantize a raw output and turn it into probabilities."""
        raw = raw.reshape(-1)
        scores = raw.astype(np.float32)  # a new array: the result keeps it
        if self._out_dtype != np.float32 and self._out_scale != 0:
            scores -= self._out_zero  # in place: no temporary arrays per frame
            scores *= self._out_scale
        # Models ending in a softmax give probabilities; others give logits.
        probabilities = self._probabilities
        if probabilities is None:  # float output: look at the values
            probabilities = scores.min() >= 0 and 0.9 <= float(scores.sum()) <= 1.1
        if not probabilities:
            e = np.exp(scores - scores.max())
            scores = e / e.sum()
        return scores

    def classify(self, image: np.ndarray, order: str = "bgr", *, frame_index: int = -1,
                 capture_time: float = 0.0, wall_time: float = 0.0) -> Classification:
        """Classify one picture (any size; BGR unless ``order='rgb'``)."""
        t0 = time.perf_counter()
        self.set_input(image, order)
        return self._invoke(frame_index, capture_time, wall_time, (time.perf_counter() - t0) * 1000)

    def _invoke(self, frame_index: int, capture_time: float, wall_time: float,
                preprocess_ms: float) -> Classification:
        """Run the model on the input already set and build the result."""
        t1 = time.perf_counter()
        self.interpreter.invoke()
        t2 = time.perf_counter()
        scores, extra, labels = self._outputs()
        t3 = time.perf_counter()
        extra[Extra.POSTPROCESS_MS] = (t3 - t2) * 1000
        return Classification(
            scores=scores, labels=labels, model=self.name, frame_index=frame_index,
            capture_time=capture_time, wall_time=wall_time, result_time=time.monotonic(),
            inference_ms=(t2 - t1) * 1000, preprocess_ms=preprocess_ms, extra=extra,
        )

    def prepare(self, frame) -> np.ndarray:
        """Preprocess a :class:`Frame` into a new model-input array (HxWx3, the model's dtype).

        The pipeline calls this in the capture thread, so the inference thread
        only copies the array in and invokes: on two cores the preprocessing
        then overlaps with the previous frame's inference.
        """
        return self.preprocessor.frame_input(frame)

    def classify_prepared(self, tensor: np.ndarray, frame, preprocess_ms: float = 0.0) -> Classification:
        """Classify an array made by :meth:`prepare` for ``frame``."""
        t0 = time.perf_counter()
        view = self.interpreter.tensor(self._in_index)()
        np.copyto(view[0], tensor)
        del view  # invoke() refuses to run while a view of its memory is held
        copy_ms = (time.perf_counter() - t0) * 1000
        return self._invoke(frame.index, frame.timestamp, frame.wall_time, preprocess_ms + copy_ms)


def load_classifier(cfg, *, fetch_missing: bool = True, embedding: bool = False) -> Classifier:
    """Build a :class:`Classifier` (the CPU's) from a :class:`edgecam.config.schema.ModelConfig`.

    ``cfg.name`` is a registry name (fetched into the model cache when missing,
    from ``$EDGECAM_MODEL_MIRROR`` when set), a custom model learned with
    ``edgecam learn`` (:mod:`edgecam.model.custom_models`) or a path to a .tflite
    file. ``embedding``: load the embedding variant too
    (:meth:`Classifier.embed`; :mod:`edgecam.model.embedding`).
    :func:`edgecam.model.backends.load_classifier` picks the backend first.
    """
    if cfg.name not in registry.load_registry():
        found = custom_models.find(cfg.name, registry.models_dir(cfg.dir))
        if found is not None:
            return load_custom(found, cfg, fetch_missing=fetch_missing)
    resolved, labels, pre = resolve_labelled(cfg, fetch_missing=fetch_missing)
    model_path, content = resolved.model_path, None
    if embedding:
        v = emb.variant(resolved.model_path, resolved.entry.sha256 if resolved.entry else None, cfg.runtime)
        model_path, content = (v.path or model_path), v.content
    return Classifier(model_path, labels, ClassifierOptions(
        name=resolved.name, runtime=cfg.runtime, threads=cfg.threads, crop=cfg.crop, crop_fraction=cfg.crop_fraction,
        mean=float(pre.get("mean", 127.5)), std=float(pre.get("std", 127.5)),
        labels_path=resolved.labels_path if resolved.labels_path != resolved.model_path else None,
        model_content=content, embedding=embedding))


def resolve_labelled(cfg, *, fetch_missing: bool = True):
    """(resolved model, its labels, its preprocessing) for a registry name or a ``.tflite`` path.

    A path's labels: ``model.labels``, else the labels packed in the file's
    TFLite metadata (a Model Maker export), else a labels file beside it;
    ``0 open`` lines (a Teachable Machine export) are read as ``open``
    (:mod:`edgecam.model.exports`). Its normalisation comes from the metadata too.
    """
    export = exports.Export()
    if cfg.name not in registry.load_registry() and Path(cfg.name).expanduser().is_file():
        export = exports.read(Path(cfg.name).expanduser())
    if export.labels is not None and cfg.labels is None:
        path = Path(cfg.name).expanduser()
        resolved = registry.ResolvedModel(path.stem, path, path, None)
        labels = export.labels
    else:
        resolved = registry.resolve(cfg.name, cfg.labels, dest_dir=cfg.dir, fetch_missing=fetch_missing)
        # An AI Camera package has its labels inside: no labels file (edgecam.model.backends.imx500).
        labels = exports.index_labels(registry.read_labels(resolved.labels_path)) if resolved.labels_path else []
    pre = dict((getattr(resolved.entry, "preprocess", None) or {}) if resolved.entry else {})
    if export.mean is not None:
        pre["mean"] = export.mean
    if export.std is not None:
        pre["std"] = export.std
    return resolved, labels, pre


def load_custom(path: Path, cfg, *, fetch_missing: bool = True) -> Classifier:
    """A :class:`Classifier` running a custom model's head on its base model's embedding.

    The preprocessing is the one the head was learned with (its ``crop``),
    whatever ``cfg.crop`` says: other pictures would give other embeddings.
    """
    custom = custom_models.load(path)
    base = registry.resolve(custom.base, None, dest_dir=cfg.dir, fetch_missing=fetch_missing)
    sha = base.entry.sha256 if base.entry is not None and base.entry.sha256 else None
    if sha is None:
        sha = registry_store.sha256_file(base.model_path)
    if sha != custom.base_sha256:
        raise ModelError(
            f"custom model {path}: it was learned on another file of {custom.base} (sha256 {custom.base_sha256[:12]}..., "
            f"now {sha[:12]}...); learn it again: edgecam learn DIR --name {custom.name} --base {custom.base}")
    v = emb.variant(base.model_path, sha, cfg.runtime)
    pre = dict(base.entry.preprocess or {}) if base.entry is not None else {}
    clf = Classifier(v.path or base.model_path, [], ClassifierOptions(
        name=custom.name, runtime=cfg.runtime, threads=cfg.threads, crop=custom.crop,
        crop_fraction=custom.crop_fraction, mean=float(pre.get("mean", 127.5)), std=float(pre.get("std", 127.5)),
        model_content=v.content, embedding=True, head=custom.head))
    clf.custom = dataclasses.replace(custom)
    clf.custom_path = Path(path)
    return clf
