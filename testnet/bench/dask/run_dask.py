#!/usr/bin/env python3
"""The Dask yardstick of `dflow bench` and `npm run bench:micro` (issue 10).

Reads one JSON object on stdin:
  {"shapes": [{"name": str, "tasks": [{"name": str, "runtimeMs": num, "outputBytes": int, "after": [str]}]}],
   "warmup": int, "requests": int, "workers": int, "threads": int, "payloads": bool}
and runs every shape on one distributed.LocalCluster(n_workers=workers, threads_per_worker=threads,
processes=True): each task sleeps its runtime and returns `outputBytes` zero bytes (moved between worker
processes like any result), `warmup` discarded requests, then `requests` timed ones, one at a time.
Prints one JSON object on stdout:
  {"engine": "dask", "version": str, "workers": int, "threads": int,
   "shapes": [{"name": str, "latenciesMs": [num], "warmup": int}]}
A request's latency is client.get(graph, sinks) end to end: graph sent -> every sink's result back.
"""
import json
import sys
import time


def task(runtime_s, size, *deps):
    # the work is a sleep, like dflow's synthetic benchmark function; deps are only waited for
    time.sleep(runtime_s)
    return bytes(size)


def graph(shape, tag, payloads):
    prefix = f"r{tag}-"
    dsk = {}
    readers = set()
    for t in shape["tasks"]:
        for p in t["after"]:
            readers.add(p)
        size = int(t.get("outputBytes", 0)) if payloads else 0
        dsk[prefix + t["name"]] = (task, float(t["runtimeMs"]) / 1000.0, size, *[prefix + p for p in t["after"]])
    sinks = [prefix + t["name"] for t in shape["tasks"] if t["name"] not in readers]
    return dsk, sinks


def main():
    spec = json.load(sys.stdin)
    import distributed
    from distributed import Client, LocalCluster

    workers = int(spec.get("workers", 4))
    threads = int(spec.get("threads", 4))
    payloads = bool(spec.get("payloads", True))
    out = {"engine": "dask", "version": distributed.__version__, "workers": workers, "threads": threads, "shapes": []}
    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        n = 0
        for shape in spec["shapes"]:
            latencies = []
            for i in range(int(spec.get("warmup", 2)) + int(spec.get("requests", 8))):
                dsk, sinks = graph(shape, n, payloads)
                n += 1
                t0 = time.perf_counter()
                client.get(dsk, sinks, sync=True)
                ms = (time.perf_counter() - t0) * 1000.0
                if i >= int(spec.get("warmup", 2)):
                    latencies.append(round(ms, 1))
            out["shapes"].append({"name": shape["name"], "latenciesMs": latencies, "warmup": int(spec.get("warmup", 2))})
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
