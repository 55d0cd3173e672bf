/*
 * drawing_pad: classify what a user drew on a phone's drawing pad, through
 * the C API's image functions.
 *
 *   drawing_pad MODEL.mvit
 *
 * An app's drawing pad is an RGBA buffer the size of a view (here 480 x 640,
 * rows padded to 64-byte lines as graphics buffers often are), transparent
 * where nothing was drawn, with strokes of a round brush along the points
 * the finger passed. microvit_classify_image() takes that buffer as it is:
 * it finds the strokes, scales them into the model's 28 x 28 input the way
 * MNIST digits were made, and classifies them. This program draws a 7, a 0
 * and a 4 (strokes as lists of points), then clears the pad, and prints
 * what the model saw and said; an empty pad is MICROVIT_STATUS_NO_DIGIT.
 *
 * Build: see examples/Makefile (static or shared libmicrovit).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "microvit.h"

#define PAD_WIDTH 480
#define PAD_HEIGHT 640
#define PAD_STRIDE (((PAD_WIDTH * 4) + 63) / 64 * 64) /* bytes per row, 64-byte aligned */
#define BRUSH 14.0                                     /* brush radius, pixels */

/* A point a finger passed, in pad pixels. */
typedef struct {
    double x, y;
} point;

/* Paints a round anti-aliased brush of opaque near-black ink at (cx, cy). */
static void dab(uint8_t *pad, double cx, double cy) {
    int x0 = (int)floor(cx - BRUSH - 1), x1 = (int)ceil(cx + BRUSH + 1);
    int y0 = (int)floor(cy - BRUSH - 1), y1 = (int)ceil(cy + BRUSH + 1);
    for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < PAD_HEIGHT; y++) {
        for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < PAD_WIDTH; x++) {
            double d = sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy));
            double coverage = BRUSH + 0.5 - d; /* 1 inside, 0 outside, a pixel of soft edge */
            if (coverage <= 0) {
                continue;
            }
            uint8_t alpha = (uint8_t)(coverage >= 1 ? 255 : 255 * coverage);
            uint8_t *px = pad + (size_t)y * PAD_STRIDE + (size_t)x * 4;
            px[0] = 20, px[1] = 20, px[2] = 30; /* the pen's colour */
            if (alpha > px[3]) {
                px[3] = alpha;
            }
        }
    }
}

/* Draws a stroke through `count` points, as a drawing view does on touch moves. */
static void stroke(uint8_t *pad, const point *points, size_t count) {
    for (size_t i = 0; i + 1 < count; i++) {
        double dx = points[i + 1].x - points[i].x, dy = points[i + 1].y - points[i].y;
        int steps = (int)(sqrt(dx * dx + dy * dy) / 2) + 1;
        for (int s = 0; s <= steps; s++) {
            dab(pad, points[i].x + dx * s / steps, points[i].y + dy * s / steps);
        }
    }
}

/* Classifies the pad and prints what the model saw; returns the status. */
static microvit_status classify_pad(const microvit_model *model, microvit_workspace *ws, const uint8_t *pad,
                                    const char *name, uint32_t *out_class) {
    microvit_image image;
    microvit_digit digit;
    uint8_t input[28 * 28];
    float probs[10];
    image.pixels = pad;
    image.len = (size_t)PAD_STRIDE * PAD_HEIGHT;
    image.width = PAD_WIDTH;
    image.height = PAD_HEIGHT;
    image.stride = PAD_STRIDE;
    image.format = MICROVIT_PIXEL_FORMAT_RGBA8;
    microvit_status status = microvit_classify_image(model, ws, &image, MICROVIT_POLARITY_AUTO, out_class, NULL, 0,
                                                     probs, 10, input, sizeof input, &digit);
    if (status == MICROVIT_STATUS_NO_DIGIT) {
        char why[MICROVIT_ERROR_MESSAGE_CAPACITY];
        microvit_last_error_message(why, sizeof why);
        printf("%s: %s\n", name, why);
        return status;
    }
    if (status != MICROVIT_STATUS_OK) {
        char why[MICROVIT_ERROR_MESSAGE_CAPACITY];
        microvit_last_error_message(why, sizeof why);
        fprintf(stderr, "drawing_pad: microvit_classify_image failed: %s: %s\n", microvit_status_str(status), why);
        return status;
    }
    printf("%s: digit %u (%.1f %%), drawn at %u,%u, %ux%u pixels, %s\n", name, *out_class,
           100.0 * probs[*out_class], digit.x, digit.y, digit.width, digit.height,
           digit.polarity == MICROVIT_POLARITY_DARK_ON_LIGHT ? "dark on light" : "light on dark");
    for (int y = 0; y < 28; y++) { /* what the model saw */
        char line[29];
        for (int x = 0; x < 28; x++) {
            uint8_t v = input[y * 28 + x];
            line[x] = v > 170 ? '#' : v > 85 ? '+' : v > 0 ? '.' : ' ';
        }
        line[28] = '\0';
        printf("  |%s|\n", line);
    }
    return status;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: drawing_pad MODEL.mvit\n");
        return 2;
    }
    microvit_model *model = NULL;
    microvit_workspace *ws = NULL;
    uint8_t *pad = calloc((size_t)PAD_STRIDE * PAD_HEIGHT, 1); /* all transparent */
    int failures = 0;
    if (!pad || microvit_model_load_file(argv[1], &model) != MICROVIT_STATUS_OK ||
        microvit_workspace_create(model, &ws) != MICROVIT_STATUS_OK) {
        char why[MICROVIT_ERROR_MESSAGE_CAPACITY];
        microvit_last_error_message(why, sizeof why);
        fprintf(stderr, "drawing_pad: cannot start: %s\n", why);
        return 1;
    }

    /* A 7: the bar, then the stem. */
    const point seven_bar[] = {{150, 160}, {250, 150}, {330, 155}};
    const point seven_stem[] = {{330, 155}, {290, 260}, {250, 370}, {225, 470}};
    /* A 0: one loop. */
    const point zero[] = {{240, 140}, {180, 180}, {155, 280}, {170, 400}, {235, 470}, {300, 430},
                          {325, 320}, {315, 200}, {270, 145}, {240, 140}};
    /* A 4: the slanted stroke and the bar, then the stem. */
    const point four_arm[] = {{230, 150}, {170, 300}, {330, 300}};
    const point four_stem[] = {{280, 190}, {280, 330}, {280, 470}};
    struct {
        const char *name;
        uint32_t expected;
        const point *strokes[2];
        size_t counts[2];
    } drawings[] = {
        {"seven", 7, {seven_bar, seven_stem}, {3, 4}},
        {"zero", 0, {zero, NULL}, {10, 0}},
        {"four", 4, {four_arm, four_stem}, {3, 3}},
    };
    for (size_t d = 0; d < sizeof drawings / sizeof drawings[0]; d++) {
        uint32_t class_index = 0;
        memset(pad, 0, (size_t)PAD_STRIDE * PAD_HEIGHT); /* the user clears the pad */
        for (int s = 0; s < 2; s++) {
            if (drawings[d].strokes[s]) {
                stroke(pad, drawings[d].strokes[s], drawings[d].counts[s]);
            }
        }
        if (classify_pad(model, ws, pad, drawings[d].name, &class_index) != MICROVIT_STATUS_OK ||
            class_index != drawings[d].expected) {
            fprintf(stderr, "drawing_pad: expected %u for the %s\n", drawings[d].expected, drawings[d].name);
            failures++;
        }
    }
    /* Nothing drawn: no digit, not a guess. */
    uint32_t ignored = 0;
    memset(pad, 0, (size_t)PAD_STRIDE * PAD_HEIGHT);
    if (classify_pad(model, ws, pad, "empty pad", &ignored) != MICROVIT_STATUS_NO_DIGIT) {
        fprintf(stderr, "drawing_pad: an empty pad must be MICROVIT_STATUS_NO_DIGIT\n");
        failures++;
    }

    microvit_workspace_free(ws);
    microvit_model_free(model);
    free(pad);
    printf("drawing_pad: %s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
