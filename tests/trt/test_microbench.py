"""The microbenchmark's ONNX graphs (lcefr.trt.microbench): the IR-18 layer table, the checker,
BinaryConv2d on onnxruntime == numpy +-1 convolution, and the dry run."""
import os

import numpy as np
import pytest

from lcefr.trt import microbench
from lcefr.trt.shapes import IR18_CONVS, ConvLayer


def test_microbench_layer_table_matches_ir18():
    mb = microbench
    layers = IR18_CONVS
    assert len(layers) == 21
    assert layers[0] == ConvLayer(1, 3, 64, 3, 1, 112)
    assert layers[mb.FIG5_LAYER - 1] == ConvLayer(18, 512, 512, 3, 2, 14)  # "the 18th conv layer"
    assert layers[mb.FIG7_LAYER - 1] == ConvLayer(3, 64, 64, 3, 2, 112)  # "the 3rd convolution layer"
    assert [layer.kernel for layer in layers].count(1) == 4  # one 1x1 shortcut per stage
    run, skipped = mb.cases(max_mb=768)
    names = [c.name for c in run]
    assert len(names) == len(set(names))
    shared = next(c for c in run if c.name == "l18_b512_h14")
    assert shared.figures == ["Fig. 5", "Fig. 6"]
    assert all(c.tensor_mb > 768 for c in skipped) and "l03_b512_h224" in [c.name for c in skipped]
    with pytest.raises(ValueError, match="figures are 4, 5, 6, 7"):
        mb.cases(["8"])


@pytest.mark.parametrize("layer, size", [((99, 40, 8, 3, 2), 9), ((98, 70, 16, 1, 2), 8), ((1, 3, 64, 3, 1), 10)])
def test_microbench_graphs(layer, size):
    import onnx

    pytest.importorskip("onnxruntime_extensions")
    from lcefr.convert.ort import onnx_binary_runner

    mb = microbench
    case = mb.Case(ConvLayer(*layer, size), 2, size)
    conv = onnx.load_from_string(mb.conv_graph(case))
    onnx.checker.check_model(conv, full_check=True)
    assert [n.op_type for n in conv.graph.node] == ["Conv"]
    out_dims = [d.dim_value for d in conv.graph.output[0].type.tensor_type.shape.dim]
    assert out_dims == [2, case.layer.cout, case.out_size, case.out_size]
    binary = mb.binary_graph(case)
    node = onnx.load_from_string(binary).graph.node[0]
    assert (node.op_type, node.domain) == ("BinaryConv2d", "")
    x = np.random.default_rng(3).normal(size=(2, case.layer.cin, size, size)).astype(np.float32)
    x[0, 0, 0, :2] = 0.0  # sign(0) = +1
    y = onnx_binary_runner(binary)(x)
    np.testing.assert_allclose(y, mb.reference_bconv(x, case), rtol=1e-5, atol=1e-4)

    import onnxruntime as ort  # the float graph is plain ONNX: it runs as is, and on +-1 inputs equals the binary one

    session = ort.InferenceSession(mb.conv_graph(case), providers=["CPUExecutionProvider"])
    xs = np.where(x < 0, -1.0, 1.0).astype(np.float32)  # zero padding == pad_value 0 (padded taps count 0)
    np.testing.assert_allclose(session.run(None, {"x": xs})[0], y, rtol=1e-5, atol=1e-3)


def test_microbench_dry_run_writes_graphs(tmp_path, capsys):
    mb = microbench
    assert mb.main(["--dry-run", "--figures", "5", "--modes", "plugin-fp32,conv-int8", "--onnx-dir", str(tmp_path)]) == 0
    files = sorted(os.listdir(tmp_path))
    assert "l18_b1_h14.bconv.onnx" in files and "l18_b1_h14.conv.onnx" in files
    assert len(files) == 2 * 7  # seven batches; batch 1024 (490 MB) is below the 768 MB default
    out = capsys.readouterr().out
    assert "l18_b512_h14: Fig. 5" in out
