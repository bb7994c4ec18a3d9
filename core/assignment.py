"""The region's partition assignment: sticky, even, and recomputed as workers come and go.

`balance(current, workers, partitions)` is a pure function. Each live worker gets
floor(P/W) or ceil(P/W) partitions. A partition stays with its current owner while that
owner is alive and within its quota (sticky: a rebalance moves as few partitions as
possible); the rest go to the workers furthest below quota. Ties break on worker id, so
every manager computes the same answer from the same input.
"""

from __future__ import annotations


def balance(current: dict[int, str], workers: list[str], partitions: int) -> dict[int, str]:
    """New owner of every partition in [0, partitions); {} when there are no workers."""
    if not workers:
        return {}
    workers = sorted(set(workers))
    base, extra = divmod(partitions, len(workers))
    kept: dict[str, list[int]] = {w: [] for w in workers}
    for p in range(partitions):
        owner = current.get(p)
        if owner in kept:
            kept[owner].append(p)
    # Workers already holding the most get the "+1" quotas: fewest moves.
    by_load = sorted(workers, key=lambda w: (-len(kept[w]), w))
    quota = {w: base + (1 if i < extra else 0) for i, w in enumerate(by_load)}
    out: dict[int, str] = {}
    free: list[int] = []
    for w in workers:
        keep = kept[w][: quota[w]]
        free.extend(kept[w][quota[w] :])
        for p in keep:
            out[p] = w
    free.extend(p for p in range(partitions) if current.get(p) not in kept)
    load = {w: sum(1 for o in out.values() if o == w) for w in workers}
    for p in sorted(free):
        w = min(workers, key=lambda x: (load[x] - quota[x], x))
        out[p] = w
        load[w] += 1
    return out
