"""Generated camera scenes for the region and learning tests: real photos, jittered as day and night would.

A fixed background photo is the "camera view" (640x480); a region of it
shows one of a few states: nothing in particular (the background itself) or
another photo pasted in. Each frame draws a new jitter:

* the camera moves a little (a shift of up to 2% of the frame);
* the pasted photo sits a little elsewhere and has another size (up to 8% of
  the box, 85-100% of its size);
* light: a brightness gain from 0.35 (night) to 1.25 (bright day), an offset,
  a white balance that drifts per channel;
* sensor noise, stronger when it is dark (Gaussian, sigma 2 to 12 levels).

Everything comes from ``../shared/images/imagenet-sample`` (real photos);
:func:`write_video` writes a clip of a scene switching state on a schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

BACKGROUND = "n03776460_mobile_home.JPEG"
#: state -> the photo pasted into the region (None: the background shows).
STATES = {"empty": None, "scooter": "n03791053_motor_scooter.JPEG", "tricycle": "n04482393_tricycle.JPEG"}
#: Photos for states the head was never taught (the unknown test).
OTHERS = ("n04399382_teddy.JPEG", "n04204238_shopping_basket.JPEG", "n02110185_Siberian_husky.JPEG")
REGION = (0.50, 0.30, 0.95, 0.95)  # x0, y0, x1, y1 as fractions of the frame
SIZE = (640, 480)


def box_pixels(box, size) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in pixels of a fractional box on a ``size`` = (w, h) frame."""
    w, h = size
    return int(round(box[0] * w)), int(round(box[1] * h)), int(round(box[2] * w)), int(round(box[3] * h))


@dataclass
class Scene:
    """A background and the photos its region can show; :meth:`frame` draws one jittered frame."""

    photos_dir: Path
    states: dict[str, str | None] | None = None
    background: str = BACKGROUND
    region: tuple[float, float, float, float] = REGION
    size: tuple[int, int] = SIZE
    scale: tuple[float, float] = (0.85, 1.0)  # the pasted photo's size, as a share of the box
    wander: float = 0.08  # how far it strays from the box's centre, as a share of the box

    def __post_init__(self):
        self.states = dict(STATES if self.states is None else self.states)
        bg = cv2.imread(str(Path(self.photos_dir) / self.background), cv2.IMREAD_COLOR)
        if bg is None:
            raise FileNotFoundError(Path(self.photos_dir) / self.background)
        self._bg = cv2.resize(bg, self.size, interpolation=cv2.INTER_AREA)
        self._photos = {}
        for name in {p for p in self.states.values() if p} | set(OTHERS):
            img = cv2.imread(str(Path(self.photos_dir) / name), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(Path(self.photos_dir) / name)
            self._photos[name] = img

    def compose(self, photo: str | None, rng: np.random.Generator) -> np.ndarray:
        """The scene with ``photo`` pasted into the region (jittered placement), before light and noise."""
        img = self._bg.copy()
        if photo is not None:
            x0, y0, x1, y1 = box_pixels(self.region, self.size)
            bw, bh = x1 - x0, y1 - y0
            scale = rng.uniform(*self.scale)
            pw, ph = int(bw * scale * 0.92), int(bh * scale * 0.92)
            px = x0 + int((bw - pw) / 2 + rng.uniform(-self.wander, self.wander) * bw)
            py = y0 + int((bh - ph) / 2 + rng.uniform(-self.wander, self.wander) * bh)
            px, py = max(0, min(px, self.size[0] - pw)), max(0, min(py, self.size[1] - ph))
            img[py:py + ph, px:px + pw] = cv2.resize(self._photos[photo], (pw, ph), interpolation=cv2.INTER_AREA)
        return img

    def light(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Camera shake, brightness, white balance and sensor noise."""
        w, h = self.size
        shift = np.float32([[1, 0, rng.uniform(-0.02, 0.02) * w], [0, 1, rng.uniform(-0.02, 0.02) * h]])
        img = cv2.warpAffine(img, shift, (w, h), borderMode=cv2.BORDER_REFLECT)
        gain = rng.uniform(0.35, 1.25)
        balance = rng.uniform(0.92, 1.08, size=3)
        offset = rng.uniform(-15, 15)
        sigma = 2 + 10 * (1.25 - gain) / 0.9
        out = img.astype(np.float32) * (gain * balance) + offset + rng.normal(0, sigma, img.shape)
        return np.clip(out, 0, 255).astype(np.uint8)

    def frame(self, state: str, rng: np.random.Generator) -> np.ndarray:
        """One jittered BGR frame showing ``state`` (a key of ``states``, or a photo file name)."""
        photo = self.states[state] if state in self.states else state
        return self.light(self.compose(photo, rng), rng)

    def crop(self, frame: np.ndarray) -> np.ndarray:
        """The region of a frame, in pixels of that frame."""
        x0, y0, x1, y1 = box_pixels(self.region, (frame.shape[1], frame.shape[0]))
        return frame[y0:y1, x0:x1]


def write_examples(scene: Scene, root: Path, per_state: int, seed: int) -> dict[str, list[Path]]:
    """``root/<state>/<n>.png``: ``per_state`` region crops per state, as ``edgecam collect`` writes them."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    for state in scene.states:
        folder = root / state
        folder.mkdir(parents=True, exist_ok=True)
        out[state] = []
        for i in range(per_state):
            path = folder / f"{i:03d}.png"
            cv2.imwrite(str(path), scene.crop(scene.frame(state, rng)))
            out[state].append(path)
    return out


def schedule_states(schedule: list[tuple[str, int]]) -> list[str]:
    """[("empty", 30), ("scooter", 45)] -> the state of each frame."""
    return [state for state, n in schedule for _ in range(n)]


def write_video(scene: Scene, path: Path, schedule: list[tuple[str, int]], fps: float = 10.0, seed: int = 0,
                still: bool = False) -> list[str]:
    """A clip of ``scene`` following ``schedule``; returns each frame's state.

    ``still``: the jitter is drawn once per schedule step instead of per frame
    (a still scene, for the motion figure).
    """
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, scene.size)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    states = []
    try:
        for state, n in schedule:
            fixed = scene.frame(state, rng) if still else None
            for _ in range(n):
                writer.write(fixed if still else scene.frame(state, rng))
                states.append(state)
    finally:
        writer.release()
    return states


def letterbox(image: np.ndarray, size=SIZE) -> np.ndarray:
    """``image`` scaled to fit ``size`` = (w, h), centred on black (as ../shared/video was made)."""
    w, h = size
    scale = min(w / image.shape[1], h / image.shape[0])
    pw, ph = max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - pw) // 2, (h - ph) // 2
    out[y:y + ph, x:x + pw] = cv2.resize(image, (pw, ph), interpolation=cv2.INTER_AREA)
    return out


def write_timeline(photos_dir: Path, path: Path, schedule: list[tuple[str, int]], fps: float = 10.0) -> list[str]:
    """A clip of whole photos shown on a known schedule: [(photo file, frames), ...]; returns each frame's photo.

    Each photo is a still, letterboxed to 640x480: the timeline test knows on which frame each one appears.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    shown = []
    try:
        for photo, n in schedule:
            img = cv2.imread(str(Path(photos_dir) / photo), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(Path(photos_dir) / photo)
            frame = letterbox(img)
            for _ in range(n):
                writer.write(frame)
                shown.append(photo)
    finally:
        writer.release()
    return shown
