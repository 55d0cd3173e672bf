/*
 * The C usage shown in README.md, docs/C_API.md and at the top of
 * include/microvit.h, as a whole program (ffi/tests/docs.rs checks the three
 * copies are this text; CI builds and runs it from the repository root):
 * classifies one 28x28 digit given as 784 raw bytes on stdin.
 */
#include <stdio.h>
#include "microvit.h"

int main(void) {
    uint8_t pixels[28 * 28]; // one grayscale digit, row-major, 0 = background
    if (fread(pixels, 1, sizeof pixels, stdin) != sizeof pixels) return 2;
    microvit_model *model = NULL;
    if (microvit_model_load_file("models/microvit-seed.mvit", &model) != MICROVIT_STATUS_OK) {
        char why[MICROVIT_ERROR_MESSAGE_CAPACITY];
        microvit_last_error_message(why, sizeof why);
        fprintf(stderr, "cannot load model: %s\n", why);
        return 1;
    }
    uint32_t digit;
    if (microvit_classify(model, NULL, pixels, sizeof pixels, &digit, NULL, 0, NULL, 0) == MICROVIT_STATUS_OK)
        printf("digit %u\n", digit);
    microvit_model_free(model);
    return 0;
}
