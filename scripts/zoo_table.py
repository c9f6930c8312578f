"""Markdown speed table from `make demo-zoo`'s rows (build/demo-zoo/rows.jsonl), for docs/studies.md.

    python scripts/zoo_table.py [build/demo-zoo/rows.jsonl]
"""
import json
import sys


def fmt(v, spec=".2f"):
    return "-" if v is None or v != v else format(v, spec)


def main(path="build/demo-zoo/rows.jsonl"):
    rows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows[r["model"]] = r  # a rerun's row replaces an older one
    print("| model | LceBconv2d | binary MAC share | LCE ms | float ms | int8 ms | ONNX ms | float/LCE | int8 worst cos | checks |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows.values():
        ok = r["status"] == "ok"
        ratio = r["float_ms"] / r["ms_per_face"] if ok and r.get("float_ms") else None
        binary = r["binary_macs"] > 0  # int8 parity of binary models is reported, not enforced
        failed = [n.split(":")[0] for n in r.get("notes", [])
                  if "parity against Keras" in n and not (binary and n.startswith("tflite-int8"))]
        if not ok:
            checks = "tflite parity failed"
        else:
            checks = "all pass" if not failed else "; ".join(f"{t} parity below" for t in failed)
        print(f"| `{r['model']}` | {r['lce_bconv2d']} | {fmt(r['binary_mac_share'], '.3f')} | "
              f"{fmt(r['ms_per_face'] if ok else None)} | {fmt(r.get('float_ms'))} | {fmt(r.get('int8_ms'))} | "
              f"{fmt(r.get('onnx_ms'))} | {fmt(ratio)}{'x' if ratio else ''} | {fmt(r.get('int8_parity_cosine'), '.3f')} | {checks} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
