/* libmicrovit.a and a second Rust static library in one program
 * (.ci/ffi.sh): both run, neither's standard library clashes with the
 * other's. Usage: two_rust_libraries MODEL.mvit */
#include <stdio.h>
#include <string.h>

#include "microvit.h"

size_t second_squares(uint32_t n, char *out, size_t len);

int main(int argc, char **argv) {
    char text[32];
    microvit_model *model = NULL;
    uint8_t blank[28 * 28] = {0};
    uint32_t digit = 0;
    int32_t status;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.mvit\n", argv[0]);
        return 2;
    }
    second_squares(4, text, sizeof text);
    status = microvit_model_load_file(argv[1], &model);
    if (status == MICROVIT_STATUS_OK) {
        status = microvit_classify(model, NULL, blank, sizeof blank, &digit, NULL, 0, NULL, 0);
    }
    microvit_model_free(model);
    if (status != MICROVIT_STATUS_OK || strcmp(text, "[0, 1, 4, 9]") != 0) {
        fprintf(stderr, "microvit status %d (%s), second library: %s\n", status, microvit_status_str(status), text);
        return 1;
    }
    printf("two Rust libraries: ok\ndigit %u, squares %s\n", digit, text);
    return 0;
}
