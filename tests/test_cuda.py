"""CUDA ops against their CPU oracle; skipped where no GPU is present."""
import numpy as np
import pytest

import ragkernels as rk
from ragkernels import _backend

pytestmark = pytest.mark.cuda
torch = pytest.importorskip("torch")
if not (_backend.cuda_available() and torch.cuda.is_available()):
    pytest.skip("no CUDA GPU or ragkernels built without CUDA", allow_module_level=True)


@pytest.mark.parametrize("rows,n,k", [(1, 1, 1), (19, 111, 7), (64, 5000, 100), (3, 5, 9)])
def test_topk_cuda_matches_cpu(rows, n, k):
    rng = np.random.default_rng(rows + n + k)
    scores = rng.integers(0, 20, size=(rows, n)).astype(np.float32)
    scores[0, 0] = np.nan
    ids, top = rk.topk(torch.from_numpy(scores).cuda(), k)
    assert ids.is_cuda and ids.dtype == torch.int64
    cpu_ids, cpu_top = rk.topk(scores, k)
    np.testing.assert_array_equal(ids.cpu().numpy(), cpu_ids)
    np.testing.assert_array_equal(top.cpu().numpy(), cpu_top)


def test_topk_cuda_rejects_float64():
    with pytest.raises(TypeError, match="float32"):
        rk.topk(torch.zeros((2, 3), dtype=torch.float64, device="cuda"), 1)
