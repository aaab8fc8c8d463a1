# dict_strings.py: a dict- and string-heavy Python workload with deterministic
# output (run plain and with the allocator preloaded; outputs must match).
import hashlib

ROUNDS = 6
KEYS = 60000


def build(round_no):
    d = {}
    for i in range(KEYS):
        key = "k%06d-%s" % ((i * 7919 + round_no) % KEYS, "x" * (i % 37))
        d[key] = [i, str(i * i), ("v" * (i % 23)) + key[::-1]]
    return d


def main():
    digest = hashlib.sha256()
    total = 0
    kept = []
    for r in range(ROUNDS):
        d = build(r)
        # Delete a third, then grow strings in place to make realloc work.
        for k in list(d)[::3]:
            del d[k]
        for k, v in d.items():
            v[1] += "-" + k[:8]
        words = " ".join(v[1] for v in d.values()).split(" ")
        joined = "|".join(sorted(words[:20000]))
        digest.update(joined.encode())
        total += len(d) + len(words)
        kept.append({k: v for k, v in list(d.items())[:1000]})  # survivors
        if len(kept) > 2:
            kept.pop(0)
    print("entries", total)
    print("kept", sum(len(k) for k in kept))
    print("sha256", digest.hexdigest())


main()
