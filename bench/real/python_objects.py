"""python_objects.py: a Python program as a real-world allocator workload.

Stresses: the allocation pattern of an interpreter: many short-lived
small objects (ints, tuples, strings, dict entries), dicts and lists that
grow and shrink, and JSON text built and parsed.  scripts/bench runs it
with PYTHONMALLOC=malloc so that every object goes through malloc rather
than CPython's own small-object pool, then LD_PRELOADs each allocator.

Usage: python3 python_objects.py [--quick]
Prints one line: workload=python ops=N seconds=S checksum=0x...
"""
import json
import random
import sys
import time

FULL_ROUNDS = 4
QUICK_ROUNDS = 1
RECORDS_PER_ROUND = 40000
QUICK_RECORDS_PER_ROUND = 8000
SEED = 20240601


def build_records(rng, count):
    """A list of dict records with string, int and list fields."""
    records = []
    for i in range(count):
        name = "user-%d-%s" % (i, "x" * rng.randrange(1, 40))
        records.append({
            "id": i,
            "name": name,
            "tags": [rng.choice(("a", "bb", "ccc", "dddd")) * rng.randrange(1, 8)
                     for _ in range(rng.randrange(0, 6))],
            "score": rng.random(),
        })
    return records


def one_round(rng, per_round):
    records = build_records(rng, per_round)
    # Index, then drop a random half: dict growth and frees in random order.
    index = {r["name"]: r for r in records}
    for r in rng.sample(records, len(records) // 2):
        del index[r["name"]]
    # Text processing: build, split and join strings.
    text = " ".join(r["name"] for r in index.values())
    words = sorted(set(text.split()), key=len)
    # JSON round trip of the survivors.
    blob = json.dumps(list(index.values()))
    parsed = json.loads(blob)
    # Tuples and sets of ints.
    pairs = {(r["id"], len(r["tags"])) for r in parsed}
    return len(words) + len(blob) + sum(a * 31 + b for a, b in pairs)


def main():
    quick = "--quick" in sys.argv[1:]
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    per_round = QUICK_RECORDS_PER_ROUND if quick else RECORDS_PER_ROUND
    rng = random.Random(SEED)
    start = time.perf_counter()
    checksum = 0
    for _ in range(rounds):
        checksum = (checksum * 1000003 + one_round(rng, per_round)) % (1 << 64)
    seconds = time.perf_counter() - start
    print("workload=python ops=%d seconds=%.6f checksum=0x%016x"
          % (rounds * per_round, seconds, checksum))


if __name__ == "__main__":
    main()
