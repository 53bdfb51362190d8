/* Knowledge distillation: a student Sequential model trained against a
 * frozen teacher's softened outputs, both in the student's one training
 * program on its device. The teacher's weights are copied into the
 * student's state under "teacher/" (model files leave them out: they are
 * no weights of the student); its architecture is kept as an uncompiled
 * model that builds its forward pass, in inference mode (running batch
 * statistics, no dropout), into the student's training graph. */
#include "model.h"
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define TEACHER_PREFIX "teacher/"

static loom_status drop_teacher(loom_sequential *m)
{
    if (!m->teacher)
        return LOOM_OK;
    loom_model_drop_train_progs(m);
    int np = loom_model_param_count(m->teacher);
    model_param p;
    for (int k = 0; k < np; k++) {
        char name[200];
        loom_model_param(m->teacher, k, &p, NULL);
        snprintf(name, sizeof name, TEACHER_PREFIX "%s", p.name);
        LOOM_TRY(loom_state_remove(m->st, name));
    }
    loom_sequential_destroy(m->teacher);
    m->teacher = NULL;
    return LOOM_OK;
}

loom_status loom_sequential_set_teacher(loom_sequential *m, loom_sequential *teacher, float temperature, float alpha)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->compiled || (teacher && !teacher->compiled))
        return loom_fail(m->ctx, LOOM_E_STATE, "distill: compile (or load) the student and the teacher first");
    if (!teacher)
        return drop_teacher(m);
    if (!(temperature > 0.0f) || !isfinite(temperature) || !(alpha >= 0.0f && alpha <= 1.0f))
        return loom_fail(m->ctx, LOOM_E_INVALID, "distill: temperature %g (> 0) and alpha %g (in [0, 1])",
                         (double)temperature, (double)alpha);
    if (m->cfg.loss != LOOM_LOSS_SPARSE_CE || loom_model_positions(m) != 1)
        return loom_fail(m->ctx, LOOM_E_UNSUPPORTED, "distill: the student must classify (sparse cross-entropy, one "
                         "label per sample)");
    if (teacher->in_features != m->in_features || loom_model_outputs(teacher) != loom_model_outputs(m))
        return loom_fail(m->ctx, LOOM_E_SHAPE, "distill: the teacher takes %lld inputs and gives %lld classes, the "
                         "student %lld and %lld", (long long)teacher->in_features,
                         (long long)loom_model_outputs(teacher), (long long)m->in_features,
                         (long long)loom_model_outputs(m));
    for (int i = 0; i < teacher->nlayers; i++)
        if (teacher->layers[i].kind == LAYER_SEQ)
            return loom_fail(m->ctx, LOOM_E_UNSUPPORTED, "distill: the teacher's layer %d is a sequence layer; "
                             "teachers of dense and convolutional layers only", i);
    LOOM_TRY(drop_teacher(m));
    loom_sequential *arch;
    LOOM_TRY(loom_model_from_json(m->ctx, teacher->describe, "the teacher", &arch));
    arch->cfg = teacher->cfg;
    /* the weights, every parameter (running statistics too), into the
     * student's state; on failure nothing of the teacher stays */
    int np = loom_model_param_count(teacher), k;
    loom_status s = LOOM_OK;
    model_param p;
    for (k = 0; k < np && s == LOOM_OK; k++) {
        loom_model_param(teacher, k, &p, NULL);
        int64_t count = 1;
        for (int d = 0; d < p.ndim; d++)
            count *= p.shape[d];
        size_t bytes = (size_t)count * sizeof(float);
        float *w = loom_malloc(m->ctx, bytes);
        char name[200];
        snprintf(name, sizeof name, TEACHER_PREFIX "%s", p.name);
        s = w ? loom_state_read(teacher->st, p.name, w, bytes)
              : loom_fail(m->ctx, LOOM_E_OOM, "distill: out of memory for %s", p.name);
        if (s == LOOM_OK)
            s = loom_state_write(m->st, name, LOOM_F32, p.ndim, p.shape, w);
        loom_free(m->ctx, w, bytes);
    }
    if (s != LOOM_OK) {
        for (int j = 0; j < k - 1; j++) {
            char name[200];
            loom_model_param(teacher, j, &p, NULL);
            snprintf(name, sizeof name, TEACHER_PREFIX "%s", p.name);
            loom_state_remove(m->st, name);
        }
        loom_sequential_destroy(arch);
        return s;
    }
    loom_model_drop_train_progs(m);
    m->teacher = arch;
    m->temperature = temperature;
    m->alpha = alpha;
    return LOOM_OK;
}

loom_status loom_model_build_teacher(loom_sequential *m, loom_graph *g, loom_tensor x, int64_t batch,
                                     loom_tensor *teacher_logits)
{
    loom_sequential *t = m->teacher;
    model_forward fw;
    t->name_prefix = TEACHER_PREFIX;
    t->frozen = 1;
    loom_status s = loom_model_forward(t, g, 0, batch, x, &fw);
    t->name_prefix = NULL;
    t->frozen = 0;
    LOOM_TRY(s);
    int64_t shape[2] = {batch, loom_model_outputs(t)};
    loom_tensor l = fw.softmax_out ? fw.logits : fw.h;
    /* a teacher that ends in probabilities without the logits in sight
     * (none here: a final softmax is always seen) would need log(p) */
    *teacher_logits = loom_tensor_ndim(g, l) == 2 ? l : loom_reshape(g, l, 2, shape);
    return loom_graph_status(g);
}
