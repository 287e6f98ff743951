"""CUDA exact dense search: ragkernels vs torch.topk(q @ D.T) on the same GPU.

For each corpus (1M x 384 and 1M x 768 random unit vectors, float32 and
float16) and batch size (1 .. 1024 queries), times
ragkernels._cuda.dense_search (fused scan for small batches, cuBLAS GEMM +
our top-k for larger ones when built with cuBLAS) and
torch.topk(q @ D.T, k) in the same process, median of --repeat calls after a
warm-up, both synchronized. torch multiplies float16 corpora in float16
(tensor cores, float32 accumulation); ragkernels widens them to float32
exactly (its CPU op is the oracle), so that row compares different
arithmetic and says so.

The single-query scan is also reported as a fraction of the HBM bandwidth
measured in the same run (a device-to-device copy: bytes read + written over
its time): corpus bytes / latency / copy bandwidth.

    python benchmarks/python/bench_dense_cuda.py [--n 1000000] [--k 100]

Writes benchmarks/results/dense_cuda.{json,md}. Needs a CUDA GPU, torch with
CUDA, and ragkernels built with its CUDA module; exits with a message
otherwise.
"""
import argparse
import statistics
import sys
import time

from _common import machine, versions, write_results


def need_gpu():
    try:
        import torch
    except ImportError:
        sys.exit("bench_dense_cuda: torch is not installed; this benchmark needs torch with CUDA")
    if not torch.cuda.is_available():
        sys.exit("bench_dense_cuda: no CUDA GPU visible to torch; run this on a GPU machine")
    try:
        from ragkernels import _cuda
    except ImportError:
        sys.exit("bench_dense_cuda: ragkernels was built without its CUDA module (needs nvcc at build time)")
    if _cuda.device_count() < 1:
        sys.exit("bench_dense_cuda: ragkernels' CUDA module sees no GPU")
    return torch, _cuda


def gpu_median(torch, fn, repeat, warmup=2):
    """Median and p99 wall seconds of fn() + synchronize, after warm-up calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]


def copy_bandwidth(torch, repeat):
    """Bytes per second of a 2 GiB device-to-device copy (read + write)."""
    src = torch.empty(1 << 29, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    median, _ = gpu_median(torch, lambda: dst.copy_(src), repeat)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * (1 << 31) / median


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dims", type=int, nargs="+", default=[384, 768])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float16"])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024])
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    torch, cuda = need_gpu()
    from torch.utils.dlpack import from_dlpack

    torch.backends.cuda.matmul.allow_tf32 = False  # float32 products on both sides
    gen = torch.Generator(device="cuda").manual_seed(0)
    bandwidth = copy_bandwidth(torch, args.repeat)
    print(f"device-to-device copy: {bandwidth / 1e9:.0f} GB/s", flush=True)
    rows = []
    for dim in args.dims:
        base = torch.randn((args.n, dim), device="cuda", generator=gen)
        base /= base.norm(dim=1, keepdim=True)
        for dtype in args.dtypes:
            docs = base.to(getattr(torch, dtype)).contiguous()
            for nq in args.batches:
                q = torch.randn((nq, dim), device="cuda", generator=gen)
                q /= q.norm(dim=1, keepdim=True)
                tq = q.to(docs.dtype)
                def ours():
                    return cuda.dense_search(q, docs, args.k, "ip", None, None, check_finite_docs=False)

                def theirs():
                    return torch.topk(tq @ docs.T, args.k, dim=1)

                ours_s, ours_p99 = gpu_median(torch, ours, args.repeat)
                theirs_s, theirs_p99 = gpu_median(torch, theirs, args.repeat)
                ids = from_dlpack(ours()[0])
                agree = (ids == theirs().indices).float().mean().item()
                corpus_bytes = docs.numel() * docs.element_size()
                path = "gemm" if cuda.dense_gemm_available() and nq >= 8 else "scan"
                row = {"n": args.n, "dim": dim, "dtype": dtype, "batch": nq, "k": args.k, "path": path,
                       "ragkernels ms": ours_s * 1e3, "ragkernels p99 ms": ours_p99 * 1e3,
                       "torch ms": theirs_s * 1e3, "torch p99 ms": theirs_p99 * 1e3,
                       "speedup": theirs_s / ours_s, "queries/s": nq / ours_s,
                       "ids equal to torch": agree}
                if nq == 1:
                    row["HBM fraction"] = corpus_bytes / ours_s / bandwidth
                    row["torch HBM fraction"] = corpus_bytes / theirs_s / bandwidth
                rows.append(row)
                print(row, flush=True)
            del docs
        del base
        torch.cuda.empty_cache()
    props = torch.cuda.get_device_properties(0)
    meta = {"device": props.name, "memory_gb": props.total_memory / 2**30, "copy_bandwidth_GBps": bandwidth / 1e9,
            "cublas": cuda.dense_gemm_available(), "k": args.k, "repeat": args.repeat,
            "torch_matmul_tf32": False, "machine": machine(),
            "versions": versions({"torch": "torch", "ragkernels": "ragkernels"}),
            "command": "python benchmarks/python/bench_dense_cuda.py " + " ".join(sys.argv[1:])}
    columns = ["dim", "dtype", "batch", "path", "ragkernels ms", "torch ms", "speedup", "queries/s",
               "HBM fraction", "torch HBM fraction", "ids equal to torch"]
    table = write_results("dense_cuda", rows, columns, meta)
    print(f"{props.name}, copy bandwidth {bandwidth / 1e9:.0f} GB/s, n={args.n}, k={args.k}\n\n{table}")


if __name__ == "__main__":
    main()
