"""The Python binding against the Rust engine: accuracy, bit-exact logits,
backends, attention, conversion, batch == single."""

import threading
import time

import numpy as np
import pytest

import microvit
from conftest import CORRECT, ENCODINGS, FIXTURES, MODELS, load


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as microvit_engine::crc32c."""
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283


def test_properties():
    m = load("int8")
    assert (m.encoding, m.shape, m.side, m.pixels, m.classes) == ("int8", (28, 28), 28, 784, 10)
    assert (m.heads, m.tokens, m.parameters, m.blob_size) == (2, 17, 6794, 5824)
    assert m.backend in microvit.available_backends()
    assert "scalar" in microvit.available_backends()
    assert m.to_bytes() == (MODELS / "microvit-seed.int8.mvit").read_bytes()
    assert microvit.__version__ == "0.2.0"
    assert "int8" in repr(m)


def test_load_from_bytes_path_and_str(encoding):
    path = MODELS / ENCODINGS[encoding]
    for source in (path, str(path), path.read_bytes(), bytearray(path.read_bytes())):
        assert microvit.Model.load(source).encoding == encoding
    assert microvit.Model(path).encoding == encoding


def test_accuracy_is_the_documented_one(encoding, images, labels):
    classes, logits = load(encoding).classify(images)
    assert classes.shape == (10000,) and classes.dtype == np.int64
    assert logits.shape == (10000, 10) and logits.dtype == np.float32
    assert int((classes == labels).sum()) == CORRECT[encoding]
    assert (classes == logits.argmax(axis=1)).all()


def test_batch_equals_single_bit_for_bit(encoding, images):
    m = load(encoding)
    _, batch_logits = m.classify(images[:2000])
    for i in range(2000):
        cls, logits = m.classify(images[i])
        assert cls == int(batch_logits[i].argmax())
        assert np.array_equal(logits, batch_logits[i]), i
        assert m.predict(images[i]) == cls
    # [N, 784] and classify_batch are the same call.
    _, flat = m.classify_batch(images[:2000].reshape(-1, 784))
    assert np.array_equal(flat, batch_logits)
    out = np.full((2000, 10), np.nan, np.float32)
    classes, same = m.classify_batch(images[:2000], out=out)
    assert same is out and np.array_equal(out, batch_logits)
    assert np.array_equal(classes, batch_logits.argmax(1))
    cls, logits = m.classify(images[5].reshape(784))
    assert np.array_equal(logits, batch_logits[5])


def test_f32_logits_match_pytorch(images):
    torch_logits = np.load(FIXTURES / "microvit-seed.logits.npy")
    _, logits = load("f32").classify(images)
    assert np.abs(logits - torch_logits).max() < 1e-4
    assert (logits.argmax(1) == torch_logits.argmax(1)).all()


def test_int8_logits_reproduce_the_committed_checksum_on_every_backend(images):
    committed = int((FIXTURES / "microvit-seed.int8.logits.crc32c").read_text().strip(), 16)
    m = load("int8")
    for backend in microvit.available_backends():
        m.set_backend(backend)
        assert m.backend == backend
        _, logits = m.classify(images)
        # The engine's float logits are its Q.16 integers / 65536, exactly.
        fixed = (logits.astype(np.float64) * 65536).astype("<i4")
        assert np.array_equal(fixed / 65536, logits)
        assert crc32c(fixed.tobytes()) == committed, backend


def test_set_backend_scalar_and_auto():
    m = load("int8")
    fastest = m.backend
    m.set_backend("scalar")
    assert m.backend == "scalar"
    m.set_backend("auto")
    assert m.backend == fastest
    # f32 always runs the scalar reference pass.
    f32 = load("f32")
    f32.set_backend("auto")
    assert f32.backend == "scalar"


def test_input_is_read_in_any_layout(images):
    m = load("int8")
    _, expected = m.classify(images[:64])
    flipped = np.ascontiguousarray(images[:64, :, ::-1])[:, :, ::-1]  # a non-contiguous view of the same pixels
    assert not flipped.flags.c_contiguous
    _, got = m.classify(flipped)
    assert np.array_equal(got, expected)
    fortran = np.asfortranarray(images[3])
    assert np.array_equal(m.classify(fortran)[1], expected[3])
    # A read-only array (np.frombuffer) is fine.
    assert not images.flags.writeable
    assert m.classify(images[:0])[1].shape == (0, 10)


def test_attention(encoding, images):
    m = load(encoding)
    for i in range(8):
        cls, logits, attention = m.attention(images[i])
        assert attention.shape == (2, 17) and attention.dtype == np.float32
        assert np.allclose(attention.sum(axis=1), 1.0, atol=1e-3)
        plain_cls, plain_logits = m.classify(images[i])
        assert cls == plain_cls and np.array_equal(logits, plain_logits)


def test_f32_attention_matches_pytorch(images):
    torch_attention = np.load(FIXTURES / "microvit-seed.cls_attention.npy")
    m = load("f32")
    for i in range(torch_attention.shape[0]):
        attention = m.attention(images[i])[2]
        assert np.abs(attention - torch_attention[i].reshape(attention.shape)).max() < 1e-5


def canvas(digit, height=120, width=90, top=30, left=20):
    """An MNIST digit drawn dark on light grey paper, RGB."""
    paper = np.full((height, width), 200, np.uint8)
    paper[top : top + 28, left : left + 28] = 200 - (digit.astype(np.uint16) * 180 // 255).astype(np.uint8)
    return np.repeat(paper[:, :, None], 3, axis=2)


def test_classify_image(images, labels):
    m = load("int8")
    correct = 0
    for i in range(50):
        photo = canvas(images[i])
        result = m.classify_image(photo)
        assert result["input"].shape == (28, 28) and result["input"].dtype == np.uint8
        assert result["polarity"] == "dark-on-light"
        x, y, w, h = result["box"]
        assert 20 <= x and 30 <= y and x + w <= 48 and y + h <= 58
        # The same input through classify gives the same logits.
        assert np.array_equal(m.classify(result["input"])[1], result["logits"])
        # Gray, RGBA and BGRA read the same picture.
        gray = m.classify_image(np.ascontiguousarray(photo[:, :, 0]))
        rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 255, np.uint8)], axis=2)
        assert np.array_equal(gray["logits"], result["logits"])
        assert np.array_equal(m.classify_image(rgba)["logits"], result["logits"])
        assert np.array_equal(m.classify_image(rgba, bgra=True)["logits"], result["logits"])
        correct += result["class"] == labels[i]
    assert correct >= 45


def test_classify_image_no_digit():
    m = load("int8")
    with pytest.raises(microvit.NoDigitError, match="blank"):
        m.classify_image(np.full((64, 64), 255, np.uint8))
    assert issubclass(microvit.NoDigitError, microvit.Error)


def test_convert_reproduces_the_shipped_blobs(calibration):
    st = MODELS / "microvit-seed.safetensors"
    assert microvit.convert(st, encoding="f32") == (MODELS / "microvit-seed.mvit").read_bytes()
    # Byte for byte only with half's `std` on, as in the workspace build
    # (Cargo.toml says why).
    f16 = microvit.convert(st.read_bytes(), encoding="f16")
    assert f16 == (MODELS / "microvit-seed.f16.mvit").read_bytes()
    int8 = microvit.convert(str(st), encoding="int8", calibration=calibration)
    assert int8 == (MODELS / "microvit-seed.int8.mvit").read_bytes()
    assert microvit.convert(st, calibration=calibration.tobytes()) == int8
    assert microvit.Model.load(int8).encoding == "int8"


def test_bench_times_inside_rust(images):
    m = load("int8")
    for batch in (False, True):
        result = m.bench(images[:1000], rounds=3, batch=batch)
        assert 0 < result["min_us"] <= result["median_us"] < 1000
        assert (result["rounds"], result["digits"], result["backend"]) == (3, 1000, m.backend)


def test_batch_calls_release_the_gil(images):
    """While bench runs in another thread, this one keeps running: with the
    GIL held, its loop would stall for the whole bench."""
    m = load("f32")  # the slowest pass (tens of µs a digit): a long bench
    window = {}

    def work():
        window["start"] = time.perf_counter()
        m.bench(images[:2000], rounds=5)
        window["end"] = time.perf_counter()

    thread = threading.Thread(target=work)
    stamps = []
    thread.start()
    while thread.is_alive():
        stamps.append(time.perf_counter())
    thread.join()
    start, end = window["start"], window["end"]
    inside = [t for t in stamps if start <= t <= end]
    gaps = np.diff([start, *inside, end])
    assert end - start > 0.05, "bench too short to observe"
    assert len(inside) > 1000 and gaps.max() < (end - start) / 2, (end - start, len(inside), gaps.max())


def test_threads_share_a_model(images):
    m = load("int8")
    _, expected = m.classify(images)
    results = [None] * 4

    def work(k):
        results[k] = m.classify(images)[1]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert np.array_equal(r, expected)


def test_classify_one_into_out(encoding, images):
    m = load(encoding)
    _, expected = m.classify(images[:50])
    out = np.full(10, np.nan, np.float32)
    for i in range(50):
        cls, same = m.classify(images[i], out)
        assert same is out and np.array_equal(out, expected[i]) and cls == int(expected[i].argmax())
        assert m.classify(images[i], out=out)[1] is out
    # A batch's out goes to classify_batch.
    batch_out = np.empty((50, 10), np.float32)
    assert m.classify(images[:50], batch_out)[1] is batch_out and np.array_equal(batch_out, expected)


def test_returned_logits_are_never_overwritten(images):
    """classify(image) refills a logits array it returned before only once
    nothing else refers to it: results kept, viewed, weakly referenced or
    changed in place keep their values."""
    import weakref

    m = load("int8")
    _, expected = m.classify(images[:300])
    kept = [m.classify(images[i])[1] for i in range(100)]
    for i, logits in enumerate(kept):
        assert np.array_equal(logits, expected[i]), i
    views, refs = [], []
    for i in range(100, 300):
        cls, logits = m.classify(images[i])
        assert logits.shape == (10,) and logits.dtype == np.float32 and logits.flags.writeable
        assert logits.flags.owndata and logits.base is None
        assert np.array_equal(logits, expected[i]) and cls == int(expected[i].argmax())
        if i % 3 == 0:
            views.append((i, logits[2:]))
        elif i % 3 == 1:
            refs.append((i, weakref.ref(logits)))
        elif i % 5 == 0:
            logits.shape = (2, 5)  # changed in place, then dropped
        elif i % 7 == 0:
            logits.flags.writeable = False
        del logits
    for i, view in views:
        assert np.array_equal(view, expected[i][2:]), i
    for i, ref in refs:
        logits = ref()
        assert logits is None or np.array_equal(logits, expected[i]), i


def test_single_calls_beside_a_detached_batch(images):
    """While another thread's call holds a numpy borrow with the GIL
    released, one-image calls take the checked borrows: they still work,
    and writing into memory that call is reading is refused, not raced."""
    m = load("f32")  # a long bench
    digits = np.array(images[:2000])
    alias = digits.reshape(-1).view(np.float32)[:10]  # float32 [10] inside `digits`
    _, expected = m.classify(images[:20])
    thread = threading.Thread(target=lambda: m.bench(digits, rounds=5))
    refused, calls = 0, 0
    thread.start()
    while thread.is_alive():
        calls += 1
        i = calls % 20
        cls, logits = m.classify(images[i])
        assert np.array_equal(logits, expected[i]) and m.predict(images[i]) == cls
        try:
            m.classify(images[i], alias)
        except microvit.Error as e:
            assert "out:" in str(e)
            refused += 1
    thread.join()
    assert refused > 0, calls
