/* The seed's MLP, built with the graph API (until src/nn's Sequential). */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

loom_tensor cli_mlp_forward(loom_graph *g, int64_t batch, const int *hidden, int nhidden)
{
    int64_t xs[2] = {batch, 784};
    loom_tensor h = loom_input(g, "x", LOOM_F32, 2, xs);
    int64_t in = 784;
    for (int l = 0; l <= nhidden; l++) {
        int64_t out = l < nhidden ? hidden[l] : 10;
        char kn[32], bn[32];
        snprintf(kn, sizeof kn, "dense%d/kernel", l);
        snprintf(bn, sizeof bn, "dense%d/bias", l);
        int64_t ks[2] = {in, out}, bs[1] = {out};
        loom_tensor w = loom_param(g, kn, LOOM_F32, 2, ks, 1);
        loom_tensor b = loom_param(g, bn, LOOM_F32, 1, bs, 1);
        h = loom_add(g, loom_matmul(g, h, w, 0, 0), b);
        h = l < nhidden ? loom_relu(g, h) : loom_softmax(g, h);
        in = out;
    }
    loom_output(g, h, "probs");
    return h;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

loom_status cli_mlp_init(loom_state *st, const int *hidden, int nhidden, uint32_t seed)
{
    uint64_t rng = seed;
    int64_t in = 784;
    for (int l = 0; l <= nhidden; l++) {
        int64_t out = l < nhidden ? hidden[l] : 10;
        float *w = malloc((size_t)(in * out) * sizeof *w);
        float *b = calloc((size_t)out, sizeof *b);
        if (!w || !b) {
            free(w);
            free(b);
            return LOOM_E_OOM;
        }
        float lim = sqrtf(6.0f / (float)(in + out));
        for (int64_t i = 0; i < in * out; i++)
            w[i] = ((float)(splitmix(&rng) >> 40) / (float)(1 << 24) * 2.0f - 1.0f) * lim;
        char kn[32], bn[32];
        snprintf(kn, sizeof kn, "dense%d/kernel", l);
        snprintf(bn, sizeof bn, "dense%d/bias", l);
        int64_t ks[2] = {in, out}, bs[1] = {out};
        loom_status s = loom_state_write(st, kn, LOOM_F32, 2, ks, w);
        if (s == LOOM_OK)
            s = loom_state_write(st, bn, LOOM_F32, 1, bs, b);
        free(w);
        free(b);
        if (s != LOOM_OK)
            return s;
        in = out;
    }
    return LOOM_OK;
}
