/*
 * classify: run a microvit model over the MNIST test set (or one PGM image)
 * through the C API, and report accuracy and latency.
 *
 *   classify MODEL.mvit IMAGES.idx LABELS.idx [--limit N] [--threads N]
 *   classify MODEL.mvit --pgm IMAGE.pgm
 *
 * IMAGES.idx and LABELS.idx are the plain (gunzipped) idx files, e.g.
 *   gunzip -k data/t10k-images-idx3-ubyte.gz data/t10k-labels-idx1-ubyte.gz
 *
 * With --threads N the images are split between N threads that share the
 * one model (it is immutable and thread-safe); each thread uses its own
 * workspace for single images and its cached one (NULL workspace) for a
 * batch call, which must agree.
 *
 * Build: see examples/Makefile (static or shared libmicrovit).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "microvit.h"

/* Prints the failed call, its status and the thread's last error detail. */
static int report(const char *what, microvit_status status) {
    char detail[MICROVIT_ERROR_MESSAGE_CAPACITY];
    microvit_last_error_message(detail, sizeof detail);
    fprintf(stderr, "classify: %s failed: %s (status %d): %s\n", what, microvit_status_str(status), (int)status,
            detail);
    return 1;
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Reads a whole file; NULL (with a message) on failure. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    size_t cap = 0;
    *len = 0;
    if (!f) {
        fprintf(stderr, "classify: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (*len == cap) {
            uint8_t *grown;
            cap = cap ? cap * 2 : 1 << 16;
            grown = realloc(data, cap);
            if (!grown) {
                fprintf(stderr, "classify: out of memory reading %s\n", path);
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        *len += fread(data + *len, 1, cap - *len, f);
        if (ferror(f)) {
            fprintf(stderr, "classify: cannot read %s: %s\n", path, strerror(errno));
            free(data);
            fclose(f);
            return NULL;
        }
        if (feof(f)) break;
    }
    fclose(f);
    return data;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/*
 * Reads an idx file of unsigned bytes with `rank` dimensions; returns the
 * file buffer and points *payload at the data. dims receives the sizes.
 */
static uint8_t *read_idx(const char *path, unsigned rank, uint32_t *dims, const uint8_t **payload) {
    size_t len, need = 1, header = 4 + 4 * (size_t)rank;
    unsigned i;
    uint8_t *data = read_file(path, &len);
    if (!data) return NULL;
    if (len < header || data[0] != 0 || data[1] != 0 || data[2] != 0x08 || data[3] != rank) {
        fprintf(stderr, "classify: %s is not an idx file of bytes with %u dimensions (gunzip it first?)\n", path,
                rank);
        free(data);
        return NULL;
    }
    for (i = 0; i < rank; i++) {
        dims[i] = be32(data + 4 + 4 * i);
        need *= dims[i];
    }
    if (len - header != need) {
        fprintf(stderr, "classify: %s has %zu data bytes, its header declares %zu\n", path, len - header, need);
        free(data);
        return NULL;
    }
    *payload = data + header;
    return data;
}

/* One thread's share of the test set. */
struct job {
    const microvit_model *model;
    const uint8_t *pixels; /* count images of pixels_per_image bytes */
    const uint8_t *labels;
    size_t count, pixels_per_image;
    uint32_t *batch_classes; /* count entries */
    size_t correct, mismatches;
    double single_us, batch_us;
    microvit_status status;
    const char *failed_call;
};

static void *run_job(void *arg) {
    struct job *job = arg;
    microvit_workspace *ws = NULL;
    size_t i;
    double t0;

    job->status = microvit_workspace_create(job->model, &ws);
    if (job->status != MICROVIT_STATUS_OK) {
        job->failed_call = "microvit_workspace_create";
        return NULL;
    }
    /* One image at a time, with this thread's own workspace: no allocation. */
    t0 = now_us();
    for (i = 0; i < job->count; i++) {
        uint32_t digit;
        job->status = microvit_classify(job->model, ws, job->pixels + i * job->pixels_per_image,
                                        job->pixels_per_image, &digit, NULL, 0, NULL, 0);
        if (job->status != MICROVIT_STATUS_OK) {
            job->failed_call = "microvit_classify";
            microvit_workspace_free(ws);
            return NULL;
        }
        job->correct += digit == job->labels[i];
        job->batch_classes[i] = digit;
    }
    job->single_us = now_us() - t0;
    microvit_workspace_free(ws);

    /* All at once, with the thread's cached workspace (NULL): same answers. */
    {
        uint32_t *classes = malloc(job->count * sizeof *classes + 1);
        if (!classes) {
            job->status = MICROVIT_STATUS_INVALID_ARGUMENT;
            job->failed_call = "malloc";
            return NULL;
        }
        t0 = now_us();
        job->status = microvit_classify_batch(job->model, NULL, job->count, job->pixels,
                                              job->count * job->pixels_per_image, classes, job->count, NULL, 0,
                                              NULL, 0);
        job->batch_us = now_us() - t0;
        if (job->status != MICROVIT_STATUS_OK) {
            job->failed_call = "microvit_classify_batch";
        } else {
            for (i = 0; i < job->count; i++) job->mismatches += classes[i] != job->batch_classes[i];
        }
        free(classes);
    }
    /* The cached workspace would also be freed when the thread exits. */
    microvit_thread_cache_release();
    return NULL;
}

static int classify_test_set(const microvit_model *model, const microvit_shape *shape, const char *images_path,
                             const char *labels_path, size_t limit, unsigned threads) {
    uint32_t image_dims[3], label_dims[1];
    const uint8_t *pixels, *labels;
    uint8_t *image_file = NULL, *label_file = NULL;
    uint32_t *classes = NULL;
    struct job *jobs = NULL;
    pthread_t *tids = NULL;
    size_t count, correct = 0, mismatches = 0, start = 0;
    double single_us = 0, batch_us = 0, t0, wall;
    unsigned t;
    int rc = 1;

    image_file = read_idx(images_path, 3, image_dims, &pixels);
    label_file = read_idx(labels_path, 1, label_dims, &labels);
    if (!image_file || !label_file) goto done;
    if ((size_t)image_dims[1] * image_dims[2] != shape->pixels) {
        fprintf(stderr, "classify: images are %ux%u, the model takes %ux%u\n", image_dims[1], image_dims[2],
                shape->image_side, shape->image_side);
        goto done;
    }
    if (image_dims[0] != label_dims[0]) {
        fprintf(stderr, "classify: %u images but %u labels\n", image_dims[0], label_dims[0]);
        goto done;
    }
    count = image_dims[0];
    if (limit && limit < count) count = limit;
    if (threads == 0 || threads > count) threads = count ? (unsigned)(count < 64 ? count : 64) : 1;

    classes = malloc(count * sizeof *classes + 1);
    jobs = calloc(threads, sizeof *jobs);
    tids = calloc(threads, sizeof *tids);
    if (!classes || !jobs || !tids) {
        fprintf(stderr, "classify: out of memory\n");
        goto done;
    }
    for (t = 0; t < threads; t++) {
        size_t n = count / threads + (t < count % threads);
        jobs[t].model = model;
        jobs[t].pixels = pixels + start * shape->pixels;
        jobs[t].labels = labels + start;
        jobs[t].count = n;
        jobs[t].pixels_per_image = shape->pixels;
        jobs[t].batch_classes = classes + start;
        start += n;
    }
    t0 = now_us();
    if (threads == 1) {
        run_job(&jobs[0]);
    } else {
        for (t = 0; t < threads; t++) {
            if (pthread_create(&tids[t], NULL, run_job, &jobs[t]) != 0) {
                fprintf(stderr, "classify: cannot start thread %u\n", t);
                threads = t;
                goto join;
            }
        }
    join:
        for (t = 0; t < threads; t++) pthread_join(tids[t], NULL);
    }
    wall = now_us() - t0;
    for (t = 0; t < threads; t++) {
        if (jobs[t].status != MICROVIT_STATUS_OK) {
            report(jobs[t].failed_call, jobs[t].status);
            goto done;
        }
        correct += jobs[t].correct;
        mismatches += jobs[t].mismatches;
        single_us += jobs[t].single_us;
        batch_us += jobs[t].batch_us;
    }
    printf("images: %zu (%u thread%s)\n", count, threads, threads == 1 ? "" : "s");
    printf("accuracy: %.2f %% (%zu/%zu)\n", count ? 100.0 * (double)correct / (double)count : 0.0, correct, count);
    printf("batch: %s\n", mismatches ? "DIFFERS from per-image results" : "identical to per-image results");
    printf("latency: %.1f us/digit single, %.1f us/digit batch (per thread); %.0f digits/s overall\n",
           count ? single_us / (double)count : 0.0, count ? batch_us / (double)count : 0.0,
           wall > 0 ? 2.0 * (double)count / wall * 1e6 : 0.0);
    rc = mismatches ? 1 : 0;

done:
    free(tids);
    free(jobs);
    free(classes);
    free(label_file);
    free(image_file);
    return rc;
}

/* Skips whitespace and '#' comments in a PGM header. */
static const uint8_t *pgm_skip(const uint8_t *p, const uint8_t *end) {
    while (p < end) {
        if (*p == '#') {
            while (p < end && *p != '\n') p++;
        } else if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            p++;
        } else {
            break;
        }
    }
    return p;
}

static const uint8_t *pgm_number(const uint8_t *p, const uint8_t *end, unsigned long *value) {
    p = pgm_skip(p, end);
    if (p == end || *p < '0' || *p > '9') return NULL;
    *value = 0;
    while (p < end && *p >= '0' && *p <= '9' && *value < 100000) *value = *value * 10 + (unsigned long)(*p++ - '0');
    return p;
}

static int classify_pgm(const microvit_model *model, const microvit_shape *shape, const char *path) {
    size_t len;
    unsigned long width, height, maxval;
    const uint8_t *p, *end;
    float probs[64];
    uint32_t digit, c;
    microvit_status status;
    uint8_t *data = read_file(path, &len);
    int rc = 1;

    if (!data) return 1;
    end = data + len;
    if (len < 2 || data[0] != 'P' || data[1] != '5' || !(p = pgm_number(data + 2, end, &width)) ||
        !(p = pgm_number(p, end, &height)) || !(p = pgm_number(p, end, &maxval)) || p == end || maxval != 255) {
        fprintf(stderr, "classify: %s is not a binary 8-bit PGM (P5, maxval 255)\n", path);
        goto done;
    }
    p++; /* the single whitespace byte after maxval */
    if (width != shape->image_side || height != shape->image_side || (size_t)(end - p) < shape->pixels) {
        fprintf(stderr, "classify: %s is %lux%lu, the model takes %ux%u\n", path, width, height, shape->image_side,
                shape->image_side);
        goto done;
    }
    if (shape->classes > sizeof probs / sizeof probs[0]) goto done;
    status = microvit_classify(model, NULL, p, shape->pixels, &digit, NULL, 0, probs, sizeof probs / sizeof probs[0]);
    if (status != MICROVIT_STATUS_OK) {
        report("microvit_classify", status);
        goto done;
    }
    printf("%s: digit %u (p = %.4f)\nprobabilities:", path, digit, probs[digit]);
    for (c = 0; c < shape->classes; c++) printf(" %u:%.4f", c, probs[c]);
    printf("\n");
    rc = 0;
done:
    free(data);
    return rc;
}

static void usage(void) {
    fprintf(stderr,
            "usage: classify MODEL.mvit IMAGES.idx LABELS.idx [--limit N] [--threads N]\n"
            "       classify MODEL.mvit --pgm IMAGE.pgm\n");
}

int main(int argc, char **argv) {
    microvit_model *model = NULL;
    microvit_shape shape;
    microvit_status status;
    size_t limit = 0;
    unsigned threads = 1;
    int i, rc;

    if (argc < 3) {
        usage();
        return 2;
    }
    if (microvit_version_number() != MICROVIT_VERSION_NUMBER) {
        fprintf(stderr, "classify: built against microvit.h %d but linked with %s\n", MICROVIT_VERSION_NUMBER,
                microvit_version());
        return 1;
    }
    status = microvit_model_load_file(argv[1], &model);
    if (status != MICROVIT_STATUS_OK) return report("microvit_model_load_file", status);
    status = microvit_model_shape(model, &shape);
    if (status != MICROVIT_STATUS_OK) {
        microvit_model_free(model);
        return report("microvit_model_shape", status);
    }
    /* The backend this model runs on (f32 models always run the scalar reference). */
    microvit_backend backend = MICROVIT_BACKEND_SCALAR;
    if ((status = microvit_model_backend(model, &backend)) != MICROVIT_STATUS_OK) {
        microvit_model_free(model);
        return report("microvit_model_backend", status);
    }
    printf("microvit %s, backend %s; model %s: %ux%u pixels -> %u classes, %s, %llu parameters\n",
           microvit_version(), microvit_backend_name(backend), argv[1], shape.image_side,
           shape.image_side, shape.classes, microvit_encoding_name(shape.encoding),
           (unsigned long long)shape.parameter_count);

    if (strcmp(argv[2], "--pgm") == 0 && argc == 4) {
        rc = classify_pgm(model, &shape, argv[3]);
    } else if (argc >= 4 && argv[2][0] != '-') {
        rc = 0;
        for (i = 4; i < argc; i++) {
            if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
                limit = (size_t)strtoul(argv[++i], NULL, 10);
            } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
                threads = (unsigned)strtoul(argv[++i], NULL, 10);
            } else {
                usage();
                rc = 2;
            }
        }
        if (rc == 0) rc = classify_test_set(model, &shape, argv[2], argv[3], limit, threads);
    } else {
        usage();
        rc = 2;
    }
    microvit_model_free(model);
    microvit_thread_cache_release();
    return rc;
}
