"""The table of tools/bench_peers.sh, and its --json file.

report.py META.json RESULTS.jsonl NOTES.jsonl [OUT.json]

RESULTS holds one line per run ({"peer": "loom cpu" | "keras" | "pytorch",
"samples_per_s", "last_epoch_samples_per_s", "test_accuracy", "batch",
"round", "load_before", ...}); NOTES one line per peer or device left out, with the
reason. Standard library only: it runs on the system's python3.
"""
import json
import statistics
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


# The goals of the speed issue (the MLP) and of the CNN issue: (loom run,
# peer, the least ratio), at every batch size.
GOALS = {"mlp": [("loom cpu", "pytorch", 1.5), ("loom cpu", "keras", 3.0),
                 ("loom opencl:0", "keras", 2.0), ("loom vulkan:0", "keras", 1.0)],
         "cnn": [("loom cpu", "pytorch", 1.0)]}


def spread(values):
    """median [min-max] of the numbers among values, or None."""
    v = sorted(x for x in values if isinstance(x, (int, float)))
    if not v:
        return None
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v)}


def fmt_spread(sp, unit="x"):
    if not sp:
        return "-"
    d = ".2f" if unit else ".0f"
    if sp["n"] == 1:
        return f"{sp['median']:{d}}{unit}"
    return f"{sp['median']:{d}}{unit} [{sp['min']:{d}}-{sp['max']:{d}}]"


def main(argv):
    meta = json.load(open(argv[1]))
    results = read_lines(argv[2])
    notes = read_lines(argv[3])
    out_path = argv[4] if len(argv) > 4 else None
    rounds = meta.get("repeat", 1)

    print()
    arch = ("CNN (examples/models/cnn.json)" if meta.get("model") == "cnn" else "784-64-64-10")
    print(f"loom beside its peers: Fashion-MNIST {arch}, Adam 1e-3, {meta['epochs']} epochs, "
          f"{meta['threads']} threads, {rounds} round{'s' if rounds != 1 else ''}")
    print(f"{meta['cpu_model']} ({meta['cores']} cores), {meta['hostname']}, {meta['date']}")
    print("samples/s = epochs x 60000 / seconds of the whole fit (first epoch included); last and best epoch =")
    print("60000 / that epoch's seconds; load = the 1-minute load average before and after the run")

    for r in results:
        r["best_epoch_samples_per_s"] = best_epoch(r)
        r.setdefault("round", 1)
    ratios, summary = [], []
    for batch in meta["batches"]:
        rows = [r for r in results if r.get("batch") == batch]
        print()
        print(f"batch {batch}")
        if not rows:
            print("  (no run finished)")
            continue
        print(f"  {'run':<20} {'round':>5} {'samples/s':>10} {'last epoch':>11} {'best epoch':>11} {'test acc':>9} "
              f"{'load':>11}  version")
        for r in rows:
            load = f"{fmt(r.get('load_before'), '.2f')}/{fmt(r.get('load_after'), '.2f')}"
            print(f"  {r['peer']:<20} {r['round']:>5} {fmt(r.get('samples_per_s'), '10.0f')} "
                  f"{fmt(r.get('last_epoch_samples_per_s'), '11.0f')} "
                  f"{fmt(r.get('best_epoch_samples_per_s'), '11.0f')} {fmt(r.get('test_accuracy'), '9.4f')} "
                  f"{load:>11}  {r.get('version', r.get('device_name', ''))}")
        names = list(dict.fromkeys(r["peer"] for r in rows))
        looms = [n for n in names if n.startswith("loom ")]
        others = [n for n in names if not n.startswith("loom ")]
        if rounds > 1:
            print()
            print("  samples/s over the rounds: median [min-max]")
            for n in names:
                sp = spread(r.get("samples_per_s") for r in rows if r["peer"] == n)
                print(f"  {n:<20} {fmt_spread(sp, '')}")
        if not looms or not others:
            continue
        print()
        print("  loom / peer: samples/s ratio of the whole fits of one round (best epoch against best epoch),")
        print("  median [min-max] over the rounds; test accuracy difference (median)")
        print(f"  {'':<20}" + "".join(f" {o:>40}" for o in others))
        for ln in looms:
            cells = []
            for o in others:
                per = []
                for rnd in sorted({r["round"] for r in rows}):
                    a = next((r for r in rows if r["peer"] == ln and r["round"] == rnd), None)
                    b = next((r for r in rows if r["peer"] == o and r["round"] == rnd), None)
                    if not a or not b:
                        continue
                    q = {"batch": batch, "round": rnd, "loom": ln, "peer": o,
                         "ratio": ratio(a.get("samples_per_s"), b.get("samples_per_s")),
                         "best_epoch_ratio": ratio(a.get("best_epoch_samples_per_s"),
                                                   b.get("best_epoch_samples_per_s")),
                         "accuracy_difference": a["test_accuracy"] - b["test_accuracy"],
                         "load": [a.get("load_before"), b.get("load_after")]}
                    ratios.append(q)
                    per.append(q)
                sq = {"batch": batch, "loom": ln, "peer": o, "rounds": len(per),
                      "ratio": spread(q["ratio"] for q in per),
                      "best_epoch_ratio": spread(q["best_epoch_ratio"] for q in per),
                      "accuracy_difference": spread(q["accuracy_difference"] for q in per)}
                summary.append(sq)
                da = sq["accuracy_difference"]
                cells.append(f"{fmt_spread(sq['ratio'])} ({fmt_spread(sq['best_epoch_ratio'])}) "
                             f"{da['median'] if da else 0:+.4f}")
            print(f"  {ln:<20}" + "".join(f" {c:>40}" for c in cells))

    goals = []
    for ln, peer, want in GOALS[meta.get("model", "mlp")]:
        for batch in meta["batches"]:
            sq = next((q for q in summary if q["batch"] == batch and q["loom"] == ln and q["peer"] == peer), None)
            if sq and sq["ratio"]:
                goals.append((ln, peer, want, batch, sq))
    if goals:
        print()
        print("goals (the median ratio of the rounds; the spread beside it):")
        for ln, peer, want, batch, sq in goals:
            r = sq["ratio"]
            state = "met" if r["median"] >= want else "NOT met"
            if r["median"] >= want and r["min"] < want:
                state += " (not in every round)"
            print(f"  {ln} >= {want:g}x {peer} at batch {batch}: {state}, {fmt_spread(r)}")

    if notes:
        print()
        print("not in the table:")
        for n in notes:
            print(f"  {n['peer']}: {n['reason']}")

    if out_path:
        with open(out_path, "w") as f:
            json.dump({"schema": 2, **meta, "results": results, "ratios": ratios, "summary": summary,
                       "not_run": notes}, f, indent=1)
            f.write("\n")
        print()
        print(f"written {out_path}")


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: report.py META.json RESULTS.jsonl NOTES.jsonl [OUT.json]")
    main(sys.argv)
