#!/usr/bin/env python3
"""Single-layer microbenchmark on a board: the BinaryConv2d plugin vs TensorRT's own convolution
(``make jetson-microbench JETSON=user@host`` or ``python -m lcefr.trt.microbench``; runs on the workstation, times on the board over SSH).

For the layer shapes of seed 000 (EffBin, Roy et al. 2025), Fig. 4-7, it writes two ONNX graphs
per shape, ``<case>.bconv.onnx`` (one ``BinaryConv2d`` node, the plugin's contract, empty domain)
and ``<case>.conv.onnx`` (one standard float ``Conv`` of the same shape), copies them to the board,
builds the plugin there (:mod:`lcefr.board.trt`) and times them with ``trtexec``:
``plugin-fp32`` / ``plugin-fp16`` on the binary graph, ``conv-fp32`` / ``conv-fp16`` / ``conv-int8``
on the float one (INT8 with trtexec's dummy dynamic ranges: timing only). Reports:
``reports/jetson-microbench-<host>-<UTC>.{json,md}``.

Which shapes the paper gives. The text (Section IV-C/D) names the network, not the tensors: a
ResNet-18 "with modifications as in [7]" (ArcFace's IResNet-18, 112x112 faces). So the per-layer
shapes are those of IResNet-18's 21 convolutions, numbered in creation order (stem; per block
conv3x3 s1, conv3x3 with the stage stride, then the 1x1 shortcut; stages 64/128/256/512 each
starting with stride 2), PyTorch padding (1 on every side for 3x3):

- Fig. 4: every layer; the batch is not stated (default here 1, ``--fig4-batch``).
- Fig. 5: "the 18th conv layer" (512->512, 3x3, stride 2, 14x14 input), batch varied; the text
  mentions <= 256 and 1024, the exact x values are not given: 1, 4, 16, 64, 256, 512, 1024 here.
- Fig. 6: every layer at batch 512.
- Fig. 7: "the 3rd convolution layer" (64->64, 3x3, stride 2) at batch 512 on NxN maps; the text
  mentions powers of two, 128 and 224: N = 16, 32, 64, 128, 224 here.

Shapes whose float32 input + output exceed ``--max-mb`` (default 768 MB; a Nano has 4 GB shared by
CPU and GPU, and trtexec holds host and device copies) are listed as skipped, not run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from lcefr.board.ssh import SSHTarget
from lcefr.board.trt import TrtJob, TrtOptions, run_jobs
from lcefr.convert.onnx_binary import IR_VERSION, OPSET, pack_weights
from lcefr.convert.ort import OP_TYPE
from lcefr.fileio import write_atomic
from lcefr.trt.shapes import IR18_CONVS, ConvLayer

__all__ = ["Case", "cases", "binary_graph", "conv_graph", "reference_bconv",
           "write_graphs", "jobs_for", "MODES", "main"]

#: mode -> (graph, trtexec flags)
MODES = {
    "plugin-fp32": ("bconv", ()),
    "plugin-fp16": ("bconv", ("--fp16",)),
    "conv-fp32": ("conv", ()),
    "conv-fp16": ("conv", ("--fp16",)),
    "conv-int8": ("conv", ("--int8",)),
}
DEFAULT_MODES = ("plugin-fp32", "plugin-fp16", "conv-fp32", "conv-fp16", "conv-int8")
FIG5_BATCHES = (1, 4, 16, 64, 256, 512, 1024)
FIG7_SIZES = (16, 32, 64, 128, 224)
FIG5_LAYER = 18
FIG7_LAYER = 3


@dataclass
class Case:
    layer: ConvLayer
    batch: int
    size: int
    figures: List[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"l{self.layer.index:02d}_b{self.batch}_h{self.size}"

    @property
    def out_size(self) -> int:
        return (self.size + 2 * self.layer.pad - self.layer.kernel) // self.layer.stride + 1

    @property
    def tensor_mb(self) -> float:
        """float32 input + output, MB."""
        n = self.batch * (self.layer.cin * self.size ** 2 + self.layer.cout * self.out_size ** 2)
        return 4.0 * n / 2 ** 20

    def shape(self) -> Dict:
        return {"batch": self.batch, "in_channels": self.layer.cin, "size": self.size, "out_channels": self.layer.cout,
                "kernel": self.layer.kernel, "stride": self.layer.stride, "pad": self.layer.pad, "out_size": self.out_size}


def cases(figures: Sequence[str] = ("4", "5", "6", "7"), *, fig4_batch: int = 1, max_mb: float = 768.0,
          fig5_batches: Sequence[int] = FIG5_BATCHES, fig7_sizes: Sequence[int] = FIG7_SIZES) -> Tuple[List[Case], List[Case]]:
    """``(run, skipped)``: the distinct (layer, batch, size) cases of the figures, each listing the
    figures it belongs to; ``skipped`` are those above ``max_mb``."""
    unknown = set(figures) - {"4", "5", "6", "7"}
    if unknown:
        raise ValueError(f"figures are 4, 5, 6, 7; got {sorted(unknown)}")
    wanted: List[Tuple[str, ConvLayer, int, int]] = []
    by_index = {layer.index: layer for layer in IR18_CONVS}
    if "4" in figures:
        wanted += [("4", layer, fig4_batch, layer.size) for layer in IR18_CONVS]
    if "5" in figures:
        wanted += [("5", by_index[FIG5_LAYER], b, by_index[FIG5_LAYER].size) for b in fig5_batches]
    if "6" in figures:
        wanted += [("6", layer, 512, layer.size) for layer in IR18_CONVS]
    if "7" in figures:
        wanted += [("7", by_index[FIG7_LAYER], 512, n) for n in fig7_sizes]
    found: Dict[Tuple[int, int, int], Case] = {}
    for figure, layer, batch, size in wanted:
        case = found.setdefault((layer.index, batch, size), Case(layer, batch, size))
        if f"Fig. {figure}" not in case.figures:
            case.figures.append(f"Fig. {figure}")
    run = [c for c in found.values() if c.tensor_mb <= max_mb]
    skipped = [c for c in found.values() if c.tensor_mb > max_mb]
    return run, skipped


def _weights(case: Case, seed: int):
    rng = np.random.default_rng(seed + 1000 * case.layer.index)
    k, cin, cout = case.layer.kernel, case.layer.cin, case.layer.cout
    signs = np.where(rng.random((k, k, cin, cout)) < 0.5, -1.0, 1.0).astype(np.float32)  # Keras [KH, KW, C, O]
    multiplier = rng.uniform(0.5, 1.5, cout).astype(np.float32)
    bias = rng.normal(0, 1, cout).astype(np.float32)
    return signs, multiplier, bias


def _model(node, inits, case: Case):
    from onnx import TensorProto, helper


    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [case.batch, case.layer.cin, case.size, case.size])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [case.batch, case.layer.cout, case.out_size, case.out_size])
    graph = helper.make_graph([node], case.name, [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lcefr-microbench")
    model.ir_version = IR_VERSION
    return model


def binary_graph(case: Case, *, seed: int = 0) -> bytes:
    """ONNX with one ``BinaryConv2d`` node (empty domain, as TensorRT's parser wants), zero padding."""
    from onnx import helper, numpy_helper


    signs, multiplier, bias = _weights(case, seed)
    p, k, s = case.layer.pad, case.layer.kernel, case.layer.stride
    inits = [numpy_helper.from_array(pack_weights(signs), "w_packed"), numpy_helper.from_array(multiplier, "multiplier"),
             numpy_helper.from_array(bias, "bias")]
    node = helper.make_node(OP_TYPE, ["x", "w_packed", "multiplier", "bias"], ["y"], name=f"{case.name}/{OP_TYPE}",
                            domain="", kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], group=1,
                            in_channels=case.layer.cin, pad_value=0)
    return _model(node, inits, case).SerializeToString()


def conv_graph(case: Case, *, seed: int = 0) -> bytes:
    """ONNX with one float ``Conv`` of the same shape (kernel = the binary kernel's signs x multiplier)."""
    from onnx import helper, numpy_helper

    signs, multiplier, bias = _weights(case, seed)
    p, k, s = case.layer.pad, case.layer.kernel, case.layer.stride
    w = (np.transpose(signs, (3, 2, 0, 1)) * multiplier[:, None, None, None]).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")]
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name=f"{case.name}/Conv", kernel_shape=[k, k],
                            strides=[s, s], pads=[p, p, p, p], group=1)
    return _model(node, inits, case).SerializeToString()


def reference_bconv(x: np.ndarray, case: Case, *, seed: int = 0) -> np.ndarray:
    """numpy oracle of :func:`binary_graph`: ``multiplier * conv(sign(x), signs) + bias``, sign(0) = +1,
    padded taps 0."""
    signs, multiplier, bias = _weights(case, seed)
    p, k, s = case.layer.pad, case.layer.kernel, case.layer.stride
    xb = np.where(x < 0, -1.0, 1.0)
    xb = np.pad(xb, ((0, 0), (0, 0), (p, p), (p, p)))
    n, oh = x.shape[0], case.out_size
    out = np.zeros((n, case.layer.cout, oh, oh))
    w = np.transpose(signs, (3, 2, 0, 1)).astype(np.float64)  # [O, C, KH, KW]
    for i in range(k):
        for j in range(k):
            patch = xb[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (oh - 1) + 1:s]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return (out * multiplier[None, :, None, None] + bias[None, :, None, None]).astype(np.float32)


def write_graphs(run: Sequence[Case], out_dir: str, modes: Sequence[str], *, seed: int = 0) -> Dict[Tuple[str, str], str]:
    """``{(case name, "bconv"|"conv"): path}`` for the graphs ``modes`` need."""
    os.makedirs(out_dir, exist_ok=True)
    kinds = sorted({MODES[m][0] for m in modes})
    paths = {}
    for case in run:
        for kind in kinds:
            path = os.path.join(out_dir, f"{case.name}.{kind}.onnx")
            with open(path, "wb") as f:
                f.write(binary_graph(case, seed=seed) if kind == "bconv" else conv_graph(case, seed=seed))
            paths[(case.name, kind)] = path
    return paths


def jobs_for(run: Sequence[Case], paths: Dict[Tuple[str, str], str], modes: Sequence[str]):
    jobs = []
    for case in run:
        for mode in modes:
            kind, flags = MODES[mode]
            jobs.append(TrtJob(f"{case.name}.{kind}", paths[(case.name, kind)], mode, tuple(flags), kind == "bconv",
                               batch=case.batch, extra={"case": case.name, "layer": case.layer.index,
                                                        "figures": list(case.figures), "shape": case.shape()}))
    return jobs


# ---------------------------------------------------------------- reports


def _md(report: Dict) -> str:
    facts = report.get("tensorrt") or {}
    lines = [f"# BinaryConv2d plugin vs TensorRT convolution on {report['host']}", "",
             f"Started {report['started_utc']}; {facts.get('board') or facts.get('gpu') or 'unknown board'}, "
             f"sm {facts.get('sm') or '?'}, TensorRT {facts.get('tensorrt') or '?'}, CUDA {facts.get('nvcc_version') or '?'}. "
             "GPU compute time per inference of one layer (trtexec median, ms).", ""]
    modes = report["modes"]
    head = ["case", "figures", "N x C x H -> O, k/s"] + modes
    if "plugin-fp32" in modes:
        head += [f"plugin-fp32 speed-up vs {m}" for m in modes if m.startswith("conv-")]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_case: Dict[str, Dict[str, Dict]] = {}
    for row in report["results"]:
        by_case.setdefault(row["case"], {})[row["kernel"]] = row

    def ms(row):
        if row is None:
            return "-"
        if row["status"] != "ok":
            return f"failed: {row['error']}"
        return f"{row['latency_ms']['median']:.3f}"

    for case in report["cases"]:
        rows = by_case.get(case["name"], {})
        sh = case["shape"]
        cells = [f"`{case['name']}`", ", ".join(case["figures"]),
                 f"{sh['batch']}x{sh['in_channels']}x{sh['size']} -> {sh['out_channels']}, {sh['kernel']}/{sh['stride']}"]
        cells += [ms(rows.get(m)) for m in modes]
        if "plugin-fp32" in modes:
            base = rows.get("plugin-fp32")
            for m in [m for m in modes if m.startswith("conv-")]:
                other = rows.get(m)
                ok = base and other and base["status"] == other["status"] == "ok" and base["latency_ms"]["median"]
                cells.append(f"{other['latency_ms']['median'] / base['latency_ms']['median']:.2f}x" if ok else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if report["skipped"]:
        lines += ["", f"Skipped (float32 input + output above {report['max_mb']:.0f} MB): "
                  + ", ".join(f"`{c['name']}` ({c['tensor_mb']:.0f} MB, {', '.join(c['figures'])})" for c in report["skipped"]) + "."]
    lines += ["", "Shapes: IResNet-18 convolutions (seed 000 uses ResNet-18 as in ArcFace [7]); the paper's own numbers "
              "(PyTorch on its GPU, Fig. 4: ~1e-3 s binary vs ~2 s float per layer; Fig. 5: ~0.5 s at batch 1024) are not "
              "comparable one to one. conv-int8 uses trtexec's dummy dynamic ranges (timing only); GPUs without fast INT8 "
              "(the Nano's sm_53) may fall back to FP32/FP16 kernels.", ""]
    return "\n".join(lines)


def write_report(report: Dict, out_dir: str, label: str, stamp: str) -> Dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"jetson-microbench-{label}-{stamp}")
    write_atomic(f"{base}.json", (json.dumps(report, indent=2) + "\n").encode())
    write_atomic(f"{base}.md", _md(report).encode())
    return {"json": f"{base}.json", "md": f"{base}.md"}


def _case_dict(case: Case) -> Dict:
    return {"name": case.name, "layer": asdict(case.layer), "figures": case.figures, "shape": case.shape(),
            "tensor_mb": round(case.tensor_mb, 1)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--remote", action="append", default=[], metavar="USER@HOST", help="board (repeatable, or space-separated)")
    parser.add_argument("--port", type=int, default=22)
    parser.add_argument("--key", help="SSH private key")
    parser.add_argument("--known-hosts", help="known_hosts file (default: ssh's own)")
    parser.add_argument("--reports", default="reports", help="report folder (default: reports)")
    parser.add_argument("--figures", default="4,5,6,7", help="which of seed 000's Fig. 4-7 (default: 4,5,6,7)")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--fig4-batch", type=int, default=1, help="batch of the Fig. 4 per-layer cases (default 1)")
    parser.add_argument("--max-mb", type=float, default=768.0, help="skip cases whose float32 input + output exceed this")
    parser.add_argument("--iterations", type=int, default=50, help="trtexec --iterations (default 50)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per trtexec run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--onnx-dir", help="keep the generated graphs here (default: a temporary folder)")
    parser.add_argument("--dry-run", action="store_true", help="write the graphs, print the cases, contact no board")
    args = parser.parse_args(argv)

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        parser.error(f"unknown modes {bad}; known: {', '.join(MODES)}")
    try:
        run, skipped = cases([f.strip() for f in args.figures.split(",") if f.strip()], fig4_batch=args.fig4_batch, max_mb=args.max_mb)
    except ValueError as err:
        parser.error(str(err))
    hosts = [h for spec in args.remote for h in spec.split()]
    if not hosts and not args.dry_run:
        parser.error("give --remote USER@HOST (or --dry-run)")
    tmp = None if args.onnx_dir else tempfile.TemporaryDirectory(prefix="lcefr-microbench-")
    onnx_dir = args.onnx_dir or tmp.name
    try:
        paths = write_graphs(run, onnx_dir, modes, seed=args.seed)
        print(f"{len(run)} cases x {len(modes)} modes, {len(skipped)} skipped (> {args.max_mb:.0f} MB); graphs in {onnx_dir}", file=sys.stderr)
        if args.dry_run:
            for case in run:
                print(f"  {case.name}: {', '.join(case.figures)}, {case.tensor_mb:.1f} MB")
            return 0
        return _bench(hosts, args, run, skipped, modes, paths)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _bench(hosts, args, run, skipped, modes, paths) -> int:
    options = TrtOptions(iterations=args.iterations, warmup_ms=200, timeout=args.timeout)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    jobs = jobs_for(run, paths, modes)

    def one(host: str) -> Tuple[Dict, Dict[str, str]]:
        target = SSHTarget(host, port=args.port, key=args.key, known_hosts=args.known_hosts)
        started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows, facts = run_jobs(target, jobs, options, progress=lambda m: print(f"  {m}", file=sys.stderr))
        report = {"host": host, "started_utc": started, "tensorrt": facts, "modes": modes, "max_mb": args.max_mb,
                  "cases": [_case_dict(c) for c in run], "skipped": [_case_dict(c) for c in skipped], "results": rows}
        return report, write_report(report, args.reports, target.label, stamp)

    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        done = list(pool.map(one, hosts))
    failed = False
    for report, written in done:
        bad = [r for r in report["results"] if r["status"] != "ok"]
        failed = failed or bool(bad)
        print(f"{report['host']}: {len(report['results']) - len(bad)} ok, {len(bad)} failed"
              + (f" (first: {bad[0]['error']})" if bad else ""))
        for ext, path in written.items():
            print(f"  report: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
