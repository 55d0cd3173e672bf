package dev.microvit;

/**
 * The kernels a model runs on: {@code microvit_backend}, with the same codes
 * and names. {@link #AUTO} picks the fastest this CPU has.
 */
public enum Backend {
    AUTO(0, "auto"),
    SCALAR(1, "scalar"),
    AVX2(2, "avx2"),
    NEON(3, "neon"),
    AVX512_VNNI(4, "avx512vnni"),
    AVX_VNNI(5, "avxvnni"),
    DOTPROD(6, "dotprod");

    private final int code;
    private final String label;

    Backend(int code, String label) {
        this.code = code;
        this.label = label;
    }

    /** The C ABI's value. */
    public int code() {
        return code;
    }

    /** The library's name for it ({@code "avx2"}, {@code "avx512vnni"}...), as {@code MICROVIT_BACKEND} takes it. */
    public String label() {
        return label;
    }

    /** Whether this process can use it: built into the library and supported by the CPU. */
    public boolean isAvailable() {
        return Model.backendAvailable(this);
    }

    /** The backend with this C code; null for a code this version does not know. */
    public static Backend ofCode(int code) {
        for (Backend b : values()) {
            if (b.code == code) return b;
        }
        return null;
    }
}
