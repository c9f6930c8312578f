"""converters/torch_iresnet.py: PyTorch IResNet checkpoints (insightface, AdaFace) -> lcefr ir18/ir50.

The PyTorch networks below are written here from the two layouts' published structure (see the
converter's docstring), filled with random weights and random BN statistics, saved as state
dicts, converted, and compared on the same faces.
"""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from lcefr.preprocess import preprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "converters", "torch_iresnet.py")
DEPTHS = {"r18": (2, 2, 2, 2), "r50": (3, 4, 14, 3)}
WIDTHS = (64, 128, 256, 512)


def _load_converter():
    spec = importlib.util.spec_from_file_location("lcefr_converters_torch_iresnet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


conv = _load_converter()

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - depends on the [torch] extra
    torch = nn = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (pip install -e '.[torch]')")


if torch is not None:

    def _conv3(cin, cout, stride=1):
        return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)

    class InsightfaceBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
            self.conv1 = _conv3(cin, cout)
            self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
            self.prelu = nn.PReLU(cout)
            self.conv2 = _conv3(cout, cout, stride)
            self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
            return y + (x if self.downsample is None else self.downsample(x))

    class InsightfaceIResNet(nn.Module):
        def __init__(self, depths, embedding_size=512):
            super().__init__()
            self.conv1 = _conv3(3, 64)
            self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
            self.prelu = nn.PReLU(64)
            cin = 64
            for stage, (depth, width) in enumerate(zip(depths, WIDTHS), start=1):
                blocks = [InsightfaceBlock(cin if i == 0 else width, width, 2 if i == 0 else 1) for i in range(depth)]
                setattr(self, f"layer{stage}", nn.Sequential(*blocks))
                cin = width
            self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
            self.dropout = nn.Dropout(0.0)
            self.fc = nn.Linear(512 * 7 * 7, embedding_size)
            self.features = nn.BatchNorm1d(embedding_size, eps=1e-5)

        def forward(self, x):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = self.dropout(torch.flatten(self.bn2(x), 1))
            return self.features(self.fc(x))

    class AdafaceBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            if cin == cout:
                self.shortcut_layer = nn.MaxPool2d(1, stride)
            else:
                self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            self.res_layer = nn.Sequential(
                nn.BatchNorm2d(cin),
                _conv3(cin, cout),
                nn.BatchNorm2d(cout),
                nn.PReLU(cout),
                _conv3(cout, cout, stride),
                nn.BatchNorm2d(cout),
            )

        def forward(self, x):
            return self.res_layer(x) + self.shortcut_layer(x)

    class AdafaceIResNet(nn.Module):
        """Returns the raw embedding (AdaFace's ``forward`` returns it normalised, plus its norm)."""

        def __init__(self, depths):
            super().__init__()
            self.input_layer = nn.Sequential(_conv3(3, 64), nn.BatchNorm2d(64), nn.PReLU(64))
            blocks, cin = [], 64
            for depth, width in zip(depths, WIDTHS):
                for i in range(depth):
                    blocks.append(AdafaceBlock(cin, width, 2 if i == 0 else 1))
                    cin = width
            self.body = nn.Sequential(*blocks)
            self.output_layer = nn.Sequential(
                nn.BatchNorm2d(512),
                nn.Dropout(0.4),
                nn.Flatten(),
                nn.Linear(512 * 7 * 7, 512),
                nn.BatchNorm1d(512, affine=False),
            )

        def forward(self, x):
            return self.output_layer(self.body(self.input_layer(x)))

    def _randomize(net, seed):
        """Random weights and BN statistics, so that every mapped tensor matters."""
        g = torch.Generator().manual_seed(seed)

        def uniform(t, lo, hi):
            t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)

        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    fan_in = m.weight[0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / fan_in) ** 0.5)
                    if m.bias is not None:
                        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    if m.affine:
                        uniform(m.weight, 0.5, 1.5)
                        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
                    m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                    uniform(m.running_var, 0.5, 2.0)
                    m.num_batches_tracked.fill_(7)
                elif isinstance(m, nn.PReLU):
                    uniform(m.weight, 0.0, 0.5)
        return net.eval()


def _faces(n=2, seed=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)


def _torch_embeddings(net, rgb, *, bgr):
    x = ((rgb.astype(np.float32) / 255.0) - 0.5) / 0.5
    if bgr:
        x = x[..., ::-1]
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()


def _checkpoint(tmp_path, arch, layout):
    """A saved checkpoint in the layout's usual wrapping and the network it came from."""
    if layout == "insightface":
        net = _randomize(InsightfaceIResNet(DEPTHS[arch]), seed=11)
        with torch.no_grad():
            net.features.weight.copy_(torch.linspace(-1.5, 1.5, 512))  # arcface_torch keeps it at 1: fold test
        state = net.state_dict()
        if arch == "r50":
            state = {f"module.{k}": v for k, v in state.items()}  # saved from DistributedDataParallel
    else:
        net = _randomize(AdafaceIResNet(DEPTHS[arch]), seed=12)
        model_state = {f"model.{k}": v for k, v in net.state_dict().items()}
        head = {
            "head.kernel": torch.randn(512, 10),
            "head.t": torch.zeros(1),
            "head.batch_mean": torch.ones(1) * 20,
            "head.batch_std": torch.ones(1) * 100,
        }
        state = {"state_dict": {**model_state, **head}, "epoch": 3}
    path = tmp_path / f"{arch}_{layout}.pth"
    torch.save(state, path)
    return net, path


def _compare(net, keras_model, layout):
    rgb = _faces()
    ref = _torch_embeddings(net, rgb, bgr=layout == "adaface")
    got = keras_model(preprocess(rgb), training=False).numpy()
    assert got.shape == ref.shape
    cos = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() >= 0.9999, cos
    assert np.max(np.abs(got - ref)) <= 1e-3 * np.max(np.abs(ref)), np.max(np.abs(got - ref))


def _convert_and_compare(tmp_path, arch, layout, *, subprocess_cli=False):
    import tensorflow as tf

    net, ckpt = _checkpoint(tmp_path, arch, layout)
    out = tmp_path / "teacher.keras"
    args = [str(ckpt), "--arch", arch, "--layout", layout, "-o", str(out)]
    if subprocess_cli:
        run = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stderr
        stdout = run.stdout
    else:
        assert conv.main(args) == 0
        stdout = ""
    assert out.exists() and not [p for p in os.listdir(tmp_path) if ".tmp" in p]
    model = tf.keras.models.load_model(out, compile=False)
    _compare(net, model, layout)
    return stdout


@pytest.mark.slow
@needs_torch
@pytest.mark.parametrize("layout", ["insightface", "adaface"])
def test_r18_matches_torch(tmp_path, layout):
    stdout = _convert_and_compare(tmp_path, "r18", layout, subprocess_cli=layout == "adaface")
    if layout == "adaface":
        assert "BGR" in stdout and "head.kernel" in stdout and "saved" in stdout


@needs_torch
@pytest.mark.slow
@pytest.mark.parametrize("layout", ["insightface", "adaface"])
def test_r50_matches_torch(tmp_path, layout):
    _convert_and_compare(tmp_path, "r50", layout)


def _numpy_state(arch, layout, seed=0):
    rng = np.random.default_rng(seed)
    return {
        slot.key(role): rng.standard_normal(shape).astype(np.float32)
        for slot in conv.plan(arch, layout)
        for role, shape in slot.shapes.items()
    }


@pytest.mark.parametrize("layout", ["insightface", "adaface"])
def test_plan_counts(layout):
    slots = conv.plan("r18", layout)
    assert sum(s.kind in ("conv", "identity_conv") for s in slots) == 1 + 8 * 2 + 4
    assert [s.kind for s in slots[-3:]] == ["bn", "dense", "bn_out"]
    assert slots[0].flip_input == (layout == "adaface")
    identity = [s for s in slots if s.kind.startswith("identity")]
    assert len(identity) == (2 if layout == "adaface" else 0)


def test_missing_tensor_named():
    state = _numpy_state("r18", "insightface")
    del state["layer2.1.prelu.weight"]
    with pytest.raises(conv.CheckpointError, match=r"'layer2\.1\.prelu\.weight'"):
        conv.convert_state_dict(state, "r18", "insightface")


def test_shape_mismatch_named():
    state = _numpy_state("r18", "adaface")
    state["body.3.res_layer.1.weight"] = np.zeros((128, 128, 3, 1), np.float32)
    with pytest.raises(conv.CheckpointError, match=r"'body\.3\.res_layer\.1\.weight' has shape \(128, 128, 3, 1\)"):
        conv.convert_state_dict(state, "r18", "adaface")


def test_deeper_checkpoint_is_wrong_arch():
    state = _numpy_state("r50", "insightface")
    with pytest.raises(conv.CheckpointError, match=r"deeper network than r18"):
        conv.convert_state_dict(state, "r18", "insightface")
    with pytest.raises(conv.CheckpointError, match=r"lacks tensor 'layer1\.2\.bn1\.weight'"):
        conv.convert_state_dict(_numpy_state("r18", "insightface"), "r50", "insightface")


def test_wrong_layout_hint():
    with pytest.raises(conv.CheckpointError, match="look like the adaface layout"):
        conv.convert_state_dict(_numpy_state("r18", "adaface"), "r18", "insightface")


def test_fold_embedding_scale():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    kernel, bias = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    gamma, beta = np.array([1.0, -0.5, 2.0, 0.0], np.float32), rng.standard_normal(4).astype(np.float32)
    mean, var = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    z = x @ kernel + bias
    want = (z - mean) / np.sqrt(var + conv.BN_EPS) * gamma + beta
    k2, b2, m2, v2 = conv._fold_embedding_scale(kernel, bias, gamma, mean, var)
    got = ((x @ k2 + b2) - m2) / np.sqrt(v2 + conv.BN_EPS) + beta
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _run_cli(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["missing", "garbage", "arch", "output"])
def test_bad_input_exit_2(tmp_path, case):
    if case == "garbage" and torch is None:
        pytest.skip("torch is not installed")
    ckpt, arch, out = tmp_path / "x.pth", "r18", tmp_path / "out.keras"
    if case == "garbage":
        ckpt.write_bytes(b"this is not a checkpoint\n" * 10)
    elif case == "arch":
        ckpt.write_bytes(b"")
        arch = "r100"
    elif case == "output":
        ckpt.write_bytes(b"")
        out = tmp_path / "out.h5"
    run = _run_cli(ckpt, "--arch", arch, "--layout", "insightface", "-o", out)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [ckpt] if p.exists())
