package dev.microvit;

import java.awt.image.BufferedImage;
import java.awt.image.DataBufferByte;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;
import javax.imageio.ImageIO;

/**
 * The Java binding's tests, a plain runner (no JUnit): prints one line per
 * test and "N passed, M failed", and exits non-zero on any failure.
 *
 * <pre>
 * java -Dmicrovit.jni.path=target/release/libmicrovit_jni.so -Dmicrovit.repo=. \
 *      -Dmicrovit.cli=target/release/microvit -cp CLASSES dev.microvit.ModelTest [NAME...]
 * </pre>
 *
 * {@code microvit.cli}: the release CLI, for the cross-checks (logits of
 * {@code eval --logits-out}, attention of {@code explain --attention-out});
 * {@code microvit.leak.cycles}: load/classify/close cycles of the leak test
 * (100000).
 */
public final class ModelTest {
    static final File REPO = new File(System.getProperty("microvit.repo", "."));
    static final File MODELS = new File(REPO, "models");
    static final String[][] ENCODINGS = {
        {"int8", "microvit-seed.int8.mvit", "9540"}, {"f16", "microvit-seed.f16.mvit", "9540"},
        {"f32", "microvit-seed.mvit", "9540"},
    };
    static final int N = 10000;
    static final int PIXELS = 784;

    static byte[] images;
    static byte[] labels;

    public static void main(String[] args) throws Exception {
        images = readIdx(new File(REPO, "data/t10k-images-idx3-ubyte.gz"), 0x803, 16);
        labels = readIdx(new File(REPO, "data/t10k-labels-idx1-ubyte.gz"), 0x801, 8);
        check(images.length == N * PIXELS && labels.length == N, "the MNIST test set has 10,000 digits");

        List<String> only = Arrays.asList(args);
        Object[][] tests = {
            {"version and backends", (Test) ModelTest::versionAndBackends},
            {"shape", (Test) ModelTest::shape},
            {"accuracy 95.40 % (f16, f32, int8)", (Test) ModelTest::accuracy},
            {"logits identical to the CLI's eval --logits-out", (Test) ModelTest::identicalToCli},
            {"single calls (byte[], heap and direct ByteBuffer) == batch", (Test) ModelTest::singleEqualsBatch},
            {"attention identical to the CLI's explain --attention-out", (Test) ModelTest::attention},
            {"photos and drawings: classifyImage", (Test) ModelTest::classifyImage},
            {"realistic PNG/PGM/PPM images: class and input identical to the CLI's", (Test) ModelTest::realistic},
            {"errors: status and message", (Test) ModelTest::errors},
            {"closed model", (Test) ModelTest::closed},
            {"threads share a model; close waits for them", (Test) ModelTest::threads},
            {"no leaks: load/classify/close cycles, RSS flat", (Test) ModelTest::leaks},
        };
        int passed = 0, failed = 0;
        for (Object[] t : tests) {
            String name = (String) t[0];
            if (!only.isEmpty() && only.stream().noneMatch(name::startsWith)) continue;
            long start = System.nanoTime();
            try {
                ((Test) t[1]).run();
                passed++;
                System.out.printf("ok    %s (%.1f s)%n", name, (System.nanoTime() - start) / 1e9);
            } catch (Throwable e) {
                failed++;
                System.out.printf("FAIL  %s: %s%n", name, e);
                e.printStackTrace(System.out);
            }
        }
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    interface Test {
        void run() throws Exception;
    }

    // ------------------------------------------------------------------ tests

    static void versionAndBackends() {
        check(Model.version().matches("\\d+\\.\\d+\\.\\d+"), "version " + Model.version());
        String[] v = Model.version().split("\\.");
        int number = Integer.parseInt(v[0]) * 10000 + Integer.parseInt(v[1]) * 100 + Integer.parseInt(v[2]);
        check(Model.versionNumber() == number, "versionNumber " + Model.versionNumber() + " for " + Model.version());
        for (Backend b : Backend.values()) {
            check(Model.nativeBackendName(b.code()).equals(b.label()), b + " is " + Model.nativeBackendName(b.code()));
        }
        check(Model.nativeBackendName(99).equals("unknown"), "code 99 is unknown");
        check(Backend.AUTO.isAvailable() && Backend.SCALAR.isAvailable(), "auto and scalar are always available");
        Backend d = Model.defaultBackend();
        check(d != null && d != Backend.AUTO && d.isAvailable(), "default backend " + d);
        System.out.println("      library " + Model.version() + ", default backend " + d.label());
    }

    static void shape() throws IOException {
        try (Model m = Model.loadFile(new File(MODELS, "microvit-seed.int8.mvit"))) {
            check(m.imageSide() == 28 && m.pixels() == 784 && m.classes() == 10 && m.tokens() == 17, m.toString());
            check(m.patchSide() == 7 && m.heads() == 2 && m.dim() == 32, m.toString());
            check(m.encoding().equals("int8") && m.parameterCount() == 6794, m.toString());
            check(m.backend() == Model.defaultBackend(), m.backend() + " vs " + Model.defaultBackend());
        }
        try (InputStream in = new FileInputStream(new File(MODELS, "microvit-seed.mvit")); Model m = Model.load(in)) {
            check(m.encoding().equals("f32") && m.backend() == Backend.SCALAR, "f32 runs the scalar reference: " + m);
        }
    }

    static void accuracy() throws IOException {
        for (String[] e : ENCODINGS) {
            try (Model m = Model.load(Files.readAllBytes(new File(MODELS, e[1]).toPath()))) {
                int[] classes = m.classifyBatch(images);
                int correct = 0;
                for (int i = 0; i < N; i++) if (classes[i] == labels[i]) correct++;
                System.out.printf("      %-4s %s: accuracy %.2f %% (%d / %d)%n", e[0], m.backend().label(),
                        correct * 100.0 / N, correct, N);
                int want = Integer.parseInt(e[2]);
                check(correct == want, e[0] + ": " + correct + " correct, expected " + want);
            }
        }
    }

    static void identicalToCli() throws Exception {
        File cli = cli();
        for (String[] e : ENCODINGS) {
            for (Backend backend : new Backend[] {null, Backend.SCALAR}) {
                if (backend != null && !e[0].equals("int8")) continue; // f32 is scalar anyway; f16 scalar is slow
                if (backend != null) Model.setDefaultBackend(backend);
                try (Model m = Model.loadFile(new File(MODELS, e[1]).getPath())) {
                    Model.setDefaultBackend(Backend.AUTO);
                    File out = File.createTempFile("microvit-java-logits", ".npy");
                    try {
                        String stdout = run(m.backend(), cli.getPath(), "eval", new File(MODELS, e[1]).getPath(),
                                "--logits-out", out.getPath());
                        String accuracy = String.format(Locale.ROOT, "accuracy  %.2f %%", Integer.parseInt(e[2]) / 100.0);
                        check(stdout.contains(accuracy), "CLI eval: " + stdout);
                        float[] expected = readNpyF32(out, new int[] {N, 10});
                        float[] logits = new float[N * 10];
                        int[] classes = new int[N];
                        m.classifyBatch(images, classes, logits);
                        int sameLogits = 0, sameClass = 0;
                        for (int i = 0; i < N; i++) {
                            boolean same = true;
                            for (int k = 0; k < 10; k++) {
                                same &= Float.floatToRawIntBits(logits[i * 10 + k])
                                        == Float.floatToRawIntBits(expected[i * 10 + k]);
                            }
                            if (same) sameLogits++;
                            if (classes[i] == argmax(expected, i * 10, 10)) sameClass++;
                        }
                        System.out.printf("      %-4s %-10s: %d / %d digits with bit-identical logits, %d / %d the same class%n",
                                e[0], m.backend().label(), sameLogits, N, sameClass, N);
                        check(sameLogits == N && sameClass == N, e[0] + " on " + m.backend() + ": differs from the CLI");
                    } finally {
                        out.delete();
                    }
                } finally {
                    Model.setDefaultBackend(Backend.AUTO);
                }
            }
        }
    }

    static void singleEqualsBatch() throws IOException {
        try (Model m = Model.loadFile(new File(MODELS, "microvit-seed.int8.mvit"))) {
            float[] batch = new float[N * 10];
            int[] classes = new int[N];
            m.classifyBatch(images, classes, batch);
            ByteBuffer direct = ByteBuffer.allocateDirect(images.length);
            direct.put(images).flip();
            float[] logits = new float[10];
            float[] probs = new float[10];
            for (int i = 0; i < N; i++) {
                float[] want = Arrays.copyOfRange(batch, i * 10, i * 10 + 10);
                byte[] one = Arrays.copyOfRange(images, i * PIXELS, (i + 1) * PIXELS);
                check(m.classify(one, logits, probs) == classes[i] && Arrays.equals(logits, want), "byte[] " + i);
                float sum = 0;
                for (float p : probs) sum += p;
                check(Math.abs(sum - 1) < 1e-4 && argmax(probs, 0, 10) == classes[i], "probabilities " + i);
                ByteBuffer heap = ByteBuffer.wrap(images, i * PIXELS, PIXELS);
                check(m.classify(heap, logits) == classes[i] && Arrays.equals(logits, want), "heap buffer " + i);
                check(heap.position() == i * PIXELS, "the buffer's position does not move");
                direct.limit((i + 1) * PIXELS).position(i * PIXELS);
                check(m.classify(direct, logits) == classes[i] && Arrays.equals(logits, want), "direct buffer " + i);
                check(m.classify(one) == classes[i], "class only " + i);
                check(Arrays.equals(m.logits(one), want), "logits() " + i);
            }
            // Batches through buffers, and of a slice.
            int[] viaDirect = new int[N];
            direct.clear();
            m.classifyBatch(direct, viaDirect, null);
            check(Arrays.equals(viaDirect, classes), "direct buffer batch");
            int[] slice = new int[100];
            float[] sliceLogits = new float[1000];
            m.classifyBatch(ByteBuffer.wrap(images, 500 * PIXELS, 100 * PIXELS).asReadOnlyBuffer(), slice, sliceLogits);
            check(Arrays.equals(slice, Arrays.copyOfRange(classes, 500, 600)), "read-only heap buffer batch, a slice");
            check(Arrays.equals(sliceLogits, Arrays.copyOfRange(batch, 5000, 6000)), "slice logits");
            m.classifyBatch(new byte[0], new int[0], null); // no images: fine
        }
    }

    static void attention() throws Exception {
        File cli = cli();
        for (String[] e : ENCODINGS) {
            try (Model m = Model.loadFile(new File(MODELS, e[1]))) {
                File dir = Files.createTempDirectory("microvit-java-explain").toFile();
                File out = new File(dir, "attention.npy");
                run(m.backend(), cli.getPath(), "explain", new File(MODELS, e[1]).getPath(), "--test-digits",
                        "0,1,2,3,4,5,6,7", "-o", dir.getPath(), "--attention-out", out.getPath());
                float[] expected = readNpyF32(out, new int[] {8, 2, 17});
                for (int i = 0; i < 8; i++) {
                    byte[] one = Arrays.copyOfRange(images, i * PIXELS, (i + 1) * PIXELS);
                    float[] logits = new float[10];
                    float[] att = new float[34];
                    int c = m.attention(one, logits, att);
                    check(Arrays.equals(att, Arrays.copyOfRange(expected, i * 34, i * 34 + 34)), e[0] + " digit " + i);
                    check(c == m.classify(one) && Arrays.equals(logits, m.logits(one)), "attention's class and logits");
                    check(Arrays.equals(m.attention(one), att), "attention(byte[])");
                }
                for (File f : dir.listFiles()) f.delete();
                dir.delete();
            }
        }
        System.out.println("      8 digits x 3 encodings: CLS attention bit-identical");
    }

    /** A test digit drawn dark on light paper, scaled 3x, RGBA with padded rows. */
    static byte[] drawn(int index, int width, int height, int stride, int left, int top) {
        byte[] rgba = new byte[stride * height];
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int o = y * stride + x * 4;
                int sx = (x - left) / 3, sy = (y - top) / 3;
                int ink = x >= left && y >= top && sx < 28 && sy < 28 ? images[index * PIXELS + sy * 28 + sx] & 0xff : 0;
                int v = 235 - ink * 200 / 255; // grey paper, dark ink
                rgba[o] = (byte) v;
                rgba[o + 1] = (byte) v;
                rgba[o + 2] = (byte) (v - 10);
                rgba[o + 3] = (byte) 255;
            }
        }
        return rgba;
    }

    static void classifyImage() throws IOException {
        try (Model m = Model.loadFile(new File(MODELS, "microvit-seed.int8.mvit"))) {
            int width = 120, height = 100, stride = 128 * 4, count = 300, correct = 0;
            for (int i = 0; i < count; i++) {
                byte[] rgba = drawn(i, width, height, stride, 11, 7);
                ImageResult r = m.classifyImage(rgba, width, height, stride, PixelFormat.RGBA8, Polarity.AUTO);
                check(r.found() && r.polarity() == Polarity.DARK_ON_LIGHT, "digit " + i + ": " + r);
                if (r.digit() == labels[i]) correct++;
                // The input it returns is what the model classified.
                check(m.classify(r.input()) == r.digit() && Arrays.equals(m.logits(r.input()), r.logits()), "input " + i);
                check(r.x() >= 11 && r.y() >= 7 && r.x() + r.width() <= 11 + 84 && r.y() + r.height() <= 7 + 84, "box " + r);
                ByteBuffer direct = ByteBuffer.allocateDirect(rgba.length);
                direct.put(rgba).flip();
                ImageResult d = m.classifyImage(direct, width, height, stride, PixelFormat.RGBA8, Polarity.DARK_ON_LIGHT);
                check(d.digit() == r.digit() && Arrays.equals(d.input(), r.input()), "direct buffer " + i);
            }
            System.out.printf("      %d digits drawn dark on grey paper (RGBA, 3x, padded rows): %d correct%n", count, correct);
            check(correct >= count * 9 / 10, correct + " / " + count + " correct");

            byte[] blank = new byte[200 * 150];
            Arrays.fill(blank, (byte) 230);
            ImageResult none = m.classifyImage(blank, 200, 150, 0, PixelFormat.GRAY8, Polarity.AUTO);
            check(!none.found() && none.digit() == -1 && none.logits() == null, "blank page: " + none);
            check(none.noDigitReason() != null && none.noDigitReason().contains("blank"), "why: " + none.noDigitReason());
            System.out.println("      blank page: " + none);
        }
    }

    /** An image file's pixels as the engine takes them: {pixels, width, height, format}. */
    static Object[] decode(File f) throws IOException {
        String name = f.getName();
        if (name.endsWith(".pgm") || name.endsWith(".ppm")) {
            byte[] all = Files.readAllBytes(f.toPath());
            int[] header = new int[4]; // magic digit, width, height, maxval
            int pos = 0;
            for (int field = 0; field < 4; field++) {
                while (Character.isWhitespace(all[pos]) || all[pos] == '#') {
                    if (all[pos] == '#') while (all[pos] != '\n') pos++;
                    pos++;
                }
                int start = pos;
                while (!Character.isWhitespace(all[pos])) pos++;
                String token = new String(all, start, pos - start, StandardCharsets.US_ASCII);
                header[field] = field == 0 ? token.charAt(1) - '0' : Integer.parseInt(token);
            }
            pos++; // the one whitespace byte before the samples
            check((header[0] == 5 || header[0] == 6) && header[3] == 255, name + ": 8-bit binary PNM expected");
            PixelFormat format = header[0] == 5 ? PixelFormat.GRAY8 : PixelFormat.RGB8;
            int len = header[1] * header[2] * format.bytesPerPixel();
            return new Object[] {Arrays.copyOfRange(all, pos, pos + len), header[1], header[2], format};
        }
        BufferedImage img = ImageIO.read(f);
        int w = img.getWidth(), h = img.getHeight();
        if (img.getType() == BufferedImage.TYPE_BYTE_GRAY) {
            byte[] gray = new byte[w * h];
            img.getRaster().getDataElements(0, 0, w, h, gray);
            return new Object[] {gray, w, h, PixelFormat.GRAY8};
        }
        int[] argb = img.getRGB(0, 0, w, h, null, 0, w); // 8-bit RGB, RGBA or palette: exact
        byte[] rgba = new byte[w * h * 4];
        for (int i = 0; i < argb.length; i++) {
            rgba[i * 4] = (byte) (argb[i] >> 16);
            rgba[i * 4 + 1] = (byte) (argb[i] >> 8);
            rgba[i * 4 + 2] = (byte) argb[i];
            rgba[i * 4 + 3] = (byte) (argb[i] >>> 24);
        }
        return new Object[] {rgba, w, h, PixelFormat.RGBA8};
    }

    static void realistic() throws Exception {
        File dir = new File(REPO, "data/realistic");
        List<File> files = new ArrayList<>();
        for (File f : dir.listFiles()) {
            if (f.getName().matches(".*\\.(png|pgm|ppm)")) files.add(f);
        }
        files.sort(null);
        File seen = Files.createTempDirectory("microvit-java-seen").toFile();
        try (Model m = Model.loadFile(new File(MODELS, "microvit-seed.int8.mvit"))) {
            List<String> command = new ArrayList<>(Arrays.asList(cli().getPath(), "classify",
                    new File(MODELS, "microvit-seed.int8.mvit").getPath(), "--save-input", seen.getPath()));
            for (File f : files) command.add(f.getPath());
            String[] lines = run(m.backend(), command.toArray(new String[0])).split("\n");
            int same = 0, noDigit = 0;
            for (File f : files) {
                String line = null;
                for (String l : lines) if (l.startsWith(f.getPath() + ": ")) line = l.substring(f.getPath().length() + 2);
                check(line != null, "the CLI said nothing of " + f);
                Object[] img = decode(f);
                ImageResult r = m.classifyImage((byte[]) img[0], (Integer) img[1], (Integer) img[2], 0,
                        (PixelFormat) img[3], Polarity.AUTO);
                boolean ok;
                if (line.startsWith("no digit")) {
                    ok = !r.found();
                    noDigit++;
                } else {
                    ok = r.found() && line.startsWith(r.digit() + " (");
                    if (ok) {
                        String stem = f.getName().substring(0, f.getName().lastIndexOf('.'));
                        BufferedImage input = ImageIO.read(new File(seen, stem + ".input.png"));
                        byte[] want = ((DataBufferByte) input.getRaster().getDataBuffer()).getData();
                        ok = Arrays.equals(want, r.input());
                    }
                }
                if (ok) same++;
                else System.out.println("      differs: " + f.getName() + ": CLI " + line + ", Java " + r);
            }
            System.out.printf("      %d / %d images (%d with no digit): the CLI's answer, and the same 28x28 input bytes%n",
                    same, files.size(), noDigit);
            check(same == files.size(), (files.size() - same) + " images differ");
        } finally {
            for (File f : seen.listFiles()) f.delete();
            seen.delete();
        }
    }

    static void errors() throws IOException {
        byte[] blob = Files.readAllBytes(new File(MODELS, "microvit-seed.int8.mvit").toPath());
        expect(MicrovitException.NULL_ARGUMENT, "null", () -> Model.load((byte[]) null));
        expect(MicrovitException.INVALID_MODEL, "", () -> Model.load(new byte[0]));
        expect(MicrovitException.INVALID_MODEL, "", () -> Model.load("not a model at all".getBytes(StandardCharsets.UTF_8)));
        expect(MicrovitException.INVALID_MODEL, "", () -> Model.load(Arrays.copyOf(blob, blob.length / 2)));
        byte[] corrupt = blob.clone();
        corrupt[corrupt.length / 2] ^= 0x40;
        expect(MicrovitException.INVALID_MODEL, "", () -> Model.load(corrupt));
        expect(MicrovitException.NULL_ARGUMENT, "null", () -> Model.loadFile((String) null));
        expect(MicrovitException.IO_ERROR, "no-such-file.mvit", () -> Model.loadFile("/nonexistent/no-such-file.mvit"));
        expect(MicrovitException.IO_ERROR, "", () -> Model.loadFile(REPO.getPath())); // a directory
        expect(MicrovitException.INVALID_ARGUMENT, "NUL", () -> Model.loadFile("models/a\0b.mvit"));
        expect(MicrovitException.NULL_ARGUMENT, "null", () -> Model.load((InputStream) null));

        try (Model m = Model.load(blob)) {
            byte[] one = Arrays.copyOf(images, PIXELS);
            expect(MicrovitException.INVALID_ARGUMENT, "784", () -> m.classify(new byte[10]));
            expect(MicrovitException.INVALID_ARGUMENT, "784", () -> m.classify(new byte[PIXELS + 1]));
            expect(MicrovitException.NULL_ARGUMENT, "null", () -> m.classify((byte[]) null));
            expect(MicrovitException.NULL_ARGUMENT, "null", () -> m.classify((ByteBuffer) null));
            expect(MicrovitException.BUFFER_TOO_SMALL, "", () -> m.classify(one, new float[9]));
            float[] both = new float[10];
            expect(MicrovitException.INVALID_ARGUMENT, "overlap", () -> m.classify(one, both, both));
            expect(MicrovitException.INVALID_ARGUMENT, "", () -> m.classify(ByteBuffer.wrap(images, 0, 100)));
            expect(MicrovitException.INVALID_ARGUMENT, "", () -> m.classifyBatch(new byte[PIXELS * 2 + 1]));
            expect(MicrovitException.NULL_ARGUMENT, "null", () -> m.classifyBatch((byte[]) null, new int[1], null));
            expect(MicrovitException.BUFFER_TOO_SMALL, "", () -> m.classifyBatch(images, new int[N - 1], null));
            expect(MicrovitException.BUFFER_TOO_SMALL, "", () -> m.classifyBatch(images, null, new float[N * 10 - 1]));
            expect(MicrovitException.NULL_ARGUMENT, "", () -> m.attention(one, null, null));
            expect(MicrovitException.BUFFER_TOO_SMALL, "", () -> m.attention(one, null, new float[33]));
            byte[] rgba = drawn(0, 100, 100, 400, 8, 8);
            expect(MicrovitException.INVALID_ARGUMENT, "", () -> m.classifyImage(rgba, 0, 100, 0, PixelFormat.RGBA8, Polarity.AUTO));
            expect(MicrovitException.INVALID_ARGUMENT, "", () -> m.classifyImage(rgba, 100, 100, 399, PixelFormat.RGBA8, Polarity.AUTO));
            expect(MicrovitException.INVALID_ARGUMENT, "", () -> m.classifyImage(rgba, 100, 101, 0, PixelFormat.RGBA8, Polarity.AUTO));
            expect(MicrovitException.INVALID_ARGUMENT, "negative", () -> m.classifyImage(rgba, 100, 100, -1, PixelFormat.RGBA8, Polarity.AUTO));
            expect(MicrovitException.INVALID_ARGUMENT, "9000", () -> m.classifyImage(rgba, 9000, 1, 0, PixelFormat.GRAY8, Polarity.AUTO));
            expect(MicrovitException.INVALID_ARGUMENT, "format", () -> m.classifyImage(rgba, 100, 100, 0, null, Polarity.AUTO));
            expect(MicrovitException.INVALID_ARGUMENT, "polarity", () -> m.classifyImage(rgba, 100, 100, 0, PixelFormat.RGBA8, null));
            expect(MicrovitException.NULL_ARGUMENT, "null", () -> m.classifyImage((byte[]) null, 100, 100, 0, PixelFormat.RGBA8, Polarity.AUTO));
            // The model still works after every failure.
            check(m.classify(one) == labels[0], "still classifies");
        }
        Backend missing = null;
        for (Backend b : Backend.values()) if (!b.isAvailable()) missing = b;
        if (missing != null) {
            Backend b = missing;
            expect(MicrovitException.BACKEND_UNAVAILABLE, "", () -> Model.setDefaultBackend(b));
        }
        expect(MicrovitException.INVALID_ARGUMENT, "", () -> Model.setDefaultBackend(null));
        check(Model.defaultBackend() != null && Model.defaultBackend() != Backend.AUTO, "the backend setting survived");
        try {
            Model.load(new byte[3]);
        } catch (MicrovitException e) {
            System.out.println("      e.g. " + e.getMessage());
        }
    }

    static void closed() throws IOException {
        Model m = Model.loadFile(new File(MODELS, "microvit-seed.int8.mvit"));
        byte[] one = Arrays.copyOf(images, PIXELS);
        check(m.classify(one) == labels[0] && !m.isClosed(), "open");
        m.close();
        check(m.isClosed(), "closed");
        m.close(); // again: nothing
        for (Runnable call : new Runnable[] {
            () -> m.classify(one), () -> m.classify(ByteBuffer.wrap(one)), () -> m.logits(one),
            () -> m.classifyBatch(images), () -> m.attention(one),
            () -> m.classifyImage(one, 28, 28, 0, PixelFormat.GRAY8, Polarity.AUTO),
        }) {
            try {
                call.run();
                throw new AssertionError("a call on a closed model returned");
            } catch (IllegalStateException e) {
                check(e.getMessage().contains("closed"), e.getMessage());
            }
        }
        check(m.encoding().equals("int8") && m.toString().contains("closed"), "description outlives close: " + m);
    }

    static void threads() throws Exception {
        Model m = Model.loadFile(new File(MODELS, "microvit-seed.int8.mvit"));
        int[] want = m.classifyBatch(images);
        int threads = 4;
        AtomicInteger wrong = new AtomicInteger(), closedSeen = new AtomicInteger(), done = new AtomicInteger();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> pool = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int id = t;
            Thread th = new Thread(() -> {
                try {
                    float[] logits = new float[10];
                    // Two passes over the test set, then keep going until closed.
                    for (int pass = 0; ; pass++) {
                        for (int i = 0; i < N; i++) {
                            int c = m.classify(ByteBuffer.wrap(images, i * PIXELS, PIXELS), logits);
                            if (c != want[i]) wrong.incrementAndGet();
                        }
                        if (pass == 1) done.incrementAndGet();
                        if (id == 0) Model.releaseThreadCache(); // and the next call makes a new one
                    }
                } catch (IllegalStateException closed) {
                    closedSeen.incrementAndGet();
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            th.start();
            pool.add(th);
        }
        while (done.get() < threads && failure.get() == null) Thread.sleep(5);
        m.close(); // while they run: waits for the calls in flight, then they see "closed"
        for (Thread th : pool) th.join();
        if (failure.get() != null) throw new AssertionError(failure.get());
        check(wrong.get() == 0, wrong.get() + " classes differ from the batch's");
        check(closedSeen.get() == threads, closedSeen.get() + " threads saw the model closed");
        System.out.printf("      %d threads, >= 2 x 10,000 digits each, all equal to the batch; closed under them%n", threads);
    }

    static void leaks() throws IOException {
        int cycles = Integer.getInteger("microvit.leak.cycles", 100000);
        byte[] blob = Files.readAllBytes(new File(MODELS, "microvit-seed.int8.mvit").toPath());
        byte[] bad = Arrays.copyOf(blob, blob.length - 1);
        byte[] one = Arrays.copyOf(images, PIXELS);
        String path = new File(MODELS, "microvit-seed.int8.mvit").getPath();
        long rss0 = 0;
        int warmup = 2000;
        long start = System.nanoTime();
        for (int i = 0; i < warmup + cycles; i++) {
            if (i == warmup) {
                System.gc();
                rss0 = rssKb();
                start = System.nanoTime();
            }
            try (Model m = (i % 10 == 0) ? Model.loadFile(path) : Model.load(blob)) {
                if (m.classify(one) != labels[0]) throw new AssertionError("cycle " + i);
            }
            try {
                Model.load(bad);
                throw new AssertionError("a truncated blob loaded");
            } catch (MicrovitException e) {
                if (e.status() != MicrovitException.INVALID_MODEL) throw e;
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        System.gc();
        long rss1 = rssKb();
        long growth = rss1 - rss0;
        System.out.printf("      %,d cycles (load, classify, close, and a failed load) in %.1f s: RSS %,d KB before, %,d KB after, %+,d KB%n",
                cycles, seconds, rss0, rss1, growth);
        // A leaked model (5.8 KB blob + its layout) per cycle would be > 500 MB.
        if (rss0 > 0) check(growth < 16 * 1024, "RSS grew by " + growth + " KB");
    }

    // ---------------------------------------------------------------- helpers

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    interface Call {
        void run() throws Exception;
    }

    static void expect(int status, String inMessage, Call call) {
        try {
            call.run();
        } catch (MicrovitException e) {
            check(e.status() == status, "status " + e.statusName() + ", expected "
                    + MicrovitException.statusName(status) + ": " + e.getMessage());
            check(!e.detail().isEmpty() && e.detail().contains(inMessage), "message: " + e.getMessage());
            check(e.getMessage().startsWith(MicrovitException.statusName(status)), e.getMessage());
            return;
        } catch (Exception e) {
            throw new AssertionError("expected MicrovitException " + MicrovitException.statusName(status) + ", got " + e, e);
        }
        throw new AssertionError("expected MicrovitException " + MicrovitException.statusName(status) + ", no exception");
    }

    static int argmax(float[] v, int from, int n) {
        int best = 0;
        for (int k = 1; k < n; k++) if (v[from + k] > v[from + best]) best = k;
        return best;
    }

    static long rssKb() throws IOException {
        File status = new File("/proc/self/status");
        if (!status.exists()) return 0;
        for (String line : Files.readAllLines(status.toPath())) {
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
        return 0;
    }

    static byte[] readIdx(File f, int magic, int header) throws IOException {
        try (InputStream in = new GZIPInputStream(new FileInputStream(f))) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[65536];
            for (int n; (n = in.read(buf)) > 0; ) out.write(buf, 0, n);
            byte[] all = out.toByteArray();
            check(ByteBuffer.wrap(all).getInt(0) == magic, f + ": not idx");
            return Arrays.copyOfRange(all, header, all.length);
        }
    }

    /** A little-endian float32 .npy file of the given shape (C order). */
    static float[] readNpyF32(File f, int[] shape) throws IOException {
        byte[] all = Files.readAllBytes(f.toPath());
        check(all[0] == (byte) 0x93 && new String(all, 1, 5, StandardCharsets.US_ASCII).equals("NUMPY"), f + ": not .npy");
        ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        int major = all[6];
        int headerLen = major == 1 ? (b.getShort(8) & 0xffff) : b.getInt(8);
        int dataStart = (major == 1 ? 10 : 12) + headerLen;
        String header = new String(all, major == 1 ? 10 : 12, headerLen, StandardCharsets.US_ASCII);
        check(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "header " + header);
        Matcher s = Pattern.compile("'shape': \\(([^)]*)\\)").matcher(header);
        check(s.find(), "shape in " + header);
        StringBuilder want = new StringBuilder();
        int count = 1;
        for (int d : shape) {
            want.append(want.length() == 0 ? "" : ", ").append(d);
            count *= d;
        }
        check(s.group(1).replace(",", ", ").replaceAll("\\s+", " ").replaceAll(", $", "").trim()
                .equals(want.toString().replaceAll("\\s+", " ")), "shape (" + s.group(1) + ") vs (" + want + ")");
        float[] out = new float[count];
        b.position(dataStart);
        b.asFloatBuffer().get(out);
        return out;
    }

    static File cli() {
        String path = System.getProperty("microvit.cli", new File(REPO, "target/release/microvit").getPath());
        File cli = new File(path);
        check(cli.canExecute(), "no CLI at " + cli + " (cargo build --release -p microvit-cli; -Dmicrovit.cli=...)");
        return cli;
    }

    /** Runs the CLI with MICROVIT_BACKEND set to the model's backend; its stdout. */
    static String run(Backend backend, String... command) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        pb.environment().put("MICROVIT_BACKEND", backend.label());
        Process p = pb.start();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (InputStream in = p.getInputStream()) {
            byte[] buf = new byte[8192];
            for (int n; (n = in.read(buf)) > 0; ) out.write(buf, 0, n);
        }
        String text = out.toString("UTF-8");
        check(p.waitFor() == 0, String.join(" ", command) + " failed: " + text);
        return text;
    }
}
