"""Which ops of each registry model's int8 file leave XNNPACK, before and after the float islands.

For every registry model (default: all but the tiny test_* ones) the int8 file is written twice,
``--no-float-islands`` and default, at the model's seed-0 random init, calibrated on generated
faces; each file's XNNPACK placement is read on this machine's TensorFlow (which places ops as
ai-edge-litert does on aarch64). Prints a Markdown table (docs/int8.md) and, with --json, the rows.

    .venv/bin/python scripts/int8_placement.py [NAME ...] [--json OUT]
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _row(name):
    from lcefr.convert.api import convert
    from lcefr.convert.delegation import inspect_delegation
    from lcefr.eval.parity import face_inputs
    from lcefr.source import load_source

    src = load_source(name)
    cal = face_inputs(tuple(src.model.input_shape[1:]), n=32, seed=123)
    row = {"model": name}
    for islands in (False, True):
        buffer, result = convert(src.model, target="tflite-int8", name=name, calibration=cal, verify=False,
                                 float_islands=islands)
        report = inspect_delegation(buffer=buffer)
        key = "islands" if islands else "plain"
        row[key] = {"ops_total": len(report.ops), "ops_xnnpack": len(report.ops) - len(report.off_xnnpack),
                    "partitions": report.partitions, "off_xnnpack": report.off_path_summary(),
                    "float_islands": result.float_islands}
    return row


def _cell(part):
    off = ", ".join(f"{k} x{v}" for k, v in part["off_xnnpack"].items()) or "none"
    return f"{part['ops_xnnpack']}/{part['ops_total']} in {part['partitions']}", off


def main(argv=None):
    from lcefr.models import list_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    names = args.names or list_models(include_tests=False)
    rows = []
    for name in names:
        print(f"... {name}", file=sys.stderr, flush=True)
        rows.append(_row(name))
    print("| model | plain int8: ops on XNNPACK / partitions | off XNNPACK (plain) | float islands | "
          "with islands: ops on XNNPACK / partitions | off XNNPACK (with islands) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        plain, isl = _cell(row["plain"]), _cell(row["islands"])
        print(f"| {row['model']} | {plain[0]} | {plain[1]} | {', '.join(row['islands']['float_islands']) or '-'} "
              f"| {isl[0]} | {isl[1]} |")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
