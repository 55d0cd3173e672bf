/*
 * error_paths: asserts the documented status of every failure a C caller can
 * provoke (NULL arguments, wrong lengths, bad files, truncated or corrupted
 * blobs, misaligned zero-copy buffers, unavailable backends), and that each
 * failure leaves no leak behind. Meant to run under valgrind:
 *
 *   error_paths MODEL.mvit OTHER.mvit
 *
 * MODEL.mvit is the seed model (28x28, 10 classes, dim 32); OTHER.mvit a
 * model of another shape (models/microvit-4k.mvit) for workspace mismatches.
 *
 * Prints "error_paths: N checks passed" and exits 0, or names the first
 * failed check and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "microvit.h"

static int checks, failures;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            fprintf(stderr, "error_paths.c:%d: check failed: %s\n", __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* The status is `want`, and the thread's last error message contains
 * `needle` (or is empty on success). */
#define EXPECT(call, want, needle) expect_status((call), (want), (needle), __LINE__, #call)

static void expect_status(microvit_status got, microvit_status want, const char *needle, int line,
                          const char *call) {
    char msg[MICROVIT_ERROR_MESSAGE_CAPACITY];
    size_t n = microvit_last_error_message(msg, sizeof msg);
    checks++;
    if (got != want || n != strlen(msg) || (want == MICROVIT_STATUS_OK ? n != 0 : strstr(msg, needle) == NULL)) {
        failures++;
        fprintf(stderr, "error_paths.c:%d: %s\n  returned %d (%s), expected %d (%s); message \"%s\" (wanted \"%s\")\n",
                line, call, (int)got, microvit_status_str(got), (int)want, microvit_status_str(want), msg, needle);
    }
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long size;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *len = (size_t)size;
    return data;
}

static void check_version_and_strings(void) {
    char buf[8];
    CHECK(microvit_version_number() == MICROVIT_VERSION_NUMBER);
    CHECK(microvit_version() != NULL && strlen(microvit_version()) >= 5);
    CHECK(strcmp(microvit_status_str(MICROVIT_STATUS_OK), "ok") == 0);
    CHECK(strcmp(microvit_status_str((microvit_status)-1), "unknown status") == 0);
    CHECK(strcmp(microvit_status_str((microvit_status)12345), "unknown status") == 0);
    CHECK(strcmp(microvit_encoding_name(MICROVIT_ENCODING_F32), "f32") == 0);
    CHECK(strcmp(microvit_encoding_name((microvit_encoding)99), "unknown") == 0);
    /* The 0.1 names still compile and work. */
    CHECK(strcmp(microvit_dtype_name((microvit_dtype)MICROVIT_DTYPE_INT8), "int8") == 0);
    /* The stable codes, as documented. */
    CHECK(MICROVIT_STATUS_NULL_ARGUMENT == 1 && MICROVIT_STATUS_INVALID_MODEL == 5 && MICROVIT_STATUS_PANIC == 10);

    /* Truncation of the last error message: always NUL-terminated. */
    EXPECT(microvit_model_load_file(NULL, NULL), MICROVIT_STATUS_NULL_ARGUMENT, "out_model is NULL");
    memset(buf, 'x', sizeof buf);
    CHECK(microvit_last_error_message(buf, sizeof buf) == strlen("out_model is NULL"));
    CHECK(strcmp(buf, "out_mod") == 0);
    CHECK(microvit_last_error_message(buf, 1) == strlen("out_model is NULL") && buf[0] == '\0');
    CHECK(microvit_last_error_message(NULL, 0) == strlen("out_model is NULL"));
}

static void check_loading(const char *model_path, const uint8_t *blob, size_t len) {
    microvit_model *model = (microvit_model *)&model; /* not NULL: failures must reset it */
    uint8_t *copy, *unaligned;
    char tmp_path[] = "/tmp/microvit-error-paths-XXXXXX";
    int fd;

    EXPECT(microvit_model_load_file(NULL, &model), MICROVIT_STATUS_NULL_ARGUMENT, "path is NULL");
    CHECK(model == NULL);
    EXPECT(microvit_model_load_file(model_path, NULL), MICROVIT_STATUS_NULL_ARGUMENT, "out_model is NULL");
    EXPECT(microvit_model_load_file("/nonexistent/dir/model.mvit", &model), MICROVIT_STATUS_IO_ERROR,
           "/nonexistent/dir/model.mvit");
    EXPECT(microvit_model_load_file("/", &model), MICROVIT_STATUS_IO_ERROR, "cannot read /");
    CHECK(model == NULL);

    EXPECT(microvit_model_load(NULL, len, &model), MICROVIT_STATUS_NULL_ARGUMENT, "data is NULL");
    EXPECT(microvit_model_load(blob, len, NULL), MICROVIT_STATUS_NULL_ARGUMENT, "out_model is NULL");
    EXPECT(microvit_model_load(blob, 0, &model), MICROVIT_STATUS_INVALID_MODEL, "truncated");
    EXPECT(microvit_model_load(blob, 10, &model), MICROVIT_STATUS_INVALID_MODEL, "truncated");
    EXPECT(microvit_model_load(blob, len - 1, &model), MICROVIT_STATUS_INVALID_MODEL, "truncated");
    EXPECT(microvit_model_load(blob, SIZE_MAX, &model), MICROVIT_STATUS_INVALID_ARGUMENT, "data");
    CHECK(model == NULL);

    copy = malloc(len + 1);
    CHECK(copy != NULL);
    if (!copy) return;
    memcpy(copy, blob, len);
    copy[len / 2] ^= 0x40;
    EXPECT(microvit_model_load(copy, len, &model), MICROVIT_STATUS_INVALID_MODEL, "checksum");
    memcpy(copy, "MVIX", 4);
    EXPECT(microvit_model_load(copy, len, &model), MICROVIT_STATUS_INVALID_MODEL, "not a microvit blob");
    CHECK(model == NULL);

    /* A truncated file on disk. */
    fd = mkstemp(tmp_path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(write(fd, blob, len / 3) == (ssize_t)(len / 3));
        close(fd);
        EXPECT(microvit_model_load_file(tmp_path, &model), MICROVIT_STATUS_INVALID_MODEL, "truncated");
        CHECK(model == NULL);
        unlink(tmp_path);
    }

    /* Zero-copy: malloc'd memory is aligned; one byte in is not. */
    memcpy(copy, blob, len);
    EXPECT(microvit_model_load_borrowed(copy, len, &model), MICROVIT_STATUS_OK, "");
    CHECK(model != NULL);
    microvit_model_free(model); /* before its buffer, as documented */
    model = (microvit_model *)&model;
    memmove(copy + 1, copy, len);
    unaligned = copy + 1;
    EXPECT(microvit_model_load_borrowed(unaligned, len, &model), MICROVIT_STATUS_MISALIGNED_BUFFER, "aligned");
    CHECK(model == NULL);
    EXPECT(microvit_model_load_borrowed(NULL, len, &model), MICROVIT_STATUS_NULL_ARGUMENT, "data is NULL");
    free(copy);

    microvit_model_free(NULL);
    microvit_workspace_free(NULL);
}

static void check_inference(const microvit_model *model, const microvit_model *other_shape) {
    microvit_shape shape;
    microvit_workspace *ws = NULL, *other_ws = NULL;
    uint8_t pixels[2 * 28 * 28];
    float logits[20], probs[10];
    uint32_t digit = 99, classes[2];

    memset(pixels, 0, sizeof pixels);
    EXPECT(microvit_model_shape(NULL, &shape), MICROVIT_STATUS_NULL_ARGUMENT, "model is NULL");
    EXPECT(microvit_model_shape(model, NULL), MICROVIT_STATUS_NULL_ARGUMENT, "out_shape is NULL");
    EXPECT(microvit_model_shape(model, &shape), MICROVIT_STATUS_OK, "");
    CHECK(shape.image_side == 28 && shape.pixels == 784 && shape.classes == 10 && shape.tokens == 17);
    CHECK(shape.dim == 32 && shape.heads == 2 && shape.encoding == MICROVIT_ENCODING_F32 && shape.parameter_count == 6794);

    {
        microvit_backend backend = MICROVIT_BACKEND_AUTO;
        EXPECT(microvit_model_backend(NULL, &backend), MICROVIT_STATUS_NULL_ARGUMENT, "model is NULL");
        EXPECT(microvit_model_backend(model, NULL), MICROVIT_STATUS_NULL_ARGUMENT, "out_backend is NULL");
        EXPECT(microvit_model_backend(model, &backend), MICROVIT_STATUS_OK, "");
        CHECK(backend == MICROVIT_BACKEND_SCALAR);
    }

    EXPECT(microvit_workspace_create(NULL, &ws), MICROVIT_STATUS_NULL_ARGUMENT, "model is NULL");
    EXPECT(microvit_workspace_create(model, NULL), MICROVIT_STATUS_NULL_ARGUMENT, "out_workspace is NULL");
    EXPECT(microvit_workspace_create(model, &ws), MICROVIT_STATUS_OK, "");
    EXPECT(microvit_workspace_create(other_shape, &other_ws), MICROVIT_STATUS_OK, "");

    EXPECT(microvit_classify(NULL, ws, pixels, 784, &digit, NULL, 0, NULL, 0), MICROVIT_STATUS_NULL_ARGUMENT,
           "model is NULL");
    EXPECT(microvit_classify(model, ws, NULL, 784, &digit, NULL, 0, NULL, 0), MICROVIT_STATUS_NULL_ARGUMENT,
           "pixels is NULL");
    EXPECT(microvit_classify(model, ws, pixels, 783, &digit, NULL, 0, NULL, 0), MICROVIT_STATUS_INVALID_ARGUMENT,
           "pixel_count is 783");
    EXPECT(microvit_classify(model, ws, pixels, SIZE_MAX, &digit, NULL, 0, NULL, 0),
           MICROVIT_STATUS_INVALID_ARGUMENT, "pixel_count");
    EXPECT(microvit_classify(model, ws, pixels, 784, &digit, logits, 9, NULL, 0), MICROVIT_STATUS_BUFFER_TOO_SMALL,
           "out_logits has room for 9 values, 10 are needed");
    EXPECT(microvit_classify(model, ws, pixels, 784, &digit, logits, 10, probs, 0), MICROVIT_STATUS_BUFFER_TOO_SMALL,
           "out_probs");
    EXPECT(microvit_classify(model, ws, pixels, 784, &digit, logits, 10, logits + 5, 10),
           MICROVIT_STATUS_INVALID_ARGUMENT, "overlap");
    EXPECT(microvit_classify(model, other_ws, pixels, 784, &digit, NULL, 0, NULL, 0),
           MICROVIT_STATUS_WORKSPACE_MISMATCH, "another shape or encoding (28x28 image, 7x7 patches (17 tokens), dim 24");
    CHECK(digit == 99); /* untouched by failures */
    EXPECT(microvit_classify(model, ws, pixels, 784, &digit, logits, 10, probs, 10), MICROVIT_STATUS_OK, "");
    CHECK(digit < 10);
    EXPECT(microvit_classify(model, NULL, pixels, 784, &digit, NULL, 0, probs, 10), MICROVIT_STATUS_OK, "");
    EXPECT(microvit_classify(model, ws, pixels, 784, NULL, NULL, 0, NULL, 0), MICROVIT_STATUS_OK, "");

    EXPECT(microvit_classify_batch(model, ws, 2, pixels, 1568, classes, 2, logits, 20, NULL, 0),
           MICROVIT_STATUS_OK, "");
    CHECK(classes[0] == digit && classes[1] == digit);
    EXPECT(microvit_classify_batch(model, ws, 2, pixels, 1567, classes, 2, NULL, 0, NULL, 0),
           MICROVIT_STATUS_INVALID_ARGUMENT, "pixel_count is 1567");
    EXPECT(microvit_classify_batch(model, ws, SIZE_MAX, pixels, 1568, classes, 2, NULL, 0, NULL, 0),
           MICROVIT_STATUS_INVALID_ARGUMENT, "overflows");
    EXPECT(microvit_classify_batch(model, ws, 2, pixels, 1568, classes, 1, NULL, 0, NULL, 0),
           MICROVIT_STATUS_BUFFER_TOO_SMALL, "out_classes");
    EXPECT(microvit_classify_batch(model, ws, 2, pixels, 1568, NULL, 0, logits, 19, NULL, 0),
           MICROVIT_STATUS_BUFFER_TOO_SMALL, "out_logits");
    EXPECT(microvit_classify_batch(model, ws, 0, pixels, 0, NULL, 0, NULL, 0, NULL, 0), MICROVIT_STATUS_OK, "");

    /* Caches: one for this thread's NULL workspace calls, freed on request. */
    microvit_thread_cache_release();
    microvit_thread_cache_release();
    microvit_workspace_free(other_ws);
    microvit_workspace_free(ws);
}

static void check_backends(void) {
    /* AUTO resolves to the best backend this CPU has; no CPU has both SIMD ones. */
    microvit_backend best = microvit_get_backend();
    CHECK(best != MICROVIT_BACKEND_AUTO && microvit_backend_available(best));
    CHECK(microvit_backend_available(MICROVIT_BACKEND_SCALAR) && microvit_backend_available(MICROVIT_BACKEND_AUTO));
    microvit_backend missing =
        microvit_backend_available(MICROVIT_BACKEND_AVX2) ? MICROVIT_BACKEND_NEON : MICROVIT_BACKEND_AVX2;
    EXPECT(microvit_set_backend(missing), MICROVIT_STATUS_BACKEND_UNAVAILABLE, microvit_backend_name(missing));
    CHECK(microvit_get_backend() == best);
    EXPECT(microvit_set_backend((microvit_backend)42), MICROVIT_STATUS_INVALID_ARGUMENT, "42");
    EXPECT(microvit_set_backend(MICROVIT_BACKEND_SCALAR), MICROVIT_STATUS_OK, "");
    CHECK(microvit_get_backend() == MICROVIT_BACKEND_SCALAR);
    EXPECT(microvit_set_backend(MICROVIT_BACKEND_AUTO), MICROVIT_STATUS_OK, "");
    CHECK(microvit_get_backend() == best);
    CHECK(strcmp(microvit_backend_name((microvit_backend)-3), "unknown") == 0);
    CHECK(!microvit_backend_available((microvit_backend)7));
}

int main(int argc, char **argv) {
    microvit_model *model = NULL, *other = NULL;
    uint8_t *blob, *other_blob;
    size_t len;

    if (argc != 3) {
        fprintf(stderr, "usage: error_paths MODEL.mvit OTHER_SHAPE.mvit\n");
        return 2;
    }
    blob = read_file(argv[1], &len);
    if (!blob) {
        fprintf(stderr, "error_paths: cannot read %s\n", argv[1]);
        return 2;
    }
    check_version_and_strings();
    check_loading(argv[1], blob, len);
    check_backends();

    EXPECT(microvit_model_load(blob, len, &model), MICROVIT_STATUS_OK, "");
    free(blob);
    other_blob = read_file(argv[2], &len);
    if (other_blob) {
        EXPECT(microvit_model_load_borrowed(other_blob, len, &other), MICROVIT_STATUS_OK, "");
    }
    if (model && other) {
        check_inference(model, other);
    } else {
        fprintf(stderr, "error_paths: cannot load %s and %s\n", argv[1], argv[2]);
        failures++;
    }
    microvit_model_free(other);
    microvit_model_free(model);
    free(other_blob); /* after the model borrowing it */

    if (failures) {
        fprintf(stderr, "error_paths: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("error_paths: %d checks passed\n", checks);
    return 0;
}
