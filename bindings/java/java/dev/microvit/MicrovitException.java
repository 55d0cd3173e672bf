package dev.microvit;

/**
 * A failed microvit call: the C ABI's status code ({@link #status()}, the
 * numbers of {@code microvit_status} in {@code include/microvit.h}, stable
 * across versions) and its message ({@link #detail()}).
 *
 * <p>Unchecked, like the C++ wrapper's {@code microvit::Error}: catch it where
 * a bad model file or a bad buffer can come from outside.
 */
public class MicrovitException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** A required argument (an array, a buffer, a path) was null. */
    public static final int NULL_ARGUMENT = 1;
    /** An unusable value: a wrong pixel count, offset or length, an unknown format or polarity. */
    public static final int INVALID_ARGUMENT = 2;
    /** An output array is shorter than the result it must hold. */
    public static final int BUFFER_TOO_SMALL = 3;
    /** The model file could not be opened or read. */
    public static final int IO_ERROR = 4;
    /** The bytes are not a valid microvit model: truncated, corrupted (checksum), inconsistent. */
    public static final int INVALID_MODEL = 5;
    /** A model from a newer converter (format version or encoding): update the library. */
    public static final int UNSUPPORTED_MODEL = 6;
    /** Zero-copy load of a misaligned buffer (not used by this binding, which copies). */
    public static final int MISALIGNED_BUFFER = 7;
    /** The backend is not built into the library or not supported by this CPU. */
    public static final int BACKEND_UNAVAILABLE = 8;
    /** A workspace made for another model shape (not used by this binding). */
    public static final int WORKSPACE_MISMATCH = 9;
    /** An internal error (a Rust panic) was caught at the boundary: please report it. */
    public static final int PANIC = 10;
    /** The image holds no digit ({@link Model#classifyImage} returns a result saying so instead). */
    public static final int NO_DIGIT = 11;

    private final int status;
    private final String detail;

    public MicrovitException(int status, String detail) {
        super(statusName(status) + " (" + status + ")" + (detail == null || detail.isEmpty() ? "" : ": " + detail));
        this.status = status;
        this.detail = detail == null ? "" : detail;
    }

    /** The C ABI's status code, one of the constants of this class. */
    public int status() {
        return status;
    }

    /** The status's name, e.g. {@code "INVALID_MODEL"}. */
    public String statusName() {
        return statusName(status);
    }

    /** The message the library recorded for the failure, without the status. */
    public String detail() {
        return detail;
    }

    /** The name of a status code, e.g. {@code "INVALID_MODEL"} for 5; {@code "UNKNOWN"} for a code this version does not know. */
    public static String statusName(int status) {
        switch (status) {
            case 0: return "OK";
            case NULL_ARGUMENT: return "NULL_ARGUMENT";
            case INVALID_ARGUMENT: return "INVALID_ARGUMENT";
            case BUFFER_TOO_SMALL: return "BUFFER_TOO_SMALL";
            case IO_ERROR: return "IO_ERROR";
            case INVALID_MODEL: return "INVALID_MODEL";
            case UNSUPPORTED_MODEL: return "UNSUPPORTED_MODEL";
            case MISALIGNED_BUFFER: return "MISALIGNED_BUFFER";
            case BACKEND_UNAVAILABLE: return "BACKEND_UNAVAILABLE";
            case WORKSPACE_MISMATCH: return "WORKSPACE_MISMATCH";
            case PANIC: return "PANIC";
            case NO_DIGIT: return "NO_DIGIT";
            default: return "UNKNOWN";
        }
    }
}
