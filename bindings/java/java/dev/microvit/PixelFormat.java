package dev.microvit;

/** How the bytes of one pixel are laid out ({@code microvit_pixel_format}). Alpha is straight, 255 = opaque. */
public enum PixelFormat {
    /** One byte per pixel: 0 = black, 255 = white. */
    GRAY8(1, 1),
    /** Red, green, blue. */
    RGB8(2, 3),
    /** Red, green, blue, alpha: an Android ARGB_8888 bitmap after {@code copyPixelsToBuffer}, HTML canvas ImageData. */
    RGBA8(3, 4),
    /** Blue, green, red, alpha. */
    BGRA8(4, 4);

    private final int code;
    private final int bytesPerPixel;

    PixelFormat(int code, int bytesPerPixel) {
        this.code = code;
        this.bytesPerPixel = bytesPerPixel;
    }

    /** The C ABI's value. */
    public int code() {
        return code;
    }

    public int bytesPerPixel() {
        return bytesPerPixel;
    }
}
