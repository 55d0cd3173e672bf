package dev.microvit;

/** Which way the ink goes ({@code microvit_polarity}). */
public enum Polarity {
    /** Decide from the image: the ink is what departs from the local paper. */
    AUTO(0),
    /** Dark ink on light paper: a pen, a drawing pad. */
    DARK_ON_LIGHT(1),
    /** Light ink on a dark ground: MNIST itself, chalk on a blackboard. */
    LIGHT_ON_DARK(2);

    private final int code;

    Polarity(int code) {
        this.code = code;
    }

    /** The C ABI's value. */
    public int code() {
        return code;
    }

    static Polarity ofCode(int code) {
        for (Polarity p : values()) {
            if (p.code == code) return p;
        }
        return null;
    }
}
