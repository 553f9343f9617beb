"""Parameters, MACs, MAC shares, SE blocks and h-swish counted from real model graphs,
checked against the papers' figures; and the pattern rules on small hand-made graphs."""

from __future__ import annotations

import pytest

from edgecam.errors import ModelError
from edgecam.model.model_graph import KINDS, Op, Tensor, analyze_graph, read_graph

M = 1e6
FC_1024_1001 = 1024 * 1001  # V1's classifier, which the embedding extractor leaves out

# Howard et al. 2017 (MobileNet V1), Table 6 (width at 224: MACs, params) and Table 7 (resolution
# scales MACs by (r/224)^2, params unchanged); Sandler et al. 2018 (V2), Table 4; Howard et al.
# 2019 (V3), Table 3. (paper MACs at 224, params, resolution of the file)
PAPERS = {
    "mobilenet_v1_0.75_192_quant.tflite": (325 * M, 2.6 * M, 192),
    "mobilenet_v1_0.5_160_quant.tflite": (149 * M, 1.3 * M, 160),
    "mobilenet_v1_0.25_128_quant.tflite": (41 * M, 0.5 * M, 128),
    "mobilenet_v2_1.0_224_quant.tflite": (300 * M, 3.4 * M, 224),
    "v3-small_224_1.0_uint8.tflite": (56 * M, 2.5 * M, 224),
}


@pytest.fixture(scope="session")
def graph(shared_dir):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = read_graph(shared_dir / "models" / name)
        return cache[name]

    return get


@pytest.mark.parametrize("name", PAPERS)
def test_macs_and_params_match_the_papers(graph, name):
    macs, params, res = PAPERS[name]
    g = graph(name)
    # the papers round to 2-3 digits, and the classifier (about 1M MACs) does not scale with resolution
    assert g.macs == pytest.approx(macs * (res / 224) ** 2, rel=0.03)
    assert abs(g.params - params) <= 0.05 * M + 0.03 * params, g.params
    assert g.input_shape == (1, res, res, 3) and g.input_dtype == "uint8" and g.quantization == "uint8"
    assert sum(g.macs_by_kind.values()) == g.macs
    assert sum(g.share(k) for k in KINDS) == pytest.approx(1.0)


def test_v1_1_0_224_is_569m_macs_and_4_2m_params_with_its_classifier(graph):
    g = graph("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")
    assert g.input_shape == (1, 224, 224, 3)
    assert g.macs + FC_1024_1001 == pytest.approx(569 * M, rel=0.005)
    assert g.params + FC_1024_1001 + 1001 == pytest.approx(4.2 * M, rel=0.01)
    # V1 paper, Table 2: depthwise 3.06% of the mult-adds, 1x1 convolutions 94.86% (+ FC 0.18%).
    whole = g.macs + FC_1024_1001
    assert g.macs_by_kind["depthwise"] / whole == pytest.approx(0.0306, abs=0.0005)
    assert g.macs_by_kind["pointwise"] / whole == pytest.approx(0.9486, abs=0.0015)
    # The paper's table says 1.19% for the one full 3x3 convolution, but its own Table 1 gives
    # 112 x 112 x 32 outputs of 3 x 3 x 3 = 10.8M MACs, 1.9%: the file agrees with Table 1.
    assert g.macs_by_kind["standard"] == 112 * 112 * 32 * 3 * 3 * 3
    assert g.macs_by_kind["fully_connected"] == 0


def test_the_v1_v2_v3_distinctions_show_in_the_numbers(graph):
    v1 = graph("mobilenet_v1_0.75_192_quant.tflite")
    v2 = graph("mobilenet_v2_1.0_224_quant.tflite")
    v3 = graph("v3-small_224_1.0_uint8.tflite")
    # V1: 13 depthwise separable blocks, no residuals, nothing of V3's
    assert v1.ops["DEPTHWISE_CONV_2D"] == 13 and "ADD" not in v1.ops
    assert (v1.se_blocks, v1.hswish) == (0, 0)
    # V2: 17 inverted residual blocks (one depthwise each), 10 of them with a residual ADD
    assert v2.ops["DEPTHWISE_CONV_2D"] == 17 and v2.ops["ADD"] == 10
    assert (v2.se_blocks, v2.hswish) == (0, 0)
    # V3-Small (paper Table 2): squeeze-and-excitation in 9 of its 11 blocks; h-swish in the stem,
    # in blocks 4-11 (expansion and depthwise: 16), after the last 1x1 conv and in the head: 19
    assert v3.ops["DEPTHWISE_CONV_2D"] == 11
    assert (v3.se_blocks, v3.hswish) == (9, 19)
    assert v3.ops["HARD_SWISH"] == 19
    # where the work is: 1x1 convolutions dominate V1 and V2; SE and V3's head lift its FC share
    assert v1.share("pointwise") > 0.9 and v2.share("pointwise") > 0.85
    assert v3.share("fully_connected") > 5 * v2.share("fully_connected")
    # depthwise separable convolutions: 8-9x fewer MACs than standard 3x3 convolutions would need
    assert v3.macs < v2.macs / 5 and v2.macs < 1.3 * v1.macs


def test_an_edge_tpu_build_lists_its_custom_op(graph):
    g = graph("mobilenet_v1_0.75_192_quant_edgetpu.tflite")
    assert g.custom_ops == ("edgetpu-custom-op",)
    assert (g.macs, g.params) == (0, 0) and g.quantization == "unknown"
    assert g.input_shape == (1, 192, 192, 3)


def test_not_a_model(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_text("hello\n")
    with pytest.raises(ModelError, match="not a TFLite model"):
        read_graph(bad)


# -- small hand-made graphs: the rules for layouts the shared models don't have ------------------

def T(*shape, dtype="uint8", scales=1):
    return Tensor(tuple(shape), dtype, scales)


def test_grouped_conv_fc_and_float16_weights():
    tensors = {
        0: T(1, 8, 8, 16, dtype="float32"),
        1: T(32, 3, 3, 4, dtype="float16"),  # grouped conv: 16 inputs in 4 groups of 4
        2: T(32, 3, 3, 4, dtype="float32"),  # ...dequantized to float32
        3: T(32, dtype="float32"),
        4: T(1, 8, 8, 32, dtype="float32"),
        5: T(10, 2048, dtype="float16"),
        6: T(10, 2048, dtype="float32"),
        7: T(1, 10, dtype="float32"),
        8: T(1, 2048, dtype="float32"),
    }
    ops = [
        Op("DEQUANTIZE", (1,), (2,)),
        Op("CONV_2D", (0, 2, 3), (4,)),
        Op("RESHAPE", (4,), (8,)),
        Op("DEQUANTIZE", (5,), (6,)),
        Op("FULLY_CONNECTED", (8, 6, -1), (7,)),
    ]
    g = analyze_graph(ops, tensors, [0])
    assert g.macs_by_kind["standard"] == 8 * 8 * 32 * 3 * 3 * 4
    assert g.macs_by_kind["fully_connected"] == 10 * 2048
    assert g.params == 32 * 3 * 3 * 4 + 32 + 10 * 2048  # the float16 constants, not their float32 copies
    assert g.quantization == "float16 weights" and g.input_dtype == "float32"


def test_per_channel_int8_and_dynamic_range():
    tensors = {0: T(1, 4, 4, 3, dtype="int8"), 1: T(8, 1, 1, 3, dtype="int8", scales=8),
               2: T(8, dtype="int32", scales=8), 3: T(1, 4, 4, 8, dtype="int8")}
    ops = [Op("CONV_2D", (0, 1, 2), (3,))]
    g = analyze_graph(ops, tensors, [0])
    assert g.quantization == "int8 per-channel"
    assert g.macs_by_kind["pointwise"] == 4 * 4 * 8 * 3 and g.params == 8 * 3 + 8
    floats = {**tensors, 0: T(1, 4, 4, 3, dtype="float32"), 3: T(1, 4, 4, 8, dtype="float32")}
    assert analyze_graph(ops, floats, [0]).quantization == "int8 per-channel weights, float32 activations (dynamic range)"


def se_graph(pool="MEAN", gate_input_is_x=True):
    """x -> MEAN -> FC -> FC -> ADD 3 -> MUL 1/6 -> (gate); MUL(x, gate); x * relu6(x + 3) / 6 after it."""
    tensors = {
        0: T(1, 14, 14, 16), 1: T(1, 1, 1, 16), 2: T(4, 16), 3: T(1, 4), 4: T(16, 4), 5: T(1, 16),
        6: T(), 7: T(1, 16), 8: T(), 9: T(1, 16), 10: T(1, 1, 1, 16), 11: T(1, 14, 14, 16),
        12: T(), 13: T(1, 14, 14, 16), 14: T(1, 14, 14, 16), 15: T(), 16: T(1, 14, 14, 16), 17: T(1, 14, 14, 16),
        18: T(1, 14, 14, 16),
    }
    ops = [
        Op(pool, (0 if gate_input_is_x else 18, 12), (1,)),
        Op("FULLY_CONNECTED", (1, 2, -1), (3,)),
        Op("FULLY_CONNECTED", (3, 4, -1), (5,)),
        Op("ADD", (5, 6), (7,)),
        Op("MUL", (7, 8), (9,)),
        Op("RESHAPE", (9,), (10,)),
        Op("MUL", (0, 10), (11,)),  # the excitation
        # decomposed h-swish of 11: 11 * relu6(11 + 3) * 1/6
        Op("ADD", (11, 6), (13,)),
        Op("RELU6", (13,), (14,)),
        Op("MUL", (14, 15), (16,)),
        Op("MUL", (11, 16), (17,)),
    ]
    inputs = [0, 18] if not gate_input_is_x else [0]
    return ops, tensors, inputs


def test_se_block_and_decomposed_hswish():
    g = analyze_graph(*se_graph())
    assert (g.se_blocks, g.hswish) == (1, 1)
    assert g.macs_by_kind["fully_connected"] == 16 * 4 + 4 * 16
    assert analyze_graph(*se_graph(pool="AVERAGE_POOL_2D")).se_blocks == 1


def test_a_gate_pooled_from_another_tensor_is_no_se_block():
    g = analyze_graph(*se_graph(gate_input_is_x=False))
    assert g.se_blocks == 0 and g.hswish == 1


def test_products_that_are_not_hswish():
    tensors = {0: T(1, 4, 4, 8), 1: T(1, 4, 4, 8), 2: T(1, 4, 4, 8), 3: T(1, 4, 4, 8)}
    square = [Op("MUL", (0, 0), (1,))]  # x * x
    swish = [Op("LOGISTIC", (0,), (2,)), Op("MUL", (0, 2), (3,))]  # x * sigmoid(x): smooth swish
    relu_gate = [Op("RELU6", (0,), (2,)), Op("MUL", (0, 2), (3,))]  # no + 3
    for ops in (square, swish, relu_gate):
        assert analyze_graph(ops, tensors, [0]).hswish == 0
