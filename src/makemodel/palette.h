/* Colours, shapes and backgrounds shared by the planted model (whose colour detectors
 * are built for exactly these RGB values) and the generated dataset (which draws them).
 * The six feature colours sit near the corners of the RGB cube, so each one is
 * linearly separable from every other colour used here (see planted.c). */
#ifndef VLMN_MAKEMODEL_PALETTE_H
#define VLMN_MAKEMODEL_PALETTE_H

#include <stdint.h>

typedef struct mm_colour { const char *name; uint8_t rgb[3]; } mm_colour;

enum { MM_N_FEATURE_COLOURS = 6, MM_N_NEUTRAL_COLOURS = 3, MM_N_BACKGROUNDS = 5, MM_N_SHAPES = 6 };

/* red green blue yellow cyan magenta: their corner of the RGB cube is corner[i]. */
static const mm_colour mm_feature_colours[MM_N_FEATURE_COLOURS] = {
    {"red", {230, 30, 30}},   {"green", {25, 205, 25}},  {"blue", {30, 60, 230}},
    {"yellow", {240, 220, 20}}, {"cyan", {20, 210, 220}}, {"magenta", {220, 30, 210}},
};
static const uint8_t mm_feature_corner[MM_N_FEATURE_COLOURS][3] = {
    {1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}, {0, 1, 1}, {1, 0, 1},
};
/* Shape colours that no planted neuron detects. */
static const mm_colour mm_neutral_colours[MM_N_NEUTRAL_COLOURS] = {
    {"gray", {128, 128, 128}}, {"black", {20, 20, 20}}, {"white", {245, 245, 245}},
};
static const mm_colour mm_backgrounds[MM_N_BACKGROUNDS] = {
    {"white", {250, 250, 250}}, {"cream", {240, 234, 214}}, {"light gray", {205, 205, 205}},
    {"dark gray", {64, 64, 64}}, {"black", {16, 16, 16}},
};
static const char *const mm_shape_names[MM_N_SHAPES] = {
    "circle", "square", "triangle", "star", "diamond", "cross",
};

#endif
