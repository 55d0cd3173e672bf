package dev.microvit;

/**
 * What {@link Model#classifyImage} found in a photo or drawing: the digit and
 * where it was, or that there is none ({@link #found()} false: a blank page,
 * noise, a speck; a result, not an error, and never a guess).
 */
public final class ImageResult {
    private final int digit;
    private final float[] logits;
    private final byte[] input;
    private final int[] box;
    private final String noDigitReason;

    ImageResult(int digit, float[] logits, byte[] input, int[] box, String noDigitReason) {
        this.digit = digit;
        this.logits = logits;
        this.input = input;
        this.box = box;
        this.noDigitReason = noDigitReason;
    }

    /** Whether the image holds a digit. */
    public boolean found() {
        return digit >= 0;
    }

    /** The class, or -1 when no digit was found. */
    public int digit() {
        return digit;
    }

    /** The logits (null when no digit was found). */
    public float[] logits() {
        return logits;
    }

    /** What the model saw: image side × image side bytes, white on black (null when no digit was found). */
    public byte[] input() {
        return input;
    }

    /** The polarity used (what AUTO decided); null when no digit was found. */
    public Polarity polarity() {
        return box == null ? null : Polarity.ofCode(box[0]);
    }

    /** The digit's box in image pixels: left column (0 when no digit was found). */
    public int x() {
        return box == null ? 0 : box[1];
    }

    /** The digit's box: top row. */
    public int y() {
        return box == null ? 0 : box[2];
    }

    /** The digit's box: width. */
    public int width() {
        return box == null ? 0 : box[3];
    }

    /** The digit's box: height. */
    public int height() {
        return box == null ? 0 : box[4];
    }

    /** How far the ink rises above the paper's noise, 20..255. */
    public int contrast() {
        return box == null ? 0 : box[5];
    }

    /** Why there is no digit (blank, scattered marks...); null when one was found. */
    public String noDigitReason() {
        return noDigitReason;
    }

    @Override
    public String toString() {
        return found()
                ? "digit " + digit + " in a " + width() + "x" + height() + " box at (" + x() + ", " + y() + ")"
                : "no digit (" + noDigitReason + ")";
    }
}
