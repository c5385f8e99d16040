/*
 * flowgate's C ABI in use: load a model file, score frames, print the verdicts.
 *
 *   gate MODEL.fgm [FRAMES.gray WIDTH HEIGHT]
 *
 * Scores a few built-in frames (every pixel format, padded strides, sizes other than the
 * model's), then, if given, each WIDTH x HEIGHT gray8 frame of a raw file. One line per
 * frame on stdout; lines starting with '#' are commentary. scripts/capi.sh builds this
 * against libflowgate_gate and compares its lines with the Rust gate's
 * (`cargo run --release -p flowgate-edge-capi --example fixture`): they must be identical.
 *
 * Build: cc -std=c11 -I edge-runtime/capi/include gate.c -L target/release -lflowgate_gate
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowgate.h"

/* Byte i of built-in frame k (the same formula as examples/fixture.rs). */
static uint8_t pattern(uint32_t k, uint32_t i) {
    return (uint8_t)((i * 37u + k * 101u) ^ (i / 7u));
}

struct frame_spec {
    const char *label;
    fg_pixel_format format;
    uint32_t width, height;
    size_t stride;
    int fill; /* -1: pattern, else every byte */
};

static const struct frame_spec FRAMES[] = {
    {"gray8-exact", FG_PIXEL_FORMAT_GRAY8, 4, 4, 4, -1},
    {"gray8-stride", FG_PIXEL_FORMAT_GRAY8, 10, 6, 16, -1},
    {"rgb8", FG_PIXEL_FORMAT_RGB8, 8, 8, 24, -1},
    {"bgr8-stride", FG_PIXEL_FORMAT_BGR8, 8, 6, 32, -1},
    {"yuyv", FG_PIXEL_FORMAT_YUYV, 8, 4, 16, -1},
    {"nv12", FG_PIXEL_FORMAT_NV12, 12, 8, 12, -1},
    {"black", FG_PIXEL_FORMAT_GRAY8, 4, 4, 4, 0},
    {"white", FG_PIXEL_FORMAT_GRAY8, 4, 4, 4, 255},
};

static const char *format_name(fg_pixel_format format) {
    switch (format) {
    case FG_PIXEL_FORMAT_GRAY8: return "gray8";
    case FG_PIXEL_FORMAT_RGB8: return "rgb8";
    case FG_PIXEL_FORMAT_BGR8: return "bgr8";
    case FG_PIXEL_FORMAT_YUYV: return "yuyv";
    case FG_PIXEL_FORMAT_NV12: return "nv12";
    }
    return "?";
}

static uint64_t bits(double value) {
    uint64_t out;
    memcpy(&out, &value, sizeof out);
    return out;
}

static void print_verdict(const char *label, fg_pixel_format format, uint32_t width,
                          uint32_t height, const fg_verdict *v) {
    const char *decision = v->decision < 0 ? "none" : v->decision == 0 ? "accept" : "reject";
    printf("%-13s %-5s %3" PRIu32 "x%-3" PRIu32 " ll=%.9f bpd=%.9f ood=%.9f %-6s "
           "bits=%016" PRIx64 ":%016" PRIx64 ":%016" PRIx64 "\n",
           label, format_name(format), width, height, v->log_likelihood, v->bits_per_dim,
           v->ood_score, decision, bits(v->log_likelihood), bits(v->bits_per_dim),
           bits(v->ood_score));
}

/* The whole file in a malloc'd buffer; NULL on failure. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    uint8_t *data = NULL;
    size_t size = 0, capacity = 0, got;
    do {
        if (size == capacity) {
            capacity = capacity ? 2 * capacity : 4096;
            uint8_t *grown = realloc(data, capacity);
            if (!grown) { free(data); fclose(file); return NULL; }
            data = grown;
        }
        got = fread(data + size, 1, capacity - size, file);
        size += got;
    } while (got > 0);
    int failed = ferror(file);
    fclose(file);
    if (failed) { free(data); return NULL; }
    *len = size;
    return data;
}

static int fail(const char *what, fg_status status) {
    fprintf(stderr, "gate: %s: %s (status %d)\n", what, fg_status_message(status), (int)status);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 5) {
        fprintf(stderr, "usage: %s MODEL.fgm [FRAMES.gray WIDTH HEIGHT]\n", argv[0]);
        return 2;
    }
    size_t model_len = 0;
    uint8_t *model = read_file(argv[1], &model_len);
    if (!model) { perror(argv[1]); return 1; }

    /* The gate borrows `model`: free it only after fg_gate_free. */
    fg_gate *gate = NULL;
    fg_status status = fg_gate_new(model, model_len, &gate);
    if (status != FG_STATUS_OK) { free(model); return fail(argv[1], status); }
    size_t scratch_len = fg_gate_scratch_len(gate);
    float *scratch = malloc(scratch_len * sizeof *scratch);
    if (!scratch) { fg_gate_free(gate); free(model); return 1; }
    printf("# %s: %zu bytes, scratch %zu floats\n", argv[1], model_len, scratch_len);

    int errors = 0;
    for (size_t k = 0; k < sizeof FRAMES / sizeof FRAMES[0]; k++) {
        const struct frame_spec *spec = &FRAMES[k];
        /* Every row in full (and NV12's chroma plane, which the gate skips). */
        size_t len = spec->stride * spec->height;
        if (spec->format == FG_PIXEL_FORMAT_NV12) len += len / 2;
        uint8_t *pixels = malloc(len);
        if (!pixels) { errors++; break; }
        for (size_t i = 0; i < len; i++)
            pixels[i] = spec->fill < 0 ? pattern((uint32_t)k, (uint32_t)i) : (uint8_t)spec->fill;
        fg_verdict verdict;
        status = fg_gate_score(gate, pixels, spec->width, spec->height, spec->stride,
                               spec->format, scratch, scratch_len, &verdict);
        if (status == FG_STATUS_OK)
            print_verdict(spec->label, spec->format, spec->width, spec->height, &verdict);
        else
            errors += fail(spec->label, status);
        free(pixels);
    }

    if (argc == 5) {
        uint32_t width = (uint32_t)strtoul(argv[3], NULL, 10);
        uint32_t height = (uint32_t)strtoul(argv[4], NULL, 10);
        size_t frames_len = 0;
        uint8_t *frames = read_file(argv[2], &frames_len);
        size_t frame_len = (size_t)width * height;
        if (!frames || frame_len == 0 || frames_len % frame_len != 0) {
            fprintf(stderr, "gate: %s is not a whole number of %" PRIu32 "x%" PRIu32
                            " gray8 frames\n", argv[2], width, height);
            errors++;
        } else {
            for (size_t k = 0; k < frames_len / frame_len; k++) {
                char label[32];
                snprintf(label, sizeof label, "file#%zu", k);
                fg_verdict verdict;
                status = fg_gate_score(gate, frames + k * frame_len, width, height, width,
                                       FG_PIXEL_FORMAT_GRAY8, scratch, scratch_len, &verdict);
                if (status == FG_STATUS_OK)
                    print_verdict(label, FG_PIXEL_FORMAT_GRAY8, width, height, &verdict);
                else
                    errors += fail(label, status);
            }
        }
        free(frames);
    }

    /* Errors are statuses: too little scratch, a frame with a short stride, NULL. */
    uint8_t gray[16] = {0};
    fg_verdict verdict;
    fg_status small = fg_gate_score(gate, gray, 4, 4, 4, FG_PIXEL_FORMAT_GRAY8, scratch,
                                    scratch_len - 1, &verdict);
    fg_status stride = fg_gate_score(gate, gray, 4, 4, 3, FG_PIXEL_FORMAT_GRAY8, scratch,
                                     scratch_len, &verdict);
    fg_status null = fg_gate_score(gate, NULL, 4, 4, 4, FG_PIXEL_FORMAT_GRAY8, scratch,
                                   scratch_len, &verdict);
    printf("# scratch_len - 1: %s\n# stride 3 for width 4: %s\n# NULL pixels: %s\n",
           fg_status_message(small), fg_status_message(stride), fg_status_message(null));
    if (small != FG_STATUS_SCRATCH_TOO_SMALL || stride != FG_STATUS_BAD_FRAME ||
        null != FG_STATUS_NULL_POINTER) {
        fprintf(stderr, "gate: unexpected statuses %d %d %d\n", (int)small, (int)stride,
                (int)null);
        errors++;
    }

    free(scratch);
    fg_gate_free(gate);
    free(model);
    return errors ? 1 : 0;
}
