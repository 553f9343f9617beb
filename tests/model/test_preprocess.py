"""Preprocessing: crop geometry, colour order and placement, quantization, and the two-step shrink."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecam.model.preprocess import CROPS, InputSpec, Preprocessor, build_lut, crop_box

# BGR colours (OpenCV order) and the RGB the model must receive for them.
RED_BGR, BLUE_BGR, GREEN_BGR = (0, 0, 255), (255, 0, 0), (0, 255, 0)
RED_RGB, BLUE_RGB, GREEN_RGB = (255, 0, 0), (0, 0, 255), (0, 255, 0)

UINT8_V2 = InputSpec(224, 224, np.uint8, 1 / 128, 128)  # MobileNet V1/V2 quantization
UINT8_V3 = InputSpec(224, 224, np.uint8, 0.007874015718698502, 128)  # V3-Small's


# -- crop geometry -------------------------------------------------------------

@pytest.mark.parametrize("width, height, crop, fraction, box", [
    # landscape 640x480
    (640, 480, "square", 0.875, (80, 0, 480, 480)),
    (640, 480, "center_fraction", 0.875, (110, 30, 420, 420)),
    (640, 480, "center_fraction", 0.5, (200, 120, 240, 240)),
    (640, 480, "stretch", 0.875, (0, 0, 640, 480)),
    # portrait 480x640
    (480, 640, "square", 0.875, (0, 80, 480, 480)),
    (480, 640, "center_fraction", 0.875, (30, 110, 420, 420)),
    (480, 640, "stretch", 0.875, (0, 0, 480, 640)),
    # square
    (300, 300, "square", 0.875, (0, 0, 300, 300)),
    (300, 300, "center_fraction", 0.5, (75, 75, 150, 150)),
    (300, 300, "center_fraction", 1.0, (0, 0, 300, 300)),
    (300, 300, "stretch", 0.875, (0, 0, 300, 300)),
    # odd sizes: the extra pixel goes to the right / bottom
    (641, 480, "square", 0.875, (80, 0, 480, 480)),
    (5, 2, "square", 0.875, (1, 0, 2, 2)),
    # never an empty box
    (4, 4, "center_fraction", 0.1, (1, 1, 1, 1)),
])
def test_crop_box(width, height, crop, fraction, box):
    assert crop_box(width, height, crop, fraction) == box
    x, y, w, h = box
    assert 0 <= x and 0 <= y and x + w <= width and y + h <= height


@pytest.mark.parametrize("bad", ["centre", "", "SQUARE"])
def test_unknown_crop_is_refused(bad):
    with pytest.raises(ValueError, match="unknown crop"):
        crop_box(640, 480, bad)
    with pytest.raises(ValueError, match="unknown crop"):
        Preprocessor(UINT8_V2, bad)


# -- colour order and placement ---------------------------------------------------

def bands(width: int, height: int, edge: int) -> np.ndarray:
    """A landscape BGR picture: green margins of ``edge`` px left and right, red left half, blue right half."""
    img = np.empty((height, width, 3), np.uint8)
    img[:, :edge] = GREEN_BGR
    img[:, edge:width // 2] = RED_BGR
    img[:, width // 2:width - edge] = BLUE_BGR
    img[:, width - edge:] = GREEN_BGR
    return img


def run(spec: InputSpec, image: np.ndarray, crop: str = "square", order: str = "bgr", fraction: float = 0.875):
    out = np.empty((spec.height, spec.width, 3), spec.dtype)
    Preprocessor(spec, crop, fraction)(image, out, order)
    return out


def colours(out: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in c) for c in np.unique(out.reshape(-1, 3), axis=0)}


@pytest.mark.parametrize("crop", ["square", "center_fraction"])
def test_landscape_square_crops_drop_the_margins_and_keep_rgb_order(crop):
    # 640x480 with 80 px green margins: exactly what the centred square leaves out
    img = bands(640, 480, 80)
    out = run(UINT8_V2, img, crop)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert (out[:, :108] == RED_RGB).all()  # left half red, in RGB order
    assert (out[:, 116:] == BLUE_RGB).all()  # right half blue
    assert not (out == GREEN_RGB).all(axis=2).any()  # nothing of the margins
    # only the two colours and their blend at the seam
    assert all(c[1] == 0 for c in colours(out))


def test_portrait_square_crop_is_vertical():
    img = np.empty((640, 480, 3), np.uint8)
    img[:80] = GREEN_BGR
    img[80:320] = RED_BGR
    img[320:560] = BLUE_BGR
    img[560:] = GREEN_BGR
    out = run(UINT8_V2, img, "square")
    assert (out[:108] == RED_RGB).all()
    assert (out[116:] == BLUE_RGB).all()
    assert all(c[1] == 0 for c in colours(out))


def test_stretch_keeps_the_whole_picture():
    img = bands(640, 480, 80)
    out = run(UINT8_V2, img, "stretch")
    # 80 of 640 px -> 28 of 224 columns of green on each side
    assert (out[:, :27] == GREEN_RGB).all()
    assert (out[:, -27:] == GREEN_RGB).all()
    assert (out[:, 30:108] == RED_RGB).all()
    assert (out[:, 116:194] == BLUE_RGB).all()


def test_rgb_input_is_not_swapped_again():
    img = bands(640, 480, 80)
    assert np.array_equal(run(UINT8_V2, img[:, :, ::-1].copy(), order="rgb"), run(UINT8_V2, img))


def test_region_is_a_view_of_the_crop():
    img = np.arange(480 * 640 * 3, dtype=np.uint32).reshape(480, 640, 3)
    region = Preprocessor(UINT8_V2, "square").region(img)
    assert region.shape == (480, 480, 3)
    assert np.shares_memory(region, img)
    assert region[0, 0, 0] == img[0, 80, 0]


@pytest.mark.parametrize("side", [341, 420, 447, 200])
def test_less_than_2x_is_one_bit_exact_bilinear_step(side):
    # 341, 420 (the default crop of 640x480), 447 -> 224: less than 2x; 200 -> 224: enlarged.
    # Not INTER_AREA by a ratio that is not whole: floating point, different on aarch64.
    img = np.random.default_rng(side).integers(0, 256, (side, side + 100, 3), np.uint8)
    want = cv2.cvtColor(bit_exact_bilinear(img[:, 50:50 + side], (224, 224)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(run(UINT8_V2, img, "square"), want)


@pytest.mark.parametrize("crop", CROPS)
def test_picture_at_model_size_passes_straight_through(crop):
    # e.g. the ISP's lores stream: already cropped and scaled, so no crop and no resampling
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (224, 224, 3), np.uint8)
    assert np.array_equal(run(UINT8_V2, img, crop), img[:, :, ::-1])
    assert np.array_equal(run(UINT8_V2, img, crop, order="rgb"), img)


def test_non_square_model_input():
    spec = InputSpec(160, 120, np.uint8, 1 / 128, 128)
    out = run(spec, bands(640, 480, 80), "stretch")
    assert out.shape == (120, 160, 3)
    assert (out[:, :19] == GREEN_RGB).all() and (out[:, 22:77] == RED_RGB).all()


# -- quantization ---------------------------------------------------------------------

def expected_quantized(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """q = round((pixel - mean) / std / scale + zero_point), clipped to the dtype."""
    info = np.iinfo(spec.dtype)
    q = np.round((rgb.astype(np.float64) - spec.mean) / spec.std / spec.scale + spec.zero_point)
    return np.clip(q, info.min, info.max).astype(spec.dtype)


@pytest.fixture
def noise():
    """A BGR picture at model size holding every pixel value."""
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (224, 224, 3), np.uint8)
    img.reshape(-1)[:256] = np.arange(256)
    return img


@pytest.mark.parametrize("spec", [UINT8_V2, UINT8_V3], ids=["v2-1/128", "v3-1/127"])
def test_identity_quantization_passes_pixels_through(spec, noise):
    assert build_lut(spec) is None
    # the pixels themselves, not a table: within one step of the exact quantization
    out = run(spec, noise)
    assert np.array_equal(out, noise[:, :, ::-1])
    assert np.abs(out.astype(int) - expected_quantized(noise[:, :, ::-1], spec).astype(int)).max() <= 1


@pytest.mark.parametrize("spec", [
    InputSpec(224, 224, np.uint8, 0.02, 20),  # real range [-1, 1] squeezed into 70..170
    InputSpec(224, 224, np.uint8, 1 / 256, 128),  # wider than uint8: clipped at both ends
    InputSpec(224, 224, np.uint8, 1 / 128, 128, mean=100.0, std=50.0),  # other normalisation
    InputSpec(224, 224, np.int8, 1 / 128, 0),  # int8 MobileNet
    InputSpec(224, 224, np.int8, 0.0078125, -1),
    InputSpec(224, 224, np.int8, 0.01, 5),
], ids=["uint8-narrow", "uint8-clipped", "uint8-mean-std", "int8-zp0", "int8-zp-1", "int8-narrow"])
def test_other_quantizations_follow_the_formula(spec, noise):
    lut = build_lut(spec)
    assert lut is not None and lut.dtype == spec.dtype and lut.shape == (256,)
    assert np.array_equal(lut, expected_quantized(np.arange(256), spec))
    out = run(spec, noise)
    assert out.dtype == spec.dtype
    assert np.array_equal(out, expected_quantized(noise[:, :, ::-1], spec))


def test_clipping_really_happens():
    lut = build_lut(InputSpec(224, 224, np.uint8, 1 / 256, 128))
    assert lut[0] == 0 and lut[255] == 255 and lut[127] == 127  # both ends clipped, middle exact
    lut = build_lut(InputSpec(224, 224, np.int8, 1 / 128, 0))
    assert lut[0] == -128 and lut[255] == 127  # 128 clipped to 127


def test_float32_is_normalised(noise):
    spec = InputSpec(224, 224, np.float32, 0.0, 0)
    assert build_lut(spec) is None
    out = run(spec, noise)
    assert out.dtype == np.float32
    want = (noise[:, :, ::-1].astype(np.float64) - 127.5) / 127.5
    assert np.allclose(out, want, atol=1e-6)
    assert out.min() == -1.0 and out.max() == 1.0


def test_float32_after_resize_keeps_colour_order():
    spec = InputSpec(224, 224, np.float32, 0.0, 0)
    out = run(spec, bands(640, 480, 80))
    assert np.allclose(out[:, :108], [1.0, -1.0, -1.0])  # red in RGB, normalised
    assert np.allclose(out[:, 116:], [-1.0, -1.0, 1.0])


# -- the two-step shrink -------------------------------------------------------------

@pytest.fixture(scope="module")
def photo(shared_dir):
    img = cv2.imread(str(shared_dir / "images" / "grace_hopper.bmp"), cv2.IMREAD_COLOR)
    assert img is not None
    return img  # 512x600: its 512 px square shrinks by non-whole ratios to 224, 192 and 160


@pytest.mark.parametrize("size", [224, 192, 160, 100])
def test_two_step_shrink_agrees_with_inter_area(photo, size):
    pre = Preprocessor(InputSpec(size, size, np.uint8, 1 / 128, 128), "square")
    region = pre.region(photo)
    assert region.shape[0] // size >= 2 and region.shape[0] % size != 0  # the two-step path applies
    got = pre.resize(region).astype(np.int16)
    assert pre._scratch().mid is not None  # it did take two steps
    want = cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA).astype(np.int16)
    diff = np.abs(got - want)
    assert diff.mean() < 3.0, diff.mean()
    assert np.percentile(diff, 99) < 20


def bit_exact_bilinear(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize in integers, as OpenCV specifies its bit-exact INTER_LINEAR_EXACT
    (its Resize_Bitexact test): source position scale * (i + 0.5) - 0.5 in doubles,
    weights rounded to 8 fraction bits, edges clamped, the sum rounded from 16 bits."""
    def axis(n_dst, n_src):
        pos = 1.0 / (n_dst / n_src) * (np.arange(n_dst) + 0.5) - 0.5
        i0 = np.floor(pos).astype(np.int64)
        w1 = np.rint((pos - i0) * 256).astype(np.int64)
        return np.clip(i0, 0, n_src - 1), np.clip(i0 + 1, 0, n_src - 1), 256 - w1, w1

    x0, x1, wx0, wx1 = axis(size[0], src.shape[1])
    y0, y1, wy0, wy1 = axis(size[1], src.shape[0])
    s = src.astype(np.int64)
    wx0, wx1 = wx0[None, :, None], wx1[None, :, None]
    top = s[y0][:, x0] * wx0 + s[y0][:, x1] * wx1
    bottom = s[y1][:, x0] * wx0 + s[y1][:, x1] * wx1
    total = top * wy0[:, None, None] + bottom * wy1[:, None, None]
    return ((total + (1 << 15)) >> 16).astype(np.uint8)


@pytest.mark.parametrize("side, size", [(480, 224), (512, 224), (420, 192), (600, 160)])
def test_two_step_shrink_is_bit_exact(side, size):
    # The same numbers on x86 and on a Pi's aarch64: the first step must be the
    # integer-exact bilinear, not an approximation whose rounding varies by CPU.
    # Noise makes any rounding difference show (plain INTER_LINEAR here differs
    # from the exact one in about 15% of the values).
    region = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    pre = Preprocessor(InputSpec(size, size, np.uint8, 1 / 128, 128), "square")
    got = pre.resize(region)
    k = side // size
    assert pre._scratch().mid is not None and pre._scratch().mid.shape == (k * size, k * size, 3)
    assert np.array_equal(pre._scratch().mid, bit_exact_bilinear(region, (k * size, k * size)))
    want = bit_exact_bilinear(region, (k * size, k * size)).astype(np.uint32)
    want = sum(want[i::k, j::k] for i in range(k) for j in range(k))  # INTER_AREA by a whole k
    assert np.array_equal(got, ((want + k * k // 2) // (k * k)).astype(np.uint8))


@pytest.mark.parametrize("side, size", [(420, 224), (480, 224), (512, 224), (630, 224), (600, 160), (200, 224)])
@pytest.mark.parametrize("order", ["bgr", "rgb"])
def test_a_frame_resized_through_four_channels_has_the_reference_bits(side, size, order):
    # __call__ resizes a fourth (unused) channel beside the three, where OpenCV's exact bilinear has
    # vector code: the model must still get exactly the three-channel reference, both steps included.
    img = np.random.default_rng(side + size).integers(0, 256, (side, side + 60, 3), np.uint8)
    region = img[:, 30:30 + side]
    k = side // size
    if k < 2:
        want = bit_exact_bilinear(region, (size, size))
    else:
        mid = bit_exact_bilinear(region, (k * size, k * size)).astype(np.uint32)
        total = sum(mid[i::k, j::k] for i in range(k) for j in range(k))  # INTER_AREA by a whole k
        want = ((total + k * k // 2) // (k * k)).astype(np.uint8)
    if order == "bgr":
        want = want[:, :, ::-1]
    spec = InputSpec(size, size, np.uint8, 1 / 128, 128)
    assert np.array_equal(run(spec, img, "square", order), want)
    # the float path converts the same pixels
    float_spec = InputSpec(size, size, np.float32, 0.0, 0)
    assert np.allclose(run(float_spec, img, "square", order), (want.astype(np.float32) - 127.5) / 127.5)


def test_the_reference_tells_exact_from_plain_bilinear():
    region = np.random.default_rng(1).integers(0, 256, (480, 480, 3), dtype=np.uint8)
    reference = bit_exact_bilinear(region, (448, 448))
    assert np.array_equal(reference, cv2.resize(region, (448, 448), interpolation=cv2.INTER_LINEAR_EXACT))
    assert not np.array_equal(reference, cv2.resize(region, (448, 448), interpolation=cv2.INTER_LINEAR))


def test_whole_number_shrink_is_plain_inter_area(photo):
    pre = Preprocessor(InputSpec(128, 128, np.uint8, 1 / 128, 128), "square")  # 512 = 4 x 128
    region = pre.region(photo)
    got = pre.resize(region)
    assert pre._scratch().mid is None
    assert np.array_equal(got, cv2.resize(region, (128, 128), interpolation=cv2.INTER_AREA))


def test_scratch_buffers_follow_changing_picture_sizes(photo):
    pre = Preprocessor(UINT8_V2)
    out = np.empty((224, 224, 3), np.uint8)
    for h, w in [(480, 640), (720, 1280), (480, 640), (341, 512)]:
        img = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        pre(img, out)
        want = cv2.cvtColor(cv2.resize(pre.region(img), (224, 224), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        assert np.abs(out.astype(int) - want.astype(int)).mean() < 3.0


def test_threads_preprocessing_at_once_with_one_preprocessor_each_get_their_own_picture():
    # Several cameras' capture threads share one model's Preprocessor: its scratch arrays are per thread.
    import threading

    pre = Preprocessor(UINT8_V3)
    rng = np.random.default_rng(3)
    pictures = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(2)]
    expected = []
    for img in pictures:
        out = np.empty((224, 224, 3), np.uint8)
        pre(img, out)
        expected.append(out)
    wrong = []

    def work(i):
        for _ in range(300):
            out = np.empty((224, 224, 3), np.uint8)
            pre(pictures[i], out)
            if not np.array_equal(out, expected[i]):
                wrong.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, f"{len(wrong)} of 600 pictures came out mixed with the other thread's"
