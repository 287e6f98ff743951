"""CUDA MaxSim reranking: ragkernels vs torch (bmm + max + sum) on the same GPU.

One query of 32 tokens against 1,000 candidate documents (dims 128 and 384,
documents stored as float32 and float16), timed in the same process, median
and p99 of --repeat calls after a warm-up, both synchronized:

- ragkernels: ragkernels._cuda.maxsim on ragged tokens (one (T, dim) matrix
  plus offsets, no padding); queries float32, float16 documents widened to
  float32 exactly, float32 accumulation.
- torch: the usual ColBERT scoring of a padded (C, L, dim) batch,
  (D @ q.T).max(dim=1).values.sum(-1); float16 documents multiply a float16
  query on tensor cores (float16 outputs), so that row compares different
  arithmetic and says so (max |difference| column).

Two document layouts: "uniform" (every document 180 tokens: torch's best
case, no padding) and "ragged" (lengths uniform in 1..359, mean 180: torch
pads to 359 and masks the padding with -inf before the max).

    python benchmarks/python/bench_rerank_cuda.py [--candidates 1000] [--doc-tokens 180]

Writes benchmarks/results/rerank_cuda.{json,md}. Needs a CUDA GPU, torch with
CUDA, and ragkernels built with its CUDA module; exits with a message
otherwise.
"""
import argparse
import sys

from _common import machine, versions, write_results
from bench_dense_cuda import gpu_median


def need_gpu():
    try:
        import torch
    except ImportError:
        sys.exit("bench_rerank_cuda: torch is not installed; this benchmark needs torch with CUDA")
    if not torch.cuda.is_available():
        sys.exit("bench_rerank_cuda: no CUDA GPU visible to torch; run this on a GPU machine")
    try:
        from ragkernels import _cuda
    except ImportError:
        sys.exit("bench_rerank_cuda: ragkernels was built without its CUDA module (needs nvcc at build time)")
    if not hasattr(_cuda, "maxsim") or _cuda.device_count() < 1:
        sys.exit("bench_rerank_cuda: ragkernels' CUDA module has no maxsim or sees no GPU")
    return torch, _cuda


def documents(torch, gen, lengths, dim):
    """Unit-norm tokens of len(lengths) documents: (ragged (T, dim), offsets
    (C + 1,), padded (C, max_len, dim) with zeros, mask (C, max_len))."""
    total = int(lengths.sum())
    tokens = torch.randn((total, dim), device="cuda", generator=gen)
    tokens /= tokens.norm(dim=1, keepdim=True)
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64, device="cuda")
    offsets[1:] = torch.cumsum(lengths, 0)
    width = int(lengths.max())
    mask = torch.arange(width, device="cuda")[None, :] < lengths[:, None]
    padded = torch.zeros((len(lengths), width, dim), device="cuda")
    padded[mask] = tokens  # row-major order of the mask = the ragged order
    return tokens, offsets, padded, mask


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, default=1000)
    p.add_argument("--doc-tokens", type=int, default=180)
    p.add_argument("--query-tokens", type=int, default=32)
    p.add_argument("--dims", type=int, nargs="+", default=[128, 384])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float16"])
    p.add_argument("--repeat", type=int, default=50)
    args = p.parse_args()
    torch, cuda = need_gpu()
    from torch.utils.dlpack import from_dlpack

    torch.backends.cuda.matmul.allow_tf32 = False  # float32 products on both sides
    gen = torch.Generator(device="cuda").manual_seed(0)
    n = args.candidates
    layouts = {
        "uniform": torch.full((n,), args.doc_tokens, dtype=torch.int64, device="cuda"),
        "ragged": torch.randint(1, 2 * args.doc_tokens, (n,), device="cuda", generator=gen),
    }
    candidates = torch.arange(n, dtype=torch.int64, device="cuda")[None, :].contiguous()
    query_offsets = torch.tensor([0, args.query_tokens], dtype=torch.int64, device="cuda")
    rows = []
    for dim in args.dims:
        q = torch.randn((args.query_tokens, dim), device="cuda", generator=gen)
        q /= q.norm(dim=1, keepdim=True)
        for layout, lengths in layouts.items():
            tokens, offsets, padded, mask = documents(torch, gen, lengths, dim)
            for dtype in args.dtypes:
                ragged = tokens.to(getattr(torch, dtype)).contiguous()
                dense = padded.to(ragged.dtype)
                tq = q.to(ragged.dtype)
                pad_mask = ~mask[:, :, None]

                def ours():
                    return cuda.maxsim(q, query_offsets, ragged, offsets, None, candidates)

                def theirs():
                    sim = dense @ tq.T  # (C, L, Lq)
                    if layout == "ragged":
                        sim = sim.masked_fill(pad_mask, float("-inf"))
                    return sim.max(dim=1).values.float().sum(-1)

                ours_s, ours_p99 = gpu_median(torch, ours, args.repeat)
                theirs_s, theirs_p99 = gpu_median(torch, theirs, args.repeat)
                got = from_dlpack(ours())[0]
                diff = (got - theirs()).abs().max().item()
                doc_bytes = ragged.numel() * ragged.element_size()
                row = {"dim": dim, "dtype": dtype, "layout": layout, "candidates": n,
                       "doc tokens": int(lengths.sum()), "query tokens": args.query_tokens,
                       "ragkernels ms": ours_s * 1e3, "ragkernels p99 ms": ours_p99 * 1e3,
                       "torch ms": theirs_s * 1e3, "torch p99 ms": theirs_p99 * 1e3,
                       "speedup": theirs_s / ours_s, "ragkernels GB/s": doc_bytes / ours_s / 1e9,
                       "max |difference|": diff}
                rows.append(row)
                print(row, flush=True)
            del tokens, offsets, padded, mask
            torch.cuda.empty_cache()
    props = torch.cuda.get_device_properties(0)
    meta = {"device": props.name, "memory_gb": props.total_memory / 2**30, "repeat": args.repeat,
            "torch_matmul_tf32": False, "machine": machine(),
            "versions": versions({"torch": "torch", "ragkernels": "ragkernels"}),
            "command": "python benchmarks/python/bench_rerank_cuda.py " + " ".join(sys.argv[1:])}
    columns = ["dim", "dtype", "layout", "ragkernels ms", "torch ms", "speedup", "ragkernels GB/s",
               "max |difference|"]
    table = write_results("rerank_cuda", rows, columns, meta)
    print(f"{props.name}: 1 query x {args.query_tokens} tokens, {n} candidates\n\n{table}")


if __name__ == "__main__":
    main()
