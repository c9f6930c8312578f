"""CPU reference of the CUDA binary convolution (lcefr.cuda_ref) against numpy oracles.

The accumulators must equal a numpy convolution of the +-1 tensors exactly, on every kernel path
(the CUDA-core loop and the emulated tensor-core decompositions); float outputs agree to float32
rounding.
"""
import numpy as np
import pytest

from lcefr import cuda_ref

# ---- numpy oracles ------------------------------------------------------------------------------


def np_sign(x):
    return np.where(np.asarray(x) < 0, -1, 1).astype(np.int64)


def np_pack(x_nhwc):
    """Bits of x < 0, 32 channels per little-endian int32 word, zero tail."""
    bits = (np.asarray(x_nhwc) < 0).astype(np.uint8)
    c = bits.shape[-1]
    words = (c + 31) // 32
    bits = np.concatenate([bits, np.zeros(bits.shape[:-1] + (words * 32 - c,), np.uint8)], -1)
    return np.packbits(bits, axis=-1, bitorder="little").view("<u4").view(np.int32)


def np_bconv(x, w_keras, *, strides, pads, group, pad_value, layout):
    """Integer accumulator [N,OH,OW,O] and box sum [N,OH,OW,group] of the +-1 tensors."""
    xs = np_sign(x)
    if layout == "NCHW":
        xs = xs.transpose(0, 2, 3, 1)
    ws = np_sign(w_keras)
    kh, kw, cg, o = ws.shape
    og = o // group
    top, left, bottom, right = pads
    xp = np.pad(xs, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    n, hp, wp, _ = xp.shape
    sh, sw = strides
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    acc = np.zeros((n, oh, ow, o), np.int64)
    box = np.zeros((n, oh, ow, group), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky:ky + sh * (oh - 1) + 1:sh, kx:kx + sw * (ow - 1) + 1:sw, :]
            for g in range(group):
                pg = patch[..., g * cg:(g + 1) * cg]
                acc[..., g * og:(g + 1) * og] += pg @ ws[ky, kx, :, g * og:(g + 1) * og]
                box[..., g] += pg.sum(-1)
    return acc, box


def to_layout(a_nhwc, layout):
    return a_nhwc if layout == "NHWC" else a_nhwc.transpose(0, 3, 1, 2)


# ---- the shape table ----------------------------------------------------------------------------

CASES = cuda_ref.REFERENCE_CASES
_case_id = cuda_ref.case_id
_make = cuda_ref.case_inputs


def _kwargs(case):
    _, c, _, _, _, k, s, pads, group, pad_value, layout = case
    return dict(in_channels=c, kernel_shape=k, strides=s, pads=pads, group=group,
                pad_value=pad_value, layout=layout)


def test_table_is_large_enough():
    assert len(CASES) >= 50
    assert len({_case_id(c) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("path", ["popc", "bmma_xor", "bmma_and"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_accumulator_equals_numpy(case, path):
    x, w_keras = _make(case)
    kw = _kwargs(case)
    acc = cuda_ref.bconv2d(x, cuda_ref.pack_weights(w_keras), return_acc=True, path=path, **kw)
    ref, _ = np_bconv(x, w_keras, strides=kw["strides"], pads=kw["pads"], group=kw["group"],
                      pad_value=kw["pad_value"], layout=kw["layout"])
    assert acc.dtype == np.int32
    np.testing.assert_array_equal(acc, to_layout(ref, kw["layout"]))


@pytest.mark.parametrize("adabin", [False, True], ids=["bn", "bn+adabin"])
@pytest.mark.parametrize("case", CASES[::2], ids=_case_id)
def test_fused_output_equals_numpy(case, adabin):
    x, w_keras = _make(case, seed=1)
    kw = _kwargs(case)
    o, group = w_keras.shape[-1], kw["group"]
    rng = np.random.default_rng(5)
    mult = rng.uniform(-2, 2, o).astype(np.float32)
    bias = rng.uniform(-50, 50, o).astype(np.float32)
    scale = rng.uniform(-1, 1, o).astype(np.float32) if adabin else None
    out = cuda_ref.bconv2d(x, cuda_ref.pack_weights(w_keras), multiplier=mult, bias=bias,
                           adabin_scale=scale, **kw)
    acc, box = np_bconv(x, w_keras, strides=kw["strides"], pads=kw["pads"], group=group,
                        pad_value=kw["pad_value"], layout=kw["layout"])
    box_o = np.repeat(box, o // group, axis=-1)
    terms = [mult.astype(np.float64) * acc, np.broadcast_to(bias.astype(np.float64), acc.shape)]
    if adabin:
        terms.append(scale.astype(np.float64) * box_o)
    ref = to_layout(sum(terms), kw["layout"])
    size = to_layout(sum(np.abs(t) for t in terms), kw["layout"])
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_array_less(np.abs(out - ref), 1e-6 * size + 1e-30)


@pytest.mark.parametrize("case", CASES[1::3], ids=_case_id)
def test_packed_output_is_sign_of_output(case):
    x, w_keras = _make(case, seed=2)
    kw = _kwargs(case)
    o = w_keras.shape[-1]
    bias = np.linspace(-3, 3, o).astype(np.float32)
    wp = cuda_ref.pack_weights(w_keras)
    out = cuda_ref.bconv2d(x, wp, bias=bias, **kw)
    packed = cuda_ref.bconv2d(x, wp, bias=bias, return_packed=True, **kw)
    out_nhwc = out if kw["layout"] == "NHWC" else out.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(packed, np_pack(out_nhwc))


def test_adabin_parameterisation_matches_real_valued_conv():
    """EffBin eq. 9: multiplier/adabin_scale/bias reproduce a real-valued AdaBin conv + BN."""
    rng = np.random.default_rng(3)
    n, c, h, w, o = 2, 40, 6, 5, 12
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, c, o)) * 0.1 + rng.uniform(-0.05, 0.05, o)).astype(np.float32)
    beta_w = kernel.mean(axis=(0, 1, 2))
    alpha_w = kernel.std(axis=(0, 1, 2))
    s_w = np_sign(kernel - beta_w)
    w_b = alpha_w * s_w + beta_w
    bn_scale, bn_shift = rng.uniform(0.5, 2, o), rng.uniform(-1, 1, o)
    wp = cuda_ref.pack_weights(kernel - beta_w)
    for pad_value, alpha_a, beta_a in [(1, 1.3, 0.2), (0, 0.7, 0.0), (1, 1.0, 0.0)]:
        # real-valued layer: padded activations are alpha_a + beta_a (one-padding) or beta_a
        a_b = alpha_a * np_sign(x).transpose(0, 2, 3, 1) + beta_a
        fill = alpha_a + beta_a if pad_value else beta_a
        a_p = np.pad(a_b, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=fill)
        real = np.zeros((n, h, w, o))
        for ky in range(3):
            for kx in range(3):
                real += a_p[:, ky:ky + h, kx:kx + w, :] @ w_b[ky, kx]
        real = bn_scale * real + bn_shift
        g = beta_a * (alpha_w * s_w.sum(axis=(0, 1, 2)) + beta_w * 9 * c)
        layout = "NHWC" if pad_value else "NCHW"
        x_in = x.transpose(0, 2, 3, 1) if pad_value else x
        out = cuda_ref.bconv2d(
            x_in, wp, in_channels=c, kernel_shape=(3, 3), pads=(1, 1, 1, 1), pad_value=pad_value,
            multiplier=bn_scale * alpha_a * alpha_w, adabin_scale=bn_scale * alpha_a * beta_w,
            bias=bn_scale * g + bn_shift, layout=layout,
        )
        out = out if pad_value else out.transpose(0, 2, 3, 1)
        np.testing.assert_allclose(out, real, rtol=1e-4, atol=1e-4)


# ---- packing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 3, 31, 32, 33, 63, 64, 96, 100])
def test_pack_activations_layouts_round_trip_and_tail(c):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, 3, 4, c)).astype(np.float32)
    x[0, 0, 0, :] = 0.0
    x[0, 0, 1, :] = -0.0
    packed = cuda_ref.pack_activations(x, layout="NHWC")
    assert packed.shape == (2, 3, 4, (c + 31) // 32) and packed.dtype == np.int32
    np.testing.assert_array_equal(packed, np_pack(x))
    np.testing.assert_array_equal(cuda_ref.pack_activations(x.transpose(0, 3, 1, 2), "NCHW"), packed)
    np.testing.assert_array_equal(cuda_ref.unpack_bits(packed, c), np_sign(x))
    assert not packed[0, 0, :2].any()  # 0.0 and -0.0 are +1
    if c % 32:
        tail = packed[..., -1].view(np.uint32) >> np.uint32(c % 32)
        assert not tail.any()


def test_pack_all_negative_sets_exactly_the_valid_bits():
    packed = cuda_ref.pack_activations(-np.ones((1, 1, 1, 33), np.float32))
    assert packed.view(np.uint32).tolist() == [[[[0xFFFFFFFF, 0x1]]]]


@pytest.mark.parametrize("shape", [(3, 3, 33, 5), (1, 1, 64, 7), (5, 5, 3, 2), (1, 3, 96, 1)])
def test_pack_weights_round_trip(shape):
    w = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    packed = cuda_ref.pack_weights(w)
    kh, kw, cg, o = shape
    assert packed.shape == (o, kh, kw, (cg + 31) // 32)
    np.testing.assert_array_equal(packed, np_pack(w.transpose(3, 0, 1, 2)))
    np.testing.assert_array_equal(cuda_ref.unpack_bits(packed, cg).transpose(1, 2, 3, 0), np_sign(w))


def test_output_shape_matches_bconv2d():
    x = np.ones((2, 33, 9, 8), np.float32)
    wp = cuda_ref.pack_weights(np.ones((3, 3, 33, 4), np.float32))
    kw = dict(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 0, 2, 1))
    out = cuda_ref.bconv2d(x, wp, in_channels=33, **kw)
    assert out.shape == cuda_ref.output_shape(x.shape, out_channels=4, **kw) == (2, 4, 5, 4)


# ---- path selection -----------------------------------------------------------------------------


@pytest.mark.parametrize("cc,group,out_c,requested,expected", [
    ((5, 3), 1, 64, "auto", "popc"),      # Jetson Nano
    ((7, 2), 1, 64, "auto", "popc"),      # Xavier: no b1 tensor cores
    ((7, 5), 1, 64, "auto", "bmma_xor"),
    ((8, 7), 1, 64, "auto", "bmma_and"),  # Orin
    ((9, 0), 1, 64, "auto", "bmma_and"),  # Hopper emulates XOR with two ANDs
    ((8, 6), 4, 64, "auto", "popc"),      # 16 output channels per group: tiles would straddle groups
    ((8, 6), 2, 64, "auto", "bmma_and"),
    ((7, 5), 1, 64, "bmma_and", None),
    ((5, 3), 1, 64, "bmma_xor", None),
    ((5, 3), 1, 64, "popc", "popc"),
])
def test_select_path(cc, group, out_c, requested, expected):
    got = cuda_ref.select_path(cc=cc, in_channels=128, out_channels=out_c, group=group,
                               requested=requested)
    assert got == expected


# ---- argument errors ----------------------------------------------------------------------------


def _bad(**over):
    x = np.ones((1, 64, 5, 5), np.float32)
    wp = cuda_ref.pack_weights(np.ones((3, 3, 32, 8), np.float32))
    kw = dict(in_channels=64, kernel_shape=(3, 3), group=2)
    kw.update(over)
    x = kw.pop("x", x)
    wp = kw.pop("w", wp)
    return lambda: cuda_ref.bconv2d(x, wp, **kw)


@pytest.mark.parametrize("over,match", [
    (dict(x=np.ones((1, 48, 5, 5), np.float32), in_channels=48,
          w=np.zeros((8, 3, 3, 1), np.int32)), r"multiple of 32 when group > 1.*24 per group"),
    (dict(w=np.zeros((8, 3, 3, 2), np.int32)), r"w_packed must have shape \(O, 3, 3, 1\).*\(8, 3, 3, 2\)"),
    (dict(w=np.zeros((8, 3, 3), np.int32)), r"w_packed must have shape"),
    (dict(w=np.zeros((8, 3, 3, 1), np.float32)), r"w_packed must be int32"),
    (dict(in_channels=32, group=1), r"in_channels=32 but x \(NCHW\) has 64"),
    (dict(w=np.zeros((7, 3, 3, 1), np.int32)), r"output channels 7 not divisible by group=2"),
    (dict(group=3), r"not divisible by group=3"),
    (dict(pad_value=2), r"pad_value must be 1 .* or 0"),
    (dict(pads=(1, 1, 1)), r"pads must be four"),
    (dict(pads=(-1, 0, 0, 0)), r"pads must be four non-negative"),
    (dict(strides=(0, 1)), r"strides must be two positive"),
    (dict(layout="CHWN"), r"layout must be 'NHWC' or 'NCHW'"),
    (dict(multiplier=np.ones(4)), r"multiplier must have shape \(8,\)"),
    (dict(x=np.ones((1, 64, 1, 1), np.float32)), r"kernel 3x3 larger than the padded 1x1"),
    (dict(x=np.ones((64, 5, 5), np.float32)), r"4-D NCHW input"),
    (dict(path="wmma"), r"path must be one of"),
])
def test_bad_arguments_raise_value_error(over, match):
    with pytest.raises(ValueError, match=match):
        _bad(**over)()


def test_library_builds_and_reports_abi():
    assert cuda_ref.library_path().exists() or cuda_ref.build_library()
    assert cuda_ref._load().lcefr_ref_abi_version() == 1


def test_build_without_compiler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("LCEFR_BCONV_REF_LIB", raising=False)
    monkeypatch.setattr(cuda_ref, "_DEFAULT_LIB", tmp_path / "liblcefr_bconv_ref.so")
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler.*CXX=no-such-compiler"):
        cuda_ref.build_library()
