/*
 * bench_c_abi.c: the C side of bench_overhead.py. The loops over the C ABI
 * (include/microvit.h), compiled by that script into a small shared library
 * linked against target/release/libmicrovit.so and called once per pass
 * through ctypes, so the loop and the calls are all in C: what a C program
 * calling microvit_classify() pays, measured in the same process and the
 * same minute as the Python calls it is compared with (the script reads the
 * thread's CPU clock around each pass, for these loops as for the Python
 * ones; one ctypes call per 10,000 digits is lost in the rounding).
 */
#include <stddef.h>
#include <stdint.h>

#include "microvit.h"

/*
 * One pass of microvit_classify(), one call per image, with the caller's
 * workspace (the no-allocation path). logits != NULL: the class and the
 * logits, as Python's classify(image) returns them, image i's at
 * logits + i * classes; logits == NULL: the class alone, as predict(image).
 * Returns MICROVIT_STATUS_OK, or the first failure's status.
 */
int mvbench_classify(const struct microvit_model *model, struct microvit_workspace *workspace,
                     const uint8_t *images, size_t count, size_t pixels, uint32_t *out_classes,
                     float *out_logits, size_t classes) {
    for (size_t i = 0; i < count; i++) {
        float *logits = out_logits ? out_logits + i * classes : NULL;
        microvit_status status = microvit_classify(model, workspace, images + i * pixels, pixels,
                                                   out_classes + i, logits, logits ? classes : 0, NULL, 0);
        if (status != MICROVIT_STATUS_OK) return (int)status;
    }
    return MICROVIT_STATUS_OK;
}

/* One microvit_classify_batch() call over the count images: its status. */
int mvbench_classify_batch(const struct microvit_model *model, struct microvit_workspace *workspace,
                           const uint8_t *images, size_t count, size_t pixels, uint32_t *out_classes,
                           float *out_logits, size_t classes) {
    return (int)microvit_classify_batch(model, workspace, count, images, count * pixels, out_classes, count,
                                        out_logits, count * classes, NULL, 0);
}
