package dev.microvit;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.locks.StampedLock;

/**
 * A loaded microvit model (a {@code .mvit} blob): classifies 28×28 digits and
 * photos or drawings of them. A thin layer over the C ABI
 * ({@code include/microvit.h}) in {@code libmicrovit_jni}: the same checks,
 * status codes and messages, failures thrown as {@link MicrovitException}.
 *
 * <pre>{@code
 * try (Model model = Model.loadFile("models/microvit-seed.int8.mvit")) {
 *     int digit = model.classify(pixels);          // byte[784], row-major, 0 = background
 * }
 * }</pre>
 *
 * <p><b>Threads.</b> A model is immutable and safe to share: any number of
 * threads may classify with it at once, without locking on your side (each
 * thread runs in its own native scratch memory, made on its first call and
 * freed when the thread ends, or by {@link #releaseThreadCache()}). {@link
 * #close()} frees the native model exactly once: it waits for the calls in
 * flight, and every later call throws {@link IllegalStateException}. Arrays
 * passed in must not be modified by another thread during the call.
 *
 * <p><b>Memory.</b> The model lives in native memory until {@link #close()}
 * (there is no finalizer: use try-with-resources, or close it in
 * {@code onDestroy}). Calls read and write your arrays in place; only the
 * convenience methods that return a new array allocate.
 *
 * <p>The native library is {@code System.loadLibrary("microvit_jni")}, or
 * the file named by the system property {@code microvit.jni.path}.
 */
public final class Model implements AutoCloseable {
    static {
        String path = System.getProperty("microvit.jni.path");
        if (path != null && !path.isEmpty()) {
            System.load(new File(path).getAbsolutePath());
        } else {
            System.loadLibrary("microvit_jni");
        }
    }

    /** Guards {@link #handle}: calls hold it for reading, {@link #close()} for writing. */
    private final StampedLock lock = new StampedLock();
    /** The C ABI's {@code microvit_model *}; 0 once closed. */
    private long handle;
    /**
     * Set by {@link #close()} before it waits for the write lock: StampedLock
     * lets new readers in ahead of a waiting writer, so calls check this
     * first, and a model in constant use still closes.
     */
    private volatile boolean closing;

    private final int imageSide;
    private final int patchSide;
    private final int pixels;
    private final int classes;
    private final int tokens;
    private final int dim;
    private final int heads;
    private final String encoding;
    private final long parameterCount;
    private final Backend backend;

    private Model(long handle) {
        long[] d = new long[10];
        if (!nDescribe(handle, d)) {
            MicrovitException e = lastError();
            nFree(handle);
            throw e;
        }
        this.handle = handle;
        imageSide = (int) d[0];
        patchSide = (int) d[1];
        pixels = (int) d[2];
        classes = (int) d[3];
        tokens = (int) d[4];
        dim = (int) d[5];
        heads = (int) d[6];
        encoding = d[7] == 1 ? "f32" : d[7] == 2 ? "f16" : d[7] == 3 ? "int8" : "unknown";
        parameterCount = d[8];
        backend = Backend.ofCode((int) d[9]);
    }

    // ---------------------------------------------------------------- loading

    /** Loads a model from its bytes (copied: the array can be reused at once). */
    public static Model load(byte[] blob) {
        long h = nLoad(blob);
        if (h == 0) throw lastError();
        return new Model(h);
    }

    /**
     * Loads a model from a stream, read to its end (not closed): an Android
     * asset, {@code context.getAssets().open("microvit-seed.int8.mvit")}.
     */
    public static Model load(InputStream in) throws IOException {
        if (in == null) throw new MicrovitException(MicrovitException.NULL_ARGUMENT, "the stream is null");
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        byte[] chunk = new byte[16384];
        for (int n; (n = in.read(chunk)) > 0; ) bytes.write(chunk, 0, n);
        return load(bytes.toByteArray());
    }

    /** Loads a model file (IO_ERROR if it cannot be read, INVALID_MODEL above 256 MiB). */
    public static Model loadFile(String path) {
        long h = nLoadFile(path == null ? null : path.getBytes(StandardCharsets.UTF_8));
        if (h == 0) throw lastError();
        return new Model(h);
    }

    /** Loads a model file. */
    public static Model loadFile(File file) {
        return loadFile(file == null ? null : file.getPath());
    }

    // ------------------------------------------------------------ description

    /** Images are imageSide × imageSide pixels (28). */
    public int imageSide() {
        return imageSide;
    }

    /** Patches are patchSide × patchSide pixels. */
    public int patchSide() {
        return patchSide;
    }

    /** The bytes of one image: imageSide² (784). */
    public int pixels() {
        return pixels;
    }

    /** Classes, so logits per image (10). */
    public int classes() {
        return classes;
    }

    /** Tokens: the class token and one per patch (17). */
    public int tokens() {
        return tokens;
    }

    /** Embedding dimension. */
    public int dim() {
        return dim;
    }

    /** Attention heads. */
    public int heads() {
        return heads;
    }

    /** How the weights are stored: {@code "f32"}, {@code "f16"} or {@code "int8"}. */
    public String encoding() {
        return encoding;
    }

    /** Parameters of the trained network. */
    public long parameterCount() {
        return parameterCount;
    }

    /** The backend this model runs on (never AUTO), chosen when it was loaded. */
    public Backend backend() {
        return backend;
    }

    // --------------------------------------------------------- 28 × 28 digits

    /** The class of one image: {@link #pixels()} bytes, row-major, 0 = background as in MNIST. */
    public int classify(byte[] pixels) {
        return classify(pixels, null, null);
    }

    /** The class; its logits into {@code logits} (at least {@link #classes()} floats), if not null. */
    public int classify(byte[] pixels, float[] logits) {
        return classify(pixels, logits, null);
    }

    /** The class; logits and softmax probabilities into the arrays that are not null. */
    public int classify(byte[] pixels, float[] logits, float[] probabilities) {
        if (logits != null && logits == probabilities) {
            // The C ABI refuses overlapping outputs, but a VM may hand it two
            // copies of one array (-Xcheck:jni does): refuse it here.
            throw new MicrovitException(MicrovitException.INVALID_ARGUMENT,
                    "logits and probabilities are the same array: outputs must not overlap");
        }
        int n = pixels == null ? 0 : pixels.length;
        long stamp = acquire();
        int c;
        try {
            c = nClassify(handle, pixels, null, 0, n, logits, probabilities);
        } finally {
            lock.unlockRead(stamp);
        }
        if (c < 0) throw lastError();
        return c;
    }

    /** The class of the image between the buffer's position and limit (which must be {@link #pixels()} bytes). */
    public int classify(ByteBuffer pixels) {
        return classify(pixels, null);
    }

    /** The class, and its logits into {@code logits} if not null. The buffer's position does not move. */
    public int classify(ByteBuffer pixels, float[] logits) {
        Input in = Input.of(pixels);
        long stamp = acquire();
        int c;
        try {
            c = nClassify(handle, in.array, in.direct, in.offset, in.length, logits, null);
        } finally {
            lock.unlockRead(stamp);
        }
        if (c < 0) throw lastError();
        return c;
    }

    /** A new array with the logits of one image. */
    public float[] logits(byte[] pixels) {
        float[] logits = new float[classes];
        classify(pixels, logits, null);
        return logits;
    }

    /**
     * The class of one image, its logits (if {@code logits} is not null) and
     * what the attention saw into {@code attention}: the class token's
     * attention, {@link #heads()} rows of {@link #tokens()} floats (token 0 is
     * the class token, then the patches row-major; each row sums to 1).
     */
    public int attention(byte[] pixels, float[] logits, float[] attention) {
        int n = pixels == null ? 0 : pixels.length;
        long stamp = acquire();
        int c;
        try {
            c = nAttention(handle, pixels, null, 0, n, logits, attention);
        } finally {
            lock.unlockRead(stamp);
        }
        if (c < 0) throw lastError();
        return c;
    }

    /** A new array with one image's attention, heads × tokens floats. */
    public float[] attention(byte[] pixels) {
        float[] attention = new float[heads * tokens];
        attention(pixels, null, attention);
        return attention;
    }

    /** The classes of images stored back to back ({@code pixels.length} a multiple of {@link #pixels()}). */
    public int[] classifyBatch(byte[] pixels) {
        int[] out = new int[pixels == null ? 0 : pixels.length / this.pixels];
        classifyBatch(pixels, out, null);
        return out;
    }

    /**
     * Classifies images stored back to back: classes into {@code classes} (one
     * per image) and logits into {@code logits} (classes() per image, image i's
     * at {@code i * classes()}), each optional (null). The same as classifying
     * each image in turn.
     */
    public void classifyBatch(byte[] pixels, int[] classes, float[] logits) {
        int n = pixels == null ? 0 : pixels.length;
        batch(pixels, null, 0, n, classes, logits);
    }

    /** {@link #classifyBatch(byte[], int[], float[])} on the bytes between the buffer's position and limit. */
    public void classifyBatch(ByteBuffer pixels, int[] classes, float[] logits) {
        Input in = Input.of(pixels);
        batch(in.array, in.direct, in.offset, in.length, classes, logits);
    }

    private void batch(byte[] array, ByteBuffer direct, int offset, int length, int[] classes, float[] logits) {
        int images = length / pixels; // a remainder is the C ABI's INVALID_ARGUMENT
        if (length % pixels != 0) images++;
        long stamp = acquire();
        boolean ok;
        try {
            ok = nClassifyBatch(handle, images, array, direct, offset, length, classes, logits, null);
        } finally {
            lock.unlockRead(stamp);
        }
        if (!ok) throw lastError();
    }

    // ------------------------------------------------- photos and drawings

    /**
     * Classifies a photo or drawing of a digit of any size (up to 8192 × 8192)
     * after the engine's MNIST-style preprocessing (docs/PREPROCESSING.md):
     * {@code height} rows of {@code width} pixels in {@code format}, row y at
     * {@code y * stride} ({@code stride} 0: rows packed). An image with no
     * digit gives a result whose {@link ImageResult#found()} is false.
     */
    public ImageResult classifyImage(byte[] pixels, int width, int height, int stride, PixelFormat format,
                                     Polarity polarity) {
        int n = pixels == null ? 0 : pixels.length;
        return image(pixels, null, 0, n, width, height, stride, format, polarity);
    }

    /** {@link #classifyImage(byte[], int, int, int, PixelFormat, Polarity)} on the bytes from the buffer's position to its limit. */
    public ImageResult classifyImage(ByteBuffer pixels, int width, int height, int stride, PixelFormat format,
                                     Polarity polarity) {
        Input in = Input.of(pixels);
        return image(in.array, in.direct, in.offset, in.length, width, height, stride, format, polarity);
    }

    private ImageResult image(byte[] array, ByteBuffer direct, int offset, int length, int width, int height,
                              int stride, PixelFormat format, Polarity polarity) {
        float[] logits = new float[classes];
        byte[] input = new byte[pixels];
        int[] box = new int[6];
        long stamp = acquire();
        int c;
        try {
            c = nClassifyImage(handle, array, direct, offset, length, width, height, stride,
                    format == null ? 0 : format.code(), polarity == null ? -1 : polarity.code(), logits, input, box);
        } finally {
            lock.unlockRead(stamp);
        }
        if (c >= 0) return new ImageResult(c, logits, input, box, null);
        MicrovitException e = lastError();
        if (e.status() == MicrovitException.NO_DIGIT) return new ImageResult(-1, null, null, null, e.detail());
        throw e;
    }

    // ------------------------------------------------------- process-wide

    /** The library version, e.g. {@code "0.2.0"}. */
    public static String version() {
        return new String(nVersion(), StandardCharsets.UTF_8);
    }

    /** The library version as MAJOR * 10000 + MINOR * 100 + PATCH (200 for 0.2.0). */
    public static int versionNumber() {
        return nVersionNumber();
    }

    /**
     * Chooses the backend of the models loaded after this call, process-wide
     * (a loaded model keeps its own). BACKEND_UNAVAILABLE if this CPU or build
     * does not have it.
     */
    public static void setDefaultBackend(Backend backend) {
        if (!nSetBackend(backend == null ? -1 : backend.code())) throw lastError();
    }

    /** The backend a model loaded now would run on (AUTO resolved, so never AUTO). */
    public static Backend defaultBackend() {
        return Backend.ofCode(nGetBackend());
    }

    /** Whether a backend is built into the library and supported by this CPU. */
    public static boolean backendAvailable(Backend backend) {
        return backend != null && nBackendAvailable(backend.code());
    }

    /**
     * Frees the calling thread's native scratch memory (a few KB, about 100 KB
     * once it has classified an image), which a thread's first call makes.
     * Thread exit frees it anyway; call this before parking a pool thread for good.
     */
    public static void releaseThreadCache() {
        nReleaseThreadCache();
    }

    /** The native library's name for a backend code (tests compare it with {@link Backend#label()}). */
    static String nativeBackendName(int code) {
        return new String(nBackendName(code), StandardCharsets.UTF_8);
    }

    /**
     * Times the C ABI itself, for the overhead measurement: nanoseconds for
     * {@code microvit_classify} on each of the {@code count} images in
     * {@code images} ({@code batch} false), or one {@code microvit_classify_batch}
     * on them all (true), timed inside Rust.
     */
    long timeNative(byte[] images, int count, boolean batch) {
        long stamp = acquire();
        long ns;
        try {
            ns = nTimeNative(handle, images, count, batch);
        } finally {
            lock.unlockRead(stamp);
        }
        if (ns < 0) throw lastError();
        return ns;
    }

    // ---------------------------------------------------------------- closing

    /**
     * Frees the native model. Waits for calls in flight on other threads;
     * later calls throw {@link IllegalStateException}. Closing again does nothing.
     */
    @Override
    public void close() {
        closing = true;
        long stamp = lock.writeLock();
        try {
            if (handle != 0) {
                nFree(handle);
                handle = 0;
            }
        } finally {
            lock.unlockWrite(stamp);
        }
    }

    /** Whether {@link #close()} has been called. */
    public boolean isClosed() {
        long stamp = lock.readLock();
        try {
            return handle == 0;
        } finally {
            lock.unlockRead(stamp);
        }
    }

    @Override
    public String toString() {
        return "microvit.Model(" + encoding + ", " + parameterCount + " parameters, " + imageSide + "x" + imageSide
                + ", backend " + (backend == null ? "?" : backend.label()) + (isClosed() ? ", closed" : "") + ")";
    }

    /** Takes the read lock; throws (without it) if the model is closed. */
    private long acquire() {
        if (closing) throw closed();
        long stamp = lock.readLock();
        if (handle == 0) {
            lock.unlockRead(stamp);
            throw closed();
        }
        return stamp;
    }

    private static IllegalStateException closed() {
        return new IllegalStateException("microvit: this Model is closed");
    }

    /** The exception for this thread's last failed native call. */
    private static MicrovitException lastError() {
        int status = nLastStatus();
        byte[] message = nLastMessage();
        return new MicrovitException(status, message == null ? "" : new String(message, StandardCharsets.UTF_8));
    }

    /** A ByteBuffer's bytes from position to limit, as the natives take them: an array or a direct buffer. */
    private static final class Input {
        final byte[] array;
        final ByteBuffer direct;
        final int offset;
        final int length;

        private Input(byte[] array, ByteBuffer direct, int offset, int length) {
            this.array = array;
            this.direct = direct;
            this.offset = offset;
            this.length = length;
        }

        static Input of(ByteBuffer b) {
            if (b == null) return new Input(null, null, 0, 0);
            if (b.isDirect()) return new Input(null, b, b.position(), b.remaining());
            if (b.hasArray()) return new Input(b.array(), null, b.arrayOffset() + b.position(), b.remaining());
            byte[] copy = new byte[b.remaining()]; // a read-only heap buffer
            b.duplicate().get(copy);
            return new Input(copy, null, 0, copy.length);
        }
    }

    // The native methods, in bindings/java/src/lib.rs (Java_dev_microvit_Model_*).
    // Each failure returns 0, -1, false or null and records the status and
    // message for nLastStatus / nLastMessage on the same thread.
    private static native long nLoad(byte[] blob);
    private static native long nLoadFile(byte[] pathUtf8);
    private static native void nFree(long handle);
    private static native boolean nDescribe(long handle, long[] out);
    private static native int nClassify(long handle, byte[] pixels, ByteBuffer direct, int offset, int length,
                                        float[] logits, float[] probs);
    private static native int nAttention(long handle, byte[] pixels, ByteBuffer direct, int offset, int length,
                                         float[] logits, float[] attention);
    private static native boolean nClassifyBatch(long handle, int images, byte[] pixels, ByteBuffer direct,
                                                 int offset, int length, int[] classes, float[] logits, float[] probs);
    private static native int nClassifyImage(long handle, byte[] pixels, ByteBuffer direct, int offset, int length,
                                             int width, int height, int stride, int format, int polarity,
                                             float[] logits, byte[] input, int[] digit);
    private static native long nTimeNative(long handle, byte[] images, int count, boolean batch);
    private static native boolean nSetBackend(int backend);
    private static native int nGetBackend();
    private static native boolean nBackendAvailable(int backend);
    private static native byte[] nBackendName(int backend);
    private static native byte[] nVersion();
    private static native int nVersionNumber();
    private static native int nLastStatus();
    private static native byte[] nLastMessage();
    private static native void nReleaseThreadCache();
}
