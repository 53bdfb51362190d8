"""The table of tools/bench_peers.sh, and its --json file.

report.py META.json RESULTS.jsonl NOTES.jsonl [OUT.json]

RESULTS holds one line per run ({"peer": "loom cpu" | "keras" | "pytorch",
"samples_per_s", "last_epoch_samples_per_s", "test_accuracy", "batch",
"load_before", ...}); NOTES one line per peer or device left out, with the
reason. Standard library only: it runs on the system's python3.
"""
import json
import sys


def read_lines(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def fmt(v, spec):
    if isinstance(v, (int, float)):
        return format(v, spec)
    width = spec.split(".")[0]
    return format("-", ">" + width) if width.isdigit() else "-"


def best_epoch(r):
    """samples/s of the fastest epoch: the figure a burst of load on the
    machine disturbs least."""
    t = [x for x in r.get("epoch_seconds") or [] if isinstance(x, (int, float)) and x > 0]
    n = r.get("train_images", 60000)
    return n / min(t) if t else None


def times(v):
    return f"{v:.2f}x" if isinstance(v, (int, float)) else "-"


def ratio(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0:
        return a / b
    return None


def main(argv):
    meta = json.load(open(argv[1]))
    results = read_lines(argv[2])
    notes = read_lines(argv[3])
    out_path = argv[4] if len(argv) > 4 else None

    print()
    print(f"loom beside its peers: Fashion-MNIST 784-64-64-10, Adam 1e-3, {meta['epochs']} epochs, "
          f"{meta['threads']} threads")
    print(f"{meta['cpu_model']} ({meta['cores']} cores), {meta['hostname']}, {meta['date']}")
    print("samples/s = epochs x 60000 / seconds of the whole fit (first epoch included); last and best epoch =")
    print("60000 / that epoch's seconds; load = the 1-minute load average before the run")

    for r in results:
        r["best_epoch_samples_per_s"] = best_epoch(r)
    ratios = []
    for batch in meta["batches"]:
        rows = [r for r in results if r.get("batch") == batch]
        print()
        print(f"batch {batch}")
        if not rows:
            print("  (no run finished)")
            continue
        print(f"  {'run':<14} {'samples/s':>10} {'last epoch':>11} {'best epoch':>11} {'test acc':>9} {'load':>6}  "
              "version")
        for r in rows:
            print(f"  {r['peer']:<14} {fmt(r.get('samples_per_s'), '10.0f')} "
                  f"{fmt(r.get('last_epoch_samples_per_s'), '11.0f')} "
                  f"{fmt(r.get('best_epoch_samples_per_s'), '11.0f')} {fmt(r.get('test_accuracy'), '9.4f')} "
                  f"{fmt(r.get('load_before'), '6.2f')}  {r.get('version', r.get('device_name', ''))}")
        looms = [r for r in rows if r["peer"].startswith("loom ")]
        others = [r for r in rows if not r["peer"].startswith("loom ")]
        if not looms or not others:
            continue
        print()
        print("  loom / peer: samples/s ratio over the whole fit (best epoch against best epoch), "
              "test accuracy difference")
        print(f"  {'':<14}" + "".join(f" {o['peer']:>28}" for o in others))
        for lr in looms:
            cells = []
            for o in others:
                q = ratio(lr.get("samples_per_s"), o.get("samples_per_s"))
                ql = ratio(lr.get("best_epoch_samples_per_s"), o.get("best_epoch_samples_per_s"))
                da = lr["test_accuracy"] - o["test_accuracy"]
                ratios.append({"batch": batch, "loom": lr["peer"], "peer": o["peer"], "ratio": q,
                               "best_epoch_ratio": ql, "accuracy_difference": da})
                cells.append(f"{times(q)} ({times(ql)}) {da:+.4f}")
            print(f"  {lr['peer']:<14}" + "".join(f" {c:>28}" for c in cells))

    goal = next((q for q in ratios if q["batch"] == 32 and q["loom"] == "loom cpu" and q["peer"] == "keras"), None)
    if goal and goal["ratio"] is not None:
        met = goal["ratio"] >= 2 and abs(goal["accuracy_difference"]) <= 0.01
        print()
        print(f"goal (loom cpu >= 2x keras at batch 32, accuracy within 0.01): {'met' if met else 'NOT met'} "
              f"({goal['ratio']:.2f}x, {goal['accuracy_difference']:+.4f})")

    if notes:
        print()
        print("not in the table:")
        for n in notes:
            print(f"  {n['peer']}: {n['reason']}")

    if out_path:
        with open(out_path, "w") as f:
            json.dump({"schema": 1, **meta, "results": results, "ratios": ratios, "not_run": notes}, f, indent=1)
            f.write("\n")
        print()
        print(f"written {out_path}")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: report.py META.json RESULTS.jsonl NOTES.jsonl [OUT.json]")
    main(sys.argv)
