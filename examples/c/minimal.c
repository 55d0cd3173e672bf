/*
 * The ten-line usage at the top of docs/C_API.md, as a program (CI builds and
 * runs it, so the snippet stays true): classifies one 28x28 digit given as
 * 784 raw bytes on stdin.
 *
 *   minimal MODEL.mvit < digit.raw
 */
#include <stdint.h>
#include <stdio.h>

#include "microvit.h"

int main(int argc, char **argv) {
    uint8_t pixels[28 * 28];
    if (argc != 2 || fread(pixels, 1, sizeof pixels, stdin) != sizeof pixels) return 2;

    /* --- begin snippet --- */
    microvit_model *model = NULL;
    if (microvit_model_load_file(argv[1], &model) != MICROVIT_STATUS_OK) {
        char why[MICROVIT_ERROR_MESSAGE_CAPACITY];
        microvit_last_error_message(why, sizeof why);
        fprintf(stderr, "cannot load model: %s\n", why);
        return 1;
    }
    uint32_t digit; /* pixels: uint8_t[28 * 28], one grayscale digit, row-major, 0 = background */
    if (microvit_classify(model, NULL, pixels, sizeof pixels, &digit, NULL, 0, NULL, 0) == MICROVIT_STATUS_OK)
        printf("digit %u\n", digit);
    microvit_model_free(model);
    /* --- end snippet --- */
    return 0;
}
