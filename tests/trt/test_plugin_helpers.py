"""TensorRT-independent logic of the BinaryConv2d plugin (jetson/trt/bconv_plugin_helpers.h).

The header is built by g++ into a small shared library (bconv_plugin_helpers_capi.cpp) and driven
through ctypes: attribute parsing and rejection, serialization round trip, output shapes (checked
against the ONNX Conv formula and the CUDA kernels' own geometry), input-shape checks and the
workspace layout.
"""
import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "jetson" / "trt" / "bconv_plugin_helpers_capi.cpp"

I32x11 = ctypes.c_int32 * 11
I32x4 = ctypes.c_int32 * 4

# status codes of lcefr::trt::Status
OK, UNKNOWN_FIELD, FIELD_LENGTH, MISSING, KERNEL, STRIDE, PAD, GROUP, GROUP_CHANNELS, IN_CHANNELS, \
    PAD_VALUE, SERIALIZED, INPUT_SHAPE, EMPTY_OUTPUT = range(14)
FIELDS = ["kernel_shape", "strides", "pads", "group", "in_channels", "pad_value"]
ATTR_ORDER = ["kernel_h", "kernel_w", "stride_h", "stride_w", "pad_top", "pad_left", "pad_bottom",
              "pad_right", "group", "in_channels", "pad_value"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    out = tmp_path_factory.mktemp("trt_helpers") / "liblcefr_trt_helpers.so"
    subprocess.run([cxx, "-std=c++14", "-O1", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    str(SOURCE), "-o", str(out)], check=True, capture_output=True, text=True)
    so = ctypes.CDLL(str(out))
    so.lcefr_trt_status_string.restype = ctypes.c_char_p
    so.lcefr_trt_field_name.restype = ctypes.c_char_p
    so.lcefr_trt_serialization_size.restype = ctypes.c_size_t
    so.lcefr_trt_deserialize.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p]
    so.lcefr_trt_workspace.restype = ctypes.c_size_t
    so.lcefr_trt_workspace.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int,
                                       ctypes.c_void_p]
    return so


def parse(lib, fields):
    """Plugin fields {name: [ints]} -> (status, attrs dict or None), as the creator parses them."""
    names = (ctypes.c_char_p * len(fields))(*[n.encode() for n in fields])
    arrays = [(ctypes.c_int32 * len(v))(*v) for v in fields.values()]
    values = (ctypes.POINTER(ctypes.c_int32) * len(fields))(
        *[ctypes.cast(a, ctypes.POINTER(ctypes.c_int32)) for a in arrays])
    lengths = (ctypes.c_int32 * len(fields))(*[len(v) for v in fields.values()])
    out = I32x11()
    status = lib.lcefr_trt_parse(names, values, lengths, len(fields), out)
    return status, (dict(zip(ATTR_ORDER, out)) if status == OK else None)


def words(attrs):
    return I32x11(*[attrs[k] for k in ATTR_ORDER])


def node(**over):
    """Attributes of a typical node (3x3, stride 1, same padding, 64 channels)."""
    fields = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "group": [1],
              "in_channels": [64], "pad_value": [1]}
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


def attrs_of(lib, **over):
    status, attrs = parse(lib, node(**over))
    assert status == OK, lib.lcefr_trt_status_string(status)
    return attrs


# ---- fields and parsing -----------------------------------------------------------------------------


def test_field_table(lib):
    assert lib.lcefr_trt_num_fields() == len(FIELDS)
    assert [lib.lcefr_trt_field_name(i).decode() for i in range(len(FIELDS))] == FIELDS
    assert [lib.lcefr_trt_field_length(i) for i in range(len(FIELDS))] == [2, 2, 4, 1, 1, 1]
    assert lib.lcefr_trt_field_name(len(FIELDS)) is None


def test_parse_all_fields(lib):
    status, attrs = parse(lib, node(kernel_shape=[3, 5], strides=[2, 1], pads=[1, 2, 0, 3], group=[2],
                                    in_channels=[128], pad_value=[0]))
    assert status == OK
    assert attrs == dict(kernel_h=3, kernel_w=5, stride_h=2, stride_w=1, pad_top=1, pad_left=2,
                         pad_bottom=0, pad_right=3, group=2, in_channels=128, pad_value=0)


def test_parse_defaults(lib):
    status, attrs = parse(lib, {"in_channels": [3], "kernel_shape": [1, 1]})
    assert status == OK
    assert attrs == dict(kernel_h=1, kernel_w=1, stride_h=1, stride_w=1, pad_top=0, pad_left=0,
                         pad_bottom=0, pad_right=0, group=1, in_channels=3, pad_value=0)


@pytest.mark.parametrize("over, status", [
    (dict(dilations=[1, 1]), UNKNOWN_FIELD),
    (dict(kernel_shape=[3]), FIELD_LENGTH),
    (dict(pads=[1, 1]), FIELD_LENGTH),
    (dict(group=[1, 1]), FIELD_LENGTH),
    (dict(kernel_shape=None), MISSING),
    (dict(in_channels=None), MISSING),
    (dict(kernel_shape=[0, 3]), KERNEL),
    (dict(strides=[1, 0]), STRIDE),
    (dict(strides=[-2, 1]), STRIDE),
    (dict(pads=[1, 1, -1, 1]), PAD),
    (dict(group=[0]), GROUP),
    (dict(group=[3]), GROUP),            # 64 channels
    (dict(group=[4]), GROUP_CHANNELS),   # 16 channels per group: kernels need multiples of 32
    (dict(in_channels=[0]), IN_CHANNELS),
    (dict(pad_value=[2]), PAD_VALUE),
    (dict(pad_value=[-1]), PAD_VALUE),
])
def test_parse_rejects(lib, over, status):
    got, attrs = parse(lib, node(**over))
    assert got == status, lib.lcefr_trt_status_string(got)
    assert attrs is None
    assert lib.lcefr_trt_status_string(got).decode() not in ("ok", "unknown status")


def test_grouped_with_32_channel_groups_is_accepted(lib):
    assert attrs_of(lib, group=[2], in_channels=[64])["group"] == 2


# ---- serialization ----------------------------------------------------------------------------------


def serialize(lib, attrs):
    buf = ctypes.create_string_buffer(lib.lcefr_trt_serialization_size())
    status = lib.lcefr_trt_serialize(words(attrs), buf)
    return status, buf.raw


def deserialize(lib, data):
    out = I32x11()
    status = lib.lcefr_trt_deserialize(data, len(data), out)
    return status, (dict(zip(ATTR_ORDER, out)) if status == OK else None)


@pytest.mark.parametrize("over", [
    {}, dict(kernel_shape=[1, 1], pads=[0, 0, 0, 0], pad_value=[0]),
    dict(kernel_shape=[3, 5], strides=[2, 3], pads=[0, 1, 2, 3], group=[2], in_channels=[64]),
    dict(in_channels=[512], group=[16]),
])
def test_serialization_round_trip(lib, over):
    attrs = attrs_of(lib, **over)
    status, data = serialize(lib, attrs)
    assert status == OK
    assert len(data) == 13 * 4 == lib.lcefr_trt_serialization_size()
    assert data[:4] == b"VNCB"  # magic 0x42434e56, little-endian
    assert np.frombuffer(data, "<i4")[2:].tolist() == [attrs[k] for k in ATTR_ORDER]
    status, back = deserialize(lib, data)
    assert status == OK and back == attrs


def test_serialize_refuses_invalid_attrs(lib):
    attrs = attrs_of(lib)
    attrs["pad_value"] = 7
    assert serialize(lib, attrs)[0] == PAD_VALUE


def test_deserialize_rejects_corrupt_data(lib):
    _, good = serialize(lib, attrs_of(lib))
    words_ = np.frombuffer(good, "<i4").copy()
    bad_version = words_.copy()
    bad_version[1] = 2
    bad_attrs = words_.copy()
    bad_attrs[2 + ATTR_ORDER.index("stride_h")] = 0
    cases = [(good[:-4], SERIALIZED), (good + b"\0\0\0\0", SERIALIZED), (b"", SERIALIZED),
             (b"XXXX" + good[4:], SERIALIZED), (bad_version.tobytes(), SERIALIZED),
             (bad_attrs.tobytes(), STRIDE)]
    for data, status in cases:
        assert deserialize(lib, data) == (status, None)


# ---- output shapes ----------------------------------------------------------------------------------


def onnx_out(size, k, s, a, b):
    return (size + a + b - k) // s + 1


def output_dims(lib, attrs, nchw, out_channels):
    out = I32x4()
    status = lib.lcefr_trt_output_dims(words(attrs), I32x4(*nchw), out_channels, out)
    return status, list(out)


def kernel_geometry(lib, attrs, nchw, out_channels):
    out = (ctypes.c_int32 * 3)()
    status = lib.lcefr_trt_kernel_geometry(words(attrs), I32x4(*nchw), out_channels, out)
    return status, list(out)


@pytest.mark.parametrize("kernel, strides, pads, hw", [
    ((3, 3), (1, 1), (1, 1, 1, 1), (112, 112)),   # same, stride 1
    ((3, 3), (2, 2), (0, 0, 1, 1), (112, 112)),   # TF "same" stride 2: extra pad bottom/right
    ((3, 3), (2, 2), (1, 1, 1, 1), (56, 56)),
    ((3, 3), (1, 1), (0, 0, 0, 0), (7, 7)),       # valid
    ((1, 1), (2, 2), (0, 0, 0, 0), (15, 15)),     # 1x1 downsample, odd size
    ((5, 3), (2, 1), (2, 1, 2, 1), (9, 13)),      # rectangular kernel and strides
    ((3, 3), (3, 2), (0, 1, 2, 0), (10, 11)),     # asymmetric pads
    ((7, 7), (1, 1), (0, 0, 0, 0), (7, 7)),       # kernel == input -> 1x1
    ((4, 4), (5, 5), (0, 0, 0, 0), (8, 8)),       # stride > kernel
])
def test_output_dims(lib, kernel, strides, pads, hw):
    attrs = attrs_of(lib, kernel_shape=list(kernel), strides=list(strides), pads=list(pads))
    nchw = (2, 64, *hw)
    oh = onnx_out(hw[0], kernel[0], strides[0], pads[0], pads[2])
    ow = onnx_out(hw[1], kernel[1], strides[1], pads[1], pads[3])
    assert output_dims(lib, attrs, nchw, 96) == (OK, [2, 96, oh, ow])
    # the CUDA kernels (bconv_common.h init_params) compute the same geometry
    assert kernel_geometry(lib, attrs, nchw, 96) == (OK, [oh, ow, 2])


@pytest.mark.parametrize("kernel, pads, hw", [
    ((3, 3), (0, 0, 0, 0), (2, 5)),
    ((5, 5), (1, 1, 0, 0), (3, 8)),
    ((3, 3), (0, 0, 0, 0), (0, 8)),
])
def test_output_dims_rejects_empty_output(lib, kernel, pads, hw):
    attrs = attrs_of(lib, kernel_shape=list(kernel), pads=list(pads))
    assert output_dims(lib, attrs, (1, 64, *hw), 32)[0] == EMPTY_OUTPUT


def test_kernel_geometry_group_words(lib):
    attrs = attrs_of(lib, in_channels=[96])
    assert kernel_geometry(lib, attrs, (1, 96, 8, 8), 64) == (OK, [8, 8, 3])
    attrs = attrs_of(lib, in_channels=[128], group=[2])
    assert kernel_geometry(lib, attrs, (1, 128, 8, 8), 64) == (OK, [8, 8, 2])


# ---- input checks and workspace -----------------------------------------------------------------


@pytest.mark.parametrize("x, w, mult, bias, status", [
    ((1, 64, 16, 16), (96, 3, 3, 2), 96, 96, OK),
    ((-1, 64, -1, -1), (96, 3, 3, 2), 96, 96, OK),      # dynamic batch and size
    ((1, 32, 16, 16), (96, 3, 3, 2), 96, 96, INPUT_SHAPE),
    ((1, 64, 16, 16), (96, 1, 3, 2), 96, 96, INPUT_SHAPE),
    ((1, 64, 16, 16), (96, 3, 3, 1), 96, 96, INPUT_SHAPE),
    ((1, 64, 16, 16), (96, 3, 3, 2), 95, 96, INPUT_SHAPE),
    ((1, 64, 16, 16), (96, 3, 3, 2), 96, 1, INPUT_SHAPE),
    ((1, 64, 16, 16), (0, 3, 3, 2), 0, 0, INPUT_SHAPE),
    ((1, 64, 1, 16), (96, 3, 3, 2), 96, 96, OK),        # padded to 3 rows
])
def test_check_inputs(lib, x, w, mult, bias, status):
    attrs = attrs_of(lib)  # 3x3, pads 1, 64 channels -> 2 words per tap
    assert lib.lcefr_trt_check_inputs(words(attrs), I32x4(*x), I32x4(*w), mult, bias) == status


def test_check_inputs_group_and_empty(lib):
    grouped = attrs_of(lib, group=[2], in_channels=[64])
    assert lib.lcefr_trt_check_inputs(words(grouped), I32x4(1, 64, 8, 8), I32x4(64, 3, 3, 1), 64, 64) == OK
    assert lib.lcefr_trt_check_inputs(words(grouped), I32x4(1, 64, 8, 8), I32x4(63, 3, 3, 1), 63, 63) == INPUT_SHAPE
    valid = attrs_of(lib, pads=[0, 0, 0, 0])
    assert lib.lcefr_trt_check_inputs(words(valid), I32x4(1, 64, 2, 8), I32x4(8, 3, 3, 2), 8, 8) == EMPTY_OUTPUT


@pytest.mark.parametrize("half", [0, 1])
@pytest.mark.parametrize("nchw, o", [((1, 64, 112, 112), 64), ((8, 3, 7, 9), 32), ((2, 256, 14, 14), 512)])
def test_workspace_layout(lib, half, nchw, o):
    attrs = attrs_of(lib, in_channels=[nchw[1]])
    offsets = (ctypes.c_size_t * 3)()
    total = lib.lcefr_trt_workspace(words(attrs), I32x4(*nchw), o, half, offsets)
    n, c, h, w = nchw
    packed = n * h * w * -(-c // 32) * 4
    assert offsets[0] == 0 and total % 256 == 0
    if not half:
        assert packed <= total < packed + 256
        assert offsets[1] == offsets[2] == 0
        return
    oh, ow = onnx_out(h, 3, 1, 1, 1), onnx_out(w, 3, 1, 1, 1)
    assert offsets[1] >= packed and offsets[1] % 256 == 0
    assert offsets[2] >= offsets[1] + n * c * h * w * 4 and offsets[2] % 256 == 0
    assert offsets[2] + n * o * oh * ow * 4 <= total < offsets[2] + n * o * oh * ow * 4 + 256
