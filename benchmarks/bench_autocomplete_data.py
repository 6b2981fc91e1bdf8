"""Benchmark: streaming build of the autocomplete dataset on a text8-sized corpus.

Target (issue 5): full text8 (100 MB) in under 2 minutes and 3 GB of memory. text8 cannot be
downloaded here, so this generates a 100 MB text8-format file with a Zipf vocabulary of 250,000
invented words (``rnnmem.tasks.synthetic_text.write_zipf_text8``) in a temporary folder. Each
measurement runs in a fresh subprocess so its peak RSS is its own.

Printed side by side:
- streaming build (100 MB): wall time and peak RSS against the targets (ratios < 1 pass);
- cache hit on the same corpus vs the build;
- streaming build vs the naive in-memory reference (``observations_from_words`` on the whole word
  list) on a 10 MB prefix.

Run: ``python benchmarks/bench_autocomplete_data.py [--mb 100] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 120.0
TARGET_RSS_MB = 3 * 1024.0

CHILD = r"""
import json, resource, sys, time
mode, corpus, cache = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if mode == "naive":
    from rnnmem.tasks.autocomplete import make_vocabulary, observations_from_words
    from collections import Counter
    words = open(corpus).read().split()
    vocab = make_vocabulary(Counter(words), 2**14)
    obs = observations_from_words(words, vocab, 200)
    n = len(obs["chars"])
else:
    from rnnmem.tasks.autocomplete import build_dataset
    data = build_dataset(corpus, cache_dir=cache, cache=(mode != "nocache"))
    n = len(data.chars)
    _ = int(data.targets[-1].sum())  # touch the arrays
wall = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB -> MiB (Linux)
print(json.dumps({"wall_s": wall, "rss_mb": rss, "observations": n}))
"""


def measure(mode: str, corpus: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(corpus), str(cache)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="corpus size in MB (text8: 100)")
    ap.add_argument("--small-mb", type=float, default=10.0, help="prefix size for the naive comparison")
    ap.add_argument("--keep", type=Path, default=None, help="generate into this folder and keep it")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: rnnmem's default rule)")
    args = ap.parse_args()
    from rnnmem.devices import set_threads, thread_report

    set_threads(args.threads)
    print("threads:", thread_report())
    from rnnmem.tasks.synthetic_text import write_zipf_text8

    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    root = Path(tmp.name) if tmp else args.keep
    root.mkdir(parents=True, exist_ok=True)
    big, small = root / "zipf100.txt", root / "zipf_small.txt"
    t0 = time.perf_counter()
    info = write_zipf_text8(big, int(args.mb * 1e6), vocab_size=250_000, seed=0)
    gen_s = time.perf_counter() - t0
    with open(big, "rb") as fh:
        head = fh.read(int(args.small_mb * 1e6))
    small.write_bytes(head[: head.rfind(b" ")])
    print(f"corpus: {info['bytes'] / 1e6:.1f} MB, {info['words']:,} words, vocabulary 250,000 (generated in {gen_s:.1f} s)")

    build = measure("nocache", big, root / "cache_unused")
    first = measure("cache", big, root / "cache")  # builds and writes the cache
    hit = measure("cache", big, root / "cache")
    s_stream = measure("nocache", small, root / "cache_unused")
    s_naive = measure("naive", small, root / "cache_unused")

    print()
    print(f"{'measurement':44s} {'wall s':>8s} {'peak RSS MB':>12s} {'observations':>13s}")
    for name, r in [(f"streaming build, {args.mb:.0f} MB (no cache)", build),
                    (f"streaming build + cache write, {args.mb:.0f} MB", first),
                    (f"cache hit, {args.mb:.0f} MB", hit),
                    (f"streaming build, {args.small_mb:.0f} MB prefix", s_stream),
                    (f"naive in-memory reference, {args.small_mb:.0f} MB prefix", s_naive)]:
        print(f"{name:44s} {r['wall_s']:8.2f} {r['rss_mb']:12.0f} {r['observations']:13,d}")
    print()
    print("ratios (side by side, same run):")
    print(f"  build time / 120 s target          = {build['wall_s'] / TARGET_S:.3f}  "
          f"({'PASS' if build['wall_s'] < TARGET_S else 'FAIL'})")
    print(f"  build peak RSS / 3 GB target        = {build['rss_mb'] / TARGET_RSS_MB:.3f}  "
          f"({'PASS' if build['rss_mb'] < TARGET_RSS_MB else 'FAIL'})")
    print(f"  cache hit time / build time         = {hit['wall_s'] / first['wall_s']:.3f}")
    print(f"  naive / streaming time ({args.small_mb:.0f} MB)      = {s_naive['wall_s'] / s_stream['wall_s']:.2f}")
    print(f"  naive / streaming peak RSS ({args.small_mb:.0f} MB)  = {s_naive['rss_mb'] / s_stream['rss_mb']:.2f}")
    if s_naive["observations"] != s_stream["observations"]:
        print("  WARNING: naive and streaming observation counts differ")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
