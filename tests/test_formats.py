"""The binary file format through Python: round trip, zero-copy, and every
way a file can be wrong raising a clear error that names file and fault."""
import os
import struct

import numpy as np
import pytest

import ragkernels as rk


@pytest.fixture
def sample(tmp_path):
    arrays = {
        "ids": np.arange(10, dtype=np.int64) * (2**62 // 10),
        "scores": np.linspace(-1, 1, 7, dtype=np.float32),
        "empty": np.zeros(0, np.float64),
        "bytes": np.frombuffer("héllo wörld".encode(), np.uint8),
        "half": np.ones(3, np.float16),
    }
    path = tmp_path / "sample.rk"
    rk.save_arrays(path, arrays, kind="test-kind")
    return path, arrays


def test_round_trip_is_exact_and_read_only(sample):
    path, arrays = sample
    loaded = rk.load_arrays(path, kind="test-kind")
    assert list(loaded) == list(arrays)
    for name, a in arrays.items():
        np.testing.assert_array_equal(loaded[name], a)
        assert loaded[name].dtype == a.dtype
        assert not loaded[name].flags.writeable
    assert loaded["bytes"].tobytes().decode() == "héllo wörld"


def test_arrays_outlive_the_dict_and_view_the_mapping(sample):
    path, _ = sample
    ids = rk.load_arrays(path)["ids"]
    assert ids.ctypes.data % 64 == 0  # payloads are 64-byte aligned inside the mapping
    assert not ids.flags.owndata
    assert ids[-1] == 9 * (2**62 // 10)


def test_truncated_file(sample):
    path, _ = sample
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    with pytest.raises(rk.FormatError, match=f"{path}.*truncated"):
        rk.load_arrays(path)


def test_flipped_byte_in_a_payload(sample):
    path, _ = sample
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(rk.FormatError, match=f"{path}.*checksum mismatch"):
        rk.load_arrays(path)


def test_future_version(sample):
    path, _ = sample
    data = bytearray(path.read_bytes())
    data[8:12] = struct.pack("<I", 7)
    path.write_bytes(bytes(data))
    with pytest.raises(rk.FormatError, match=f"{path}: format version 7 is newer"):
        rk.load_arrays(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "not-ours.rk"
    path.write_bytes(b"hello, this is not a ragkernels file" * 10)
    with pytest.raises(rk.FormatError, match=str(path)):
        rk.load_arrays(path)


def test_wrong_kind(sample):
    path, _ = sample
    with pytest.raises(rk.FormatError, match="kind"):
        rk.load_arrays(path, kind="bm25-index")


def test_missing_file(tmp_path):
    with pytest.raises(OSError, match="nope.rk"):
        rk.load_arrays(tmp_path / "nope.rk")


def test_format_error_is_a_value_error():
    assert issubclass(rk.FormatError, ValueError)


@pytest.mark.parametrize("arrays,err,match", [
    ({"a": np.zeros((2, 2))}, ValueError, "must be 1-D"),
    ({"a": np.zeros(6)[::2]}, ValueError, "contiguous"),
    ({"a": np.array(["x"])}, TypeError, "native-endian"),
    ({"a": np.zeros(3, ">f4")}, TypeError, "native-endian"),
    ({"x" * 33: np.zeros(3)}, ValueError, "name"),
])
def test_bad_arrays_raise_and_leave_no_file(tmp_path, arrays, err, match):
    with pytest.raises(err, match=match):
        rk.save_arrays(tmp_path / "out.rk", arrays)
    assert os.listdir(tmp_path) == []


def test_unwritable_target_leaves_no_temp_file(tmp_path):
    target = tmp_path / "is-a-directory"
    target.mkdir()
    with pytest.raises(OSError):
        rk.save_arrays(target, {"a": np.zeros(3)})
    assert os.listdir(tmp_path) == ["is-a-directory"]


# ---- hostile files (issue 14) -------------------------------------------------------

def _load_in_thread(load, path):
    """Runs load(path) in a daemon thread; returns its exception, or fails
    the test (after unblocking it) when it is still waiting after 20 s."""
    import threading
    outcome = {}

    def run():
        try:
            load(path)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # a writer lets a blocked open() return
        pytest.fail(f"{load.__qualname__} hung on a FIFO")
    return outcome.get("error")


@pytest.mark.parametrize("loader", ["load_arrays", "BM25Index", "ImpactIndex", "FlatIndex", "TermMatchIndex"])
def test_loaders_refuse_a_fifo_instead_of_hanging(tmp_path, loader):
    load = {"load_arrays": rk.load_arrays, "BM25Index": rk.sparse.BM25Index.load,
            "ImpactIndex": rk.sparse.ImpactIndex.load, "FlatIndex": rk.dense.FlatIndex.load,
            "TermMatchIndex": rk.rerank.TermMatchIndex.load}[loader]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    error = _load_in_thread(load, str(fifo))
    assert isinstance(error, OSError) and f"{fifo}: not a regular file" in str(error)


def test_loaders_refuse_a_directory(tmp_path):
    with pytest.raises(OSError, match=f"{tmp_path}"):
        rk.load_arrays(tmp_path)


def test_section_name_that_is_not_utf8_names_the_file(sample):
    from tests.reference.core import reseal
    path, _ = sample
    data = bytearray(path.read_bytes())
    assert data[128:131] == b"ids"  # the first entry's name
    data[128] = 0xFF
    path.write_bytes(reseal(bytes(data)))
    with pytest.raises(rk.FormatError, match=f"{path}: section 0 has a malformed name"):
        rk.load_arrays(path)


def test_file_kind_that_is_not_utf8_names_the_file(sample):
    from tests.reference.core import reseal
    path, _ = sample
    data = bytearray(path.read_bytes())
    data[16] = 0xC0  # an overlong lead byte: never valid
    path.write_bytes(reseal(bytes(data)))
    with pytest.raises(rk.FormatError, match=f"{path}: malformed file kind"):
        rk.load_arrays(path)


def test_reseal_leaves_a_valid_file_valid(sample):
    from tests.reference.core import reseal
    path, arrays = sample
    path.write_bytes(reseal(path.read_bytes()))
    np.testing.assert_array_equal(rk.load_arrays(path)["ids"], arrays["ids"])
