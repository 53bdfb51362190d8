#!/usr/bin/env python3
"""Real exported models in loom, checked against onnxruntime in the same run.

Run through tools/onnx_models.sh, which makes the throwaway venv (torch,
torchvision, onnxruntime, onnx from PyPI). With random weights (seeded) it
exports torchvision's resnet18 and mobilenet_v2, a 2-layer
nn.TransformerEncoder and an LSTM classifier with torch.onnx.export (the
TorchScript exporter, opset 17), runs each in onnxruntime on the CPU and in
loom on every device (`loom run` on the same inputs, `loom bench --model`
for the latency), and reports per model and device the largest relative
difference, max |loom - ort| / max |ort| over every output, and the median
latency beside onnxruntime's. Then the export the other way:
`loom export` writes Sequential models (the MLP, the CNN of
examples/models/cnn.json and a small ViT, each trained briefly by `loom train`)
as ONNX, onnxruntime runs it, and its outputs are compared with the
model's own (loom_sequential_predict).

Writes OUT/results.json; exit status 0 when every model that loom imports
matches to --tol (1e-4) on every device.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
import torchvision


class LSTMClassifier(torch.nn.Module):
    def __init__(self, features=32, hidden=64, classes=10):
        super().__init__()
        self.lstm = torch.nn.LSTM(features, hidden, batch_first=True)
        self.fc = torch.nn.Linear(hidden, classes)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h[-1])


def models():
    torch.manual_seed(0)
    enc_layer = torch.nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, dropout=0.0,
                                                 batch_first=True)
    encoder = torch.nn.TransformerEncoder(enc_layer, num_layers=2, enable_nested_tensor=False)
    return [
        ("resnet18", torchvision.models.resnet18(weights=None), (1, 3, 224, 224)),
        ("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None), (1, 3, 224, 224)),
        ("transformer_encoder", encoder, (2, 16, 64)),
        ("lstm_classifier", LSTMClassifier(), (4, 20, 32)),
    ]


def npy_save(path, a):
    np.save(path, np.ascontiguousarray(a))


def loom(cli, *args, check=True):
    p = subprocess.run([cli, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(p.stderr.strip() or p.stdout.strip())
    return p


def devices(cli):
    out = loom(cli, "devices", "--json").stdout
    return [d["spec"] for d in json.loads(out) if d.get("can_run")]


def ort_latency(sess, feeds, runs, warmup):
    for _ in range(warmup):
        sess.run(None, feeds)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def rel_diff(got, want):
    scale = max(float(np.max(np.abs(want))), 1e-30)
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / scale


def check_model(cli, name, path, feeds, devs, out, runs, warmup):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    names = [o.name for o in sess.get_outputs()]
    res = {"model": name, "file": path, "ort_ms": ort_latency(sess, feeds, runs, warmup), "devices": {}}
    in_args = []
    for k, v in feeds.items():
        p = os.path.join(out, f"{name}.{k}.npy")
        npy_save(p, v)
        in_args += ["--input", f"{k}={p}"]
    for d in devs:
        r = {}
        odir = os.path.join(out, f"{name}.{d.replace(':', '_')}")
        os.makedirs(odir, exist_ok=True)
        p = loom(cli, "run", path, *in_args, "--device", d, "--output", odir, "--json", check=False)
        if p.returncode != 0:
            r["error"] = (p.stderr.strip() or p.stdout.strip()).splitlines()[-1][:400]
            res["devices"][d] = r
            continue
        j = json.loads(p.stdout)
        files = {o["name"]: o["file"] for o in j["outputs"]}
        r["max_rel_diff"] = max(rel_diff(np.load(files[n]), w) for n, w in zip(names, want))
        bj = os.path.join(odir, "bench.json")
        b = loom(cli, "bench", "--model", path, "--device", d, "--runs", str(runs), "--warmup", str(warmup),
                 "--json", bj, check=False)
        if b.returncode == 0:
            bd = json.load(open(bj))["devices"][0]
            r["loom_ms"] = bd.get("median_ms")
            r["compile_s"] = bd.get("compile_s")
        else:
            r["bench_error"] = (b.stderr.strip() or b.stdout.strip()).splitlines()[-1][:400]
        res["devices"][d] = r
    return res


# loom's own models for the export check: the seed's MLP, the CNN of
# examples/models/cnn.json and a small ViT (the example's layers, narrower)
VIT = {"input": 784, "layers": [
    {"type": "patches", "size": 7, "rows": 28, "cols": 28},
    {"type": "dense", "units": 32, "activation": "linear"},
    {"type": "position"},
    {"type": "transformer_encoder", "heads": 4, "ffn": 64},
    {"type": "transformer_encoder", "heads": 4, "ffn": 64},
    {"type": "layer_norm"},
    {"type": "pool", "mode": "mean"},
    {"type": "dense", "units": 10, "activation": "softmax"}]}


def export_one(cli, out, devs, name, train_args):
    """loom -> ONNX -> onnxruntime: a Sequential model's own outputs."""
    st = os.path.join(out, name + ".safetensors")
    onnx_path = os.path.join(out, name + ".onnx")
    loom(cli, "train", "--epochs", "1", "--limit", "1000", "--test-limit", "200", "--device", "cpu", "--save", st,
         *train_args)
    loom(cli, "export", "--model", st, "--output", onnx_path, "--sample", "16")
    x = np.load(onnx_path + ".x.npy")
    y = np.load(onnx_path + ".y.npy")
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x})[0]
    res = {"model": name, "file": onnx_path, "ort_vs_loom_predict": rel_diff(got, y)}
    # and loom's importer on the same file, on each device
    res["devices"] = {}
    for d in devs:
        odir = os.path.join(out, f"{name}.{d.replace(':', '_')}")
        os.makedirs(odir, exist_ok=True)
        p = loom(cli, "run", onnx_path, "--input", f"x={onnx_path}.x.npy", "--device", d, "--output", odir, "--json",
                 check=False)
        if p.returncode == 0:
            f = json.loads(p.stdout)["outputs"][0]["file"]
            res["devices"][d] = {"max_rel_diff": rel_diff(np.load(f), got)}
        else:
            res["devices"][d] = {"error": p.stderr.strip().splitlines()[-1][:400]}
    return res


def export_check(cli, out, devs, here):
    vit = os.path.join(out, "vit_small.json")
    with open(vit, "w") as f:
        json.dump(VIT, f)
    return [export_one(cli, out, devs, "loom_sequential_mlp", ["--hidden", "64,32"]),
            export_one(cli, out, devs, "loom_sequential_cnn",
                       ["--model", os.path.join(here, "examples", "models", "cnn.json")]),
            export_one(cli, out, devs, "loom_sequential_vit", ["--model", vit])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loom", required=True, help="the loom CLI")
    ap.add_argument("--out", required=True)
    ap.add_argument("--devices", default="all")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--only", default="", help="comma-separated model names")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    devs = devices(args.loom) if args.devices == "all" else args.devices.split(",")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    results = {"torch": torch.__version__, "onnxruntime": ort.__version__, "devices": devs, "models": []}
    rng = np.random.default_rng(0)
    for name, model, shape in models():
        if args.only and name not in args.only.split(","):
            continue
        model.eval()
        path = os.path.join(args.out, name + ".onnx")
        x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
        # with gradients on: torch's fused inference paths (the Transformer's
        # _transformer_encoder_layer_fwd) have no ONNX form
        torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y"], opset_version=17,
                          dynamo=False, do_constant_folding=True)
        res = check_model(args.loom, name, path, {"x": x.numpy()}, devs, args.out, args.runs, args.warmup)
        results["models"].append(res)
    if not args.only or "export" in args.only:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        results["export"] = export_check(args.loom, args.out, devs, here)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    # the table
    bad = 0
    print(f"\ntorch {torch.__version__}, onnxruntime {ort.__version__} (CPU)")
    print(f"{'model':22s} {'ort ms':>9s}  " + "  ".join(f"{d:>28s}" for d in devs))
    for r in results["models"]:
        cells = []
        for d in devs:
            v = r["devices"].get(d, {})
            if "error" in v:
                cells.append(f"{'refused':>28s}")
                continue
            ms = v.get("loom_ms")
            cells.append(f"rel {v['max_rel_diff']:.1e}, {ms if ms is not None else float('nan'):9.2f} ms")
            bad += v["max_rel_diff"] > args.tol
        print(f"{r['model']:22s} {r['ort_ms']:9.2f}  " + "  ".join(f"{c:>28s}" for c in cells))
    for r in results["models"]:
        for d, v in r["devices"].items():
            if "error" in v:
                print(f"  {r['model']} on {d}: {v['error']}")
    for e in results.get("export", []):
        print(f"\nexport {e['model']}: onnxruntime on loom_onnx_save's file vs loom_sequential_predict: "
              f"rel {e['ort_vs_loom_predict']:.1e}")
        bad += e["ort_vs_loom_predict"] > args.tol
        for d, v in e["devices"].items():
            print(f"  loom {d} on the same file vs onnxruntime: " +
                  (f"rel {v['max_rel_diff']:.1e}" if "max_rel_diff" in v else v["error"]))
            bad += "max_rel_diff" not in v or v["max_rel_diff"] > args.tol
    print(f"\nresults in {os.path.join(args.out, 'results.json')}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
