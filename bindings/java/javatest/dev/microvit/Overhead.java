package dev.microvit;

import java.io.File;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * Per-call overhead of the Java binding against the C ABI's own time, in one
 * run: the figures .ci/java.sh prints and the README quotes. The C time is
 * {@code microvit_classify} (and {@code _batch}) called and timed inside
 * Rust, through the same library, on the same digits, rounds interleaved so a
 * shared machine's load falls on both.
 *
 * <pre>java ... dev.microvit.Overhead [MODEL]     # default models/microvit-seed.int8.mvit</pre>
 */
public final class Overhead {
    public static void main(String[] args) throws Exception {
        File repo = new File(System.getProperty("microvit.repo", "."));
        String path = args.length > 0 ? args[0] : new File(repo, "models/microvit-seed.int8.mvit").getPath();
        byte[] images = ModelTest.readIdx(new File(repo, "data/t10k-images-idx3-ubyte.gz"), 0x803, 16);
        int n = images.length / 784;
        byte[][] rows = new byte[n][];
        for (int i = 0; i < n; i++) rows[i] = Arrays.copyOfRange(images, i * 784, (i + 1) * 784);
        ByteBuffer direct = ByteBuffer.allocateDirect(images.length);
        direct.put(images).flip();
        int rounds = Integer.getInteger("microvit.rounds", 21);
        try (Model m = Model.loadFile(path)) {
            float[] logits = new float[m.classes()];
            int[] classes = new int[n];
            LongSupplier[] runs = {
                () -> m.timeNative(images, n, false),
                () -> time(() -> { for (byte[] r : rows) m.classify(r); }),
                () -> time(() -> { for (byte[] r : rows) m.classify(r, logits); }),
                () -> time(() -> {
                    for (int i = 0; i < n; i++) {
                        direct.limit((i + 1) * 784).position(i * 784);
                        m.classify(direct);
                    }
                }),
                () -> m.timeNative(images, n, true),
                () -> time(() -> m.classifyBatch(images, classes, null)),
            };
            List<List<Double>> us = new ArrayList<>();
            for (int k = 0; k < runs.length; k++) us.add(new ArrayList<>());
            for (int warm = 0; warm < 3; warm++) for (LongSupplier r : runs) r.getAsLong(); // JIT
            for (int round = 0; round < rounds; round++) {
                for (int k = 0; k < runs.length; k++) us.get(k).add(runs[k].getAsLong() / 1e3 / n);
            }
            System.out.printf("model     %s (%s, backend %s), %d digits, %d rounds interleaved, %s %s%n", path,
                    m.encoding(), m.backend().label(), n, rounds, System.getProperty("java.vm.name"),
                    System.getProperty("java.version"));
            for (String stat : new String[] {"min", "median"}) {
                double[] v = new double[runs.length];
                for (int k = 0; k < runs.length; k++) {
                    List<Double> s = new ArrayList<>(us.get(k));
                    Collections.sort(s);
                    v[k] = stat.equals("min") ? s.get(0) : s.get(s.size() / 2);
                }
                System.out.printf("%s of the rounds:%n", stat);
                System.out.printf("  single  C microvit_classify %.3f µs/digit; Java classify(byte[]) %.3f µs/call (overhead %+.3f µs), "
                                + "classify(byte[], logits) %.3f (%+.3f), classify(direct ByteBuffer) %.3f (%+.3f)%n",
                        v[0], v[1], v[1] - v[0], v[2], v[2] - v[0], v[3], v[3] - v[0]);
                System.out.printf("  batch   C microvit_classify_batch %.3f µs/digit (%.2f M digits/s); Java classifyBatch %.3f µs/digit "
                                + "(%.2f M digits/s), %.1f %% of the C time%n",
                        v[4], 1 / v[4], v[5], 1 / v[5], v[5] / v[4] * 100);
            }
        }
    }

    static long time(Runnable r) {
        long start = System.nanoTime();
        r.run();
        return System.nanoTime() - start;
    }
}
