/* Optimizers as graph nodes: update nodes that write the state in place,
 * and the learning-rate schedules evaluated per step on the host. */
#include "graph.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

loom_optimizer loom_optimizer_default(loom_optimizer_kind kind)
{
    loom_optimizer o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.beta1 = 0.9f;
    o.beta2 = 0.999f;
    o.eps = 1e-7f;
    o.gamma = 0.1f;
    switch (kind) {
    case LOOM_OPT_SGD:
        o.lr = 0.01f;
        break;
    case LOOM_OPT_ADAMW:
        o.lr = 0.001f;
        o.weight_decay = 0.004f;
        break;
    default:
        o.lr = 0.001f;
        break;
    }
    return o;
}

float loom_optimizer_lr(const loom_optimizer *o, int64_t step)
{
    if (step < 1)
        step = 1;
    switch (o->schedule) {
    case LOOM_LR_STEP: {
        int64_t k = o->step_size > 0 ? (step - 1) / o->step_size : 0;
        return o->lr * powf(o->gamma, (float)k);
    }
    case LOOM_LR_COSINE: {
        if (o->warmup_steps > 0 && step <= o->warmup_steps)
            return o->lr * (float)step / (float)o->warmup_steps;
        int64_t span = o->total_steps - o->warmup_steps;
        double t = span > 0 ? (double)(step - o->warmup_steps) / (double)span : 1.0;
        if (t > 1.0)
            t = 1.0;
        return o->lr_min + 0.5f * (o->lr - o->lr_min) * (float)(1.0 + cos(3.14159265358979323846 * t));
    }
    default:
        return o->lr;
    }
}

static loom_tensor moment(loom_graph *g, const loom_node *p, const char *suffix)
{
    char name[512];
    snprintf(name, sizeof name, "%s/%s", p->name, suffix);
    /* p points into g's node array, which loom_param may move. */
    int64_t shape[LOOM_MAX_DIMS];
    int ndim = p->ndim;
    memcpy(shape, p->shape, sizeof shape);
    return loom_param(g, name, LOOM_F32, ndim, shape, 0);
}

loom_status loom_optimize(loom_graph *g, const loom_optimizer *opt)
{
    if (!g || !opt)
        return LOOM_E_INVALID;
    if (g->err != LOOM_OK)
        return g->err;
    if (!g->grad) {
        loom_graph_fail(g, LOOM_E_STATE, "loom_optimize: call loom_backward first");
        return LOOM_E_STATE;
    }
    if (g->has_opt) {
        loom_graph_fail(g, LOOM_E_STATE, "loom_optimize: the graph already has an optimizer");
        return LOOM_E_STATE;
    }
    if (!(opt->lr > 0.0f) || (opt->kind != LOOM_OPT_SGD && (opt->beta1 < 0 || opt->beta1 >= 1 || opt->beta2 < 0 ||
                                                            opt->beta2 >= 1 || !(opt->eps > 0)))) {
        loom_graph_fail(g, LOOM_E_INVALID, "loom_optimize: bad hyper-parameters (lr %g, beta1 %g, beta2 %g, eps %g)",
                        (double)opt->lr, (double)opt->beta1, (double)opt->beta2, (double)opt->eps);
        return LOOM_E_INVALID;
    }
    int nparams = g->n < g->grad_cap ? g->n : g->grad_cap;
    /* The parameters with a gradient, found before any node is added. */
    int ngrads = 0;
    for (int i = 0; i < nparams; i++)
        ngrads += g->nodes[i].op == LOOM_OP_PARAM && g->nodes[i].trainable && g->grad[i];
    if (ngrads == 0) {
        loom_graph_fail(g, LOOM_E_INVALID, "loom_optimize: no trainable parameter has a gradient");
        return LOOM_E_INVALID;
    }
    int32_t sumsq = 0;
    /* The global norm serves clipping, and the finite check of a
     * loss-scaled step: over every gradient, however many. */
    if (opt->clip_norm > 0.0f || g->loss_scaling) {
        int32_t *sumsq_in = loom_malloc(g->ctx, (size_t)ngrads * sizeof *sumsq_in);
        if (!sumsq_in) {
            loom_graph_fail(g, LOOM_E_OOM, "loom_optimize: out of memory for %d gradients", ngrads);
            return LOOM_E_OOM;
        }
        int k = 0;
        for (int i = 0; i < nparams; i++)
            if (g->nodes[i].op == LOOM_OP_PARAM && g->nodes[i].trainable && g->grad[i])
                sumsq_in[k++] = g->grad[i];
        loom_tensor t = loom_graph_add(g, LOOM_OP_SUMSQ, LOOM_F32, 0, NULL, ngrads, sumsq_in, "grad_sumsq", NULL);
        loom_free(g->ctx, sumsq_in, (size_t)ngrads * sizeof *sumsq_in);
        if (!t.id)
            return g->err;
        sumsq = t.id;
    }
    for (int i = 0; i < nparams; i++) {
        if (!(g->nodes[i].op == LOOM_OP_PARAM && g->nodes[i].trainable && g->grad[i]))
            continue;
        int32_t in[5];
        int nin = 0;
        in[nin++] = i + 1;
        in[nin++] = g->grad[i];
        loom_attr at = {0};
        at.beta1 = opt->beta1;
        at.beta2 = opt->beta2;
        at.eps = opt->eps;
        at.momentum = opt->momentum;
        at.nesterov = opt->nesterov;
        at.weight_decay = opt->kind == LOOM_OPT_ADAMW ? opt->weight_decay : 0.0f;
        at.l1 = opt->l1;
        at.l2 = opt->l2;
        at.clip_norm = opt->clip_norm;
        at.skip_nonfinite = g->loss_scaling;
        loom_op op;
        if (opt->kind == LOOM_OPT_SGD) {
            op = LOOM_OP_SGD_UPDATE;
            if (opt->momentum != 0.0f)
                in[nin++] = moment(g, &g->nodes[i], "momentum").id;
        } else {
            op = LOOM_OP_ADAM_UPDATE;
            in[nin++] = moment(g, &g->nodes[i], "m").id;
            in[nin++] = moment(g, &g->nodes[i], "v").id;
        }
        if (sumsq) {
            in[nin++] = sumsq;
            at.clip = 1;
        }
        if (g->err != LOOM_OK)
            return g->err;
        char name[512];
        snprintf(name, sizeof name, "%s/update", g->nodes[i].name);
        loom_tensor u = loom_graph_add(g, op, LOOM_F32, 0, NULL, nin, in, name, &at);
        if (!u.id)
            return g->err;
        g->nodes[u.id - 1].side_effect = 1;
    }
    /* The averages after every update (each reads its parameter as updated),
     * so the updates and the averages each follow one another: a backend
     * runs each run as one multi-tensor dispatch. */
    for (int i = 0; i < nparams && opt->ema_decay > 0.0f; i++) {
        if (!(g->nodes[i].op == LOOM_OP_PARAM && g->nodes[i].trainable && g->grad[i]))
            continue;
        loom_tensor e = moment(g, &g->nodes[i], "ema");
        if (!e.id)
            return g->err;
        loom_attr ea = {0};
        ea.decay = opt->ema_decay;
        int32_t ein[2] = {e.id, i + 1};
        char name[512];
        snprintf(name, sizeof name, "%s/ema_update", g->nodes[i].name);
        loom_tensor eu = loom_graph_add(g, LOOM_OP_EMA_UPDATE, LOOM_F32, 0, NULL, 2, ein, name, &ea);
        if (!eu.id)
            return g->err;
        g->nodes[eu.id - 1].side_effect = 1;
    }
    g->opt = *opt;
    g->has_opt = 1;
    return LOOM_OK;
}
