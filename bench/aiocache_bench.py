"""aiocache's side of `cargo x bench redis|memcached`: one round of the network workloads.

Runs the same workloads as crates/cache-bench/src/net.rs against the same server, keys
(`{namespace}:k{i}`, counters `{namespace}:c{i}`) and JSON records, which the Rust side has
already written, and prints one JSON object: {"aiocache": version, "python": version,
"rates": {workload: operations (or multi_get / multi_set calls) per second}}.

Usage: python aiocache_bench.py --server redis|memcached --host H --port P --namespace NS ...
(cargo x bench passes every option; see `--help`).
"""

import argparse
import asyncio
import itertools
import json
import random
import sys
import time

import aiocache
from aiocache import MemcachedCache, RedisCache


def record(i):
    return {"id": i, "name": f"user-{i}", "tags": ["a", "b"], "score": i / 7.0}


def zipf_keys(rng, n_keys, s, count):
    """`count` key indexes with Zipf(s) ranks scattered over `n_keys` keys."""
    perm = list(range(n_keys))
    rng.shuffle(perm)
    cum = list(itertools.accumulate(1.0 / (r ** s) for r in range(1, n_keys + 1)))
    ranks = rng.choices(range(n_keys), cum_weights=cum, k=count)
    return [perm[r] for r in ranks]


async def timed(ops, coro):
    start = time.perf_counter()
    await coro
    return ops / (time.perf_counter() - start)


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", choices=["redis", "memcached"], required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--counters", type=int, default=100)
    p.add_argument("--tasks", type=int, default=64)
    p.add_argument("--pool-size", type=int, default=8)
    p.add_argument("--zipf-s", type=float, default=1.0)
    p.add_argument("--sequential", type=int, default=1_000)
    p.add_argument("--per-task", type=int, default=100)
    p.add_argument("--multi-10", type=int, default=200)
    p.add_argument("--multi-100", type=int, default=100)
    p.add_argument("--multi-set-100", type=int, default=100)
    p.add_argument("--increments", type=int, default=1_000)
    a = p.parse_args()

    if a.server == "redis":
        cache = RedisCache(endpoint=a.host, port=a.port, namespace=a.namespace)
    else:
        # aiocache's MemcachedCache joins namespace and key without a separator (only
        # RedisCache adds ":"), so the separator goes into the namespace
        cache = MemcachedCache(
            endpoint=a.host, port=a.port, namespace=a.namespace + ":", pool_size=a.pool_size
        )

    rng = random.Random(7)
    keys = [f"k{i}" for i in range(a.keys)]
    counters = [f"c{i}" for i in range(a.counters)]

    def uniform(n):
        return [rng.randrange(a.keys) for _ in range(n)]

    mix = {
        "uniform": [
            [(k, rng.randrange(10) == 0) for k in uniform(a.per_task)] for _ in range(a.tasks)
        ],
        "zipf": [
            [(k, rng.randrange(10) == 0) for k in zipf_keys(rng, a.keys, a.zipf_s, a.per_task)]
            for _ in range(a.tasks)
        ],
    }

    async def seq_get(picks):
        for i in picks:
            if await cache.get(keys[i]) is None:
                raise RuntimeError(f"miss on {keys[i]}")

    async def seq_set(picks):
        for i in picks:
            await cache.set(keys[i], record(i))

    async def multi_get(n, calls):
        for _ in range(calls):
            # distinct keys: aiomcache refuses duplicates in one multi_get
            values = await cache.multi_get([keys[i] for i in rng.sample(range(a.keys), n)])
            if len(values) != n:
                raise RuntimeError("multi_get answered the wrong number of values")

    async def multi_set(n, calls):
        for _ in range(calls):
            # no TTL, as every write of the benchmark: MSET on Redis, one set per key on memcached
            await cache.multi_set([(keys[i], record(i)) for i in rng.sample(range(a.keys), n)])

    async def increments(n):
        for _ in range(n):
            await cache.increment(counters[rng.randrange(a.counters)], 1)

    async def one_task(ops):
        for i, is_set in ops:
            if is_set:
                await cache.set(keys[i], record(i))
            elif await cache.get(keys[i]) is None:
                raise RuntimeError(f"miss on {keys[i]}")

    async def mixed(which):
        await asyncio.gather(*(one_task(ops) for ops in mix[which]))

    # warm-up: connections of the pool, imports on first use
    await seq_get(uniform(50))
    await mixed_warm(cache, keys, a.tasks)

    rates = {
        "seq_get": await timed(a.sequential, seq_get(uniform(a.sequential))),
        "seq_set": await timed(a.sequential, seq_set(uniform(a.sequential))),
        "mix_uniform": await timed(a.tasks * a.per_task, mixed("uniform")),
        "mix_zipf": await timed(a.tasks * a.per_task, mixed("zipf")),
        "multi_get_10": await timed(a.multi_10, multi_get(10, a.multi_10)),
        "multi_get_100": await timed(a.multi_100, multi_get(100, a.multi_100)),
        "multi_set_100": await timed(a.multi_set_100, multi_set(100, a.multi_set_100)),
        "increment": await timed(a.increments, increments(a.increments)),
    }
    await cache.close()
    json.dump(
        {
            "aiocache": aiocache.__version__,
            "python": sys.version.split()[0],
            "rates": rates,
        },
        sys.stdout,
    )
    print()


async def mixed_warm(cache, keys, tasks):
    """Opens the pool's connections before the timed mixed workloads."""
    await asyncio.gather(*(cache.get(keys[t]) for t in range(tasks)))


if __name__ == "__main__":
    asyncio.run(main())
