# threaded.py: Python threads allocating and exchanging objects through a
# queue, so objects are freed by other threads; deterministic output.
import hashlib
import queue
import threading

WORKERS = 4
ITEMS = 20000


def producer(wid, q):
    for i in range(ITEMS):
        q.put((wid, i, ("w%d:" % wid) + "y" * (i % 200) + str(i * wid)))
    q.put(None)


def main():
    q = queue.Queue(maxsize=512)
    results = [[] for _ in range(WORKERS)]
    threads = [threading.Thread(target=producer, args=(w, q)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    done = 0
    while done < WORKERS:
        item = q.get()
        if item is None:
            done += 1
            continue
        wid, i, s = item
        results[wid].append(len(s) + i)
    for t in threads:
        t.join()
    # A second phase: each thread builds a dict, main merges them.
    parts = [None] * WORKERS

    def builder(w):
        parts[w] = {"%d-%d" % (w, i): bytes(i % 251 for _ in range(i % 64)) for i in range(ITEMS // 2)}

    threads = [threading.Thread(target=builder, args=(w,)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = {}
    for p in parts:
        merged.update(p)
    h = hashlib.sha256()
    for k in sorted(merged):
        h.update(k.encode() + merged[k])
    print("sums", [sum(r) for r in results])
    print("merged", len(merged))
    print("sha256", h.hexdigest())


main()
