/* Training (fit), evaluation and prediction of a Sequential model. */
#include "model.h"
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

loom_fit_config loom_fit_config_default(void)
{
    loom_fit_config c;
    memset(&c, 0, sizeof c);
    c.epochs = 5;
    c.shuffle = 1;
    return c;
}

static loom_status need_compiled(loom_sequential *m, const char *what)
{
    if (!m)
        return LOOM_E_INVALID;
    if (!m->compiled)
        return loom_fail(m->ctx, LOOM_E_STATE, "%s: compile the model first", what);
    return LOOM_OK;
}

static loom_status check_data(loom_sequential *m, loom_dataset *ds, const char *what)
{
    if (!ds)
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: NULL data set", what);
    if (loom_dataset_features(ds) != m->in_features)
        return loom_fail(m->ctx, LOOM_E_SHAPE, "%s: the data has %lld features, the model takes %lld", what,
                         (long long)loom_dataset_features(ds), (long long)m->in_features);
    if (loom_dataset_label_len(ds) != loom_model_positions(m))
        return loom_fail(m->ctx, LOOM_E_SHAPE, "%s: the data has %lld labels per row, the model predicts %lld "
                         "positions per sample", what, (long long)loom_dataset_label_len(ds),
                         (long long)loom_model_positions(m));
    if (loom_dataset_count(ds) == 0)
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: the data set is empty", what);
    /* images of another size but as many pixels would train on scrambled rows */
    if (m->in_ndim == 3 && ds->rows > 1 && ds->rows * ds->cols == ds->features / m->in_shape[0] &&
        (ds->rows != m->in_shape[1] || ds->cols != m->in_shape[2]))
        return loom_fail(m->ctx, LOOM_E_SHAPE, "%s: the data's images are %lld x %lld, the model takes %lld x %lld", what,
                         (long long)ds->rows, (long long)ds->cols, (long long)m->in_shape[1], (long long)m->in_shape[2]);
    return loom_model_check_scaling(m, ds, what);
}

static const char *scaling_str(char *buf, size_t n, loom_scaling how, const float *stats)
{
    if (how == LOOM_SCALE_UNIT)
        snprintf(buf, n, "x/255 (LOOM_SCALE_UNIT)");
    else
        snprintf(buf, n, "(x - %.9g) / %.9g (LOOM_SCALE_STANDARD)", (double)stats[0], (double)stats[1]);
    return buf;
}

loom_status loom_model_check_scaling(loom_sequential *m, const loom_dataset *ds, const char *what)
{
    if (!m->pre_set)
        return LOOM_OK;
    char a[96], b[96];
    if (!ds->scaled)
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: the model's inputs are scaled %s, the data set is not scaled "
                         "(loom_dataset_scale with the model's loom_sequential_get_preprocess)", what,
                         scaling_str(a, sizeof a, m->pre_how, m->pre_stats));
    if (ds->scaling != m->pre_how || ds->stats[0] != m->pre_stats[0] || ds->stats[1] != m->pre_stats[1])
        return loom_fail(m->ctx, LOOM_E_INVALID, "%s: the model's inputs are scaled %s, the data set %s", what,
                         scaling_str(a, sizeof a, m->pre_how, m->pre_stats),
                         scaling_str(b, sizeof b, ds->scaling, ds->stats));
    return LOOM_OK;
}

/* Uploads one batch (x, and labels or one-hot targets) into a program. */
static loom_status feed(loom_sequential *m, model_prog *mp, int64_t nb)
{
    loom_program *p = mp->p;
    LOOM_TRY(loom_model_check_inputs(m, m->xbuf, nb));
    LOOM_TRY(loom_program_set_input(p, "x", m->xbuf, (size_t)(nb * m->in_features) * sizeof(float)));
    if (m->cfg.loss == LOOM_LOSS_SPARSE_CE)
        return loom_program_set_input(p, "labels", m->ybuf,
                                      (size_t)(nb * loom_model_positions(m)) * sizeof(int32_t));
    int64_t outs = loom_model_outputs(m);
    memset(m->tbuf, 0, (size_t)(nb * outs) * sizeof(float));
    for (int64_t i = 0; i < nb; i++) {
        if (m->ybuf[i] < 0 || m->ybuf[i] >= outs)
            return loom_fail(m->ctx, LOOM_E_RANGE, "targets: label %d at row %lld is outside [0, %lld)", m->ybuf[i],
                             (long long)i, (long long)outs);
        m->tbuf[i * outs + m->ybuf[i]] = 1.0f;
    }
    return loom_program_set_input(p, "targets", m->tbuf, (size_t)(nb * outs) * sizeof(float));
}

/* Runs one batch; adds its summed loss and correct count. *ran is the
 * program that ran (for profiling and metrics). */
static loom_status step(loom_sequential *m, int train, int64_t nb, double *loss_sum, int64_t *correct,
                        model_prog **ran)
{
    model_prog *mp;
    LOOM_TRY(loom_model_prog(m, train, nb, &mp));
    if (ran)
        *ran = mp;
    LOOM_TRY(feed(m, mp, nb));
    LOOM_TRY(loom_program_run(mp->p));
    float loss;
    LOOM_TRY(loom_program_read(mp->p, "loss", &loss, sizeof loss));
    *loss_sum += (double)loss * (double)nb;
    if (m->cfg.loss != LOOM_LOSS_MSE) {
        int64_t np = nb * loom_model_positions(m);
        LOOM_TRY(loom_program_read(mp->p, "pred", m->pbuf, (size_t)np * sizeof(int32_t)));
        for (int64_t i = 0; i < np; i++)
            *correct += m->pbuf[i] == m->ybuf[i];
    }
    return LOOM_OK;
}

static loom_status run_eval(loom_sequential *m, loom_dataset *ds, loom_eval_result *r)
{
    int64_t n = loom_dataset_count(ds), b = m->cfg.batch;
    size_t idx_bytes;
    int64_t *idx = NULL;
    if (!loom_mul_size((size_t)b, sizeof *idx, &idx_bytes))
        idx = loom_malloc(m->ctx, idx_bytes);
    if (!idx)
        return loom_fail(m->ctx, LOOM_E_OOM, "evaluate: out of memory for a batch of %lld", (long long)b);
    int k = r ? r->classes : 0;
    model_prog *last = NULL;
    double loss = 0;
    int64_t correct = 0;
    loom_status s = LOOM_OK;
    double t0 = loom_nn_now_s();
    for (int64_t start = 0; start < n && s == LOOM_OK; start += b) {
        int64_t nb = n - start < b ? n - start : b;
        for (int64_t i = 0; i < nb; i++)
            idx[i] = start + i;
        s = loom_dataset_gather(ds, idx, nb, m->xbuf, m->ybuf);
        model_prog *mp = NULL;
        if (s == LOOM_OK)
            s = step(m, 0, nb, &loss, &correct, &mp);
        if (s == LOOM_OK && m->mon_trace && m->cfg.profile && m->mon_traced < m->mon_trace_runs) {
            s = loom_trace_add_run(m->mon_trace, mp->p, -1, "evaluate batch");
            m->mon_traced++;
        }
        if (mp)
            last = mp;
        if (s == LOOM_OK && r && r->confusion)
            for (int64_t i = 0; i < nb * loom_model_positions(m); i++)
                if (m->ybuf[i] >= 0 && m->ybuf[i] < k && m->pbuf[i] >= 0 && m->pbuf[i] < k)
                    r->confusion[m->ybuf[i] * k + m->pbuf[i]]++;
    }
    loom_free(m->ctx, idx, idx_bytes);
    if (s == LOOM_OK && r) {
        r->loss = loss / (double)n;
        r->accuracy = (double)correct / (double)(n * loom_model_positions(m));
        r->count = n;
        r->seconds = loom_nn_now_s() - t0;
        if (m->mon_metrics && last) {
            loom_metrics_line line;
            loom_metrics_line_init(&line);
            line.loss = r->loss;
            line.accuracy = r->accuracy;
            line.samples_per_s = r->seconds > 0 ? (double)n / r->seconds : NAN;
            s = loom_metrics_sample(m->mon_metrics, last->p, &line);
            if (s == LOOM_OK)
                s = loom_metrics_write(m->mon_metrics, &line);
            if (s == LOOM_OK && m->cfg.profile)
                s = loom_metrics_write_ops(m->mon_metrics, last->p, -1);
        }
    }
    return s;
}

/* Swaps every parameter with its "/ema" average (twice restores). */
static loom_status swap_ema(loom_sequential *m)
{
    loom_state *st = m->st;
    int found = 0;
    for (int i = 0; i < loom_state_count(st); i++) {
        const char *name;
        loom_dtype dt;
        int nd;
        int64_t shape[LOOM_MAX_DIMS];
        loom_state_entry(st, i, &name, &dt, &nd, shape);
        size_t len = strlen(name);
        if (len < 5 || strcmp(name + len - 4, "/ema"))
            continue;
        char pname[256];
        snprintf(pname, sizeof pname, "%.*s", (int)(len - 4), name);
        uint64_t bytes64;
        float *a = NULL, *b = NULL;
        size_t bytes = 0;
        if (!loom_shape_bytes(nd, shape, sizeof(float), NULL, &bytes64) && bytes64 <= SIZE_MAX) {
            bytes = (size_t)bytes64;
            a = loom_malloc(m->ctx, bytes);
            b = loom_malloc(m->ctx, bytes);
        }
        loom_status s = a && b ? LOOM_OK : loom_fail(m->ctx, LOOM_E_OOM, "evaluate: out of memory for \"%s\"", name);
        if (s == LOOM_OK)
            s = loom_state_read(st, name, a, bytes);
        if (s == LOOM_OK)
            s = loom_state_read(st, pname, b, bytes);
        if (s == LOOM_OK)
            s = loom_state_write(st, pname, dt, nd, shape, a);
        if (s == LOOM_OK)
            s = loom_state_write(st, name, dt, nd, shape, b);
        loom_free(m->ctx, a, bytes);
        loom_free(m->ctx, b, bytes);
        if (s != LOOM_OK)
            return s;
        found++;
    }
    if (!found)
        return loom_fail(m->ctx, LOOM_E_STATE, "evaluate: the model keeps no moving average (set ema_decay)");
    return LOOM_OK;
}

loom_status loom_sequential_evaluate(loom_sequential *m, loom_dataset *ds, int use_ema, loom_eval_result *out)
{
    LOOM_TRY(need_compiled(m, "loom_sequential_evaluate"));
    LOOM_TRY(check_data(m, ds, "loom_sequential_evaluate"));
    if (!out)
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_evaluate: NULL result");
    memset(out, 0, sizeof *out);
    int64_t outs = loom_model_outputs(m) / loom_model_positions(m); /* the classes */
    size_t kk;
    if (outs > 65536 || loom_mul_size((size_t)outs, (size_t)outs, &kk))
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_evaluate: %lld outputs are too many classes for a "
                         "confusion matrix", (long long)outs);
    int k = (int)outs;
    out->ctx = m->ctx;
    out->classes = k;
    out->precision = loom_calloc(m->ctx, (size_t)k, sizeof *out->precision);
    out->recall = loom_calloc(m->ctx, (size_t)k, sizeof *out->recall);
    out->confusion = loom_calloc(m->ctx, kk, sizeof *out->confusion);
    if (!out->precision || !out->recall || !out->confusion) {
        loom_eval_result_free(out);
        return loom_fail(m->ctx, LOOM_E_OOM, "loom_sequential_evaluate: out of memory");
    }
    loom_status s = use_ema ? swap_ema(m) : LOOM_OK;
    if (s != LOOM_OK) {
        loom_eval_result_free(out);
        return s;
    }
    s = run_eval(m, ds, out);
    if (use_ema) {
        loom_status s2 = swap_ema(m);
        s = s == LOOM_OK ? s2 : s;
    }
    if (s != LOOM_OK) {
        loom_eval_result_free(out);
        return s;
    }
    for (int c = 0; c < k; c++) {
        int64_t tp = out->confusion[c * k + c], col = 0, row = 0;
        for (int j = 0; j < k; j++) {
            col += out->confusion[j * k + c];
            row += out->confusion[c * k + j];
        }
        out->precision[c] = col ? (double)tp / (double)col : 0.0;
        out->recall[c] = row ? (double)tp / (double)row : 0.0;
    }
    return LOOM_OK;
}

loom_status loom_sequential_monitor(loom_sequential *m, struct loom_metrics *metrics, struct loom_trace *trace,
                                    int64_t trace_runs)
{
    if (!m)
        return LOOM_E_INVALID;
    m->mon_metrics = metrics;
    m->mon_trace = trace;
    m->mon_trace_runs = trace_runs;
    m->mon_traced = 0;
    return LOOM_OK;
}

void loom_eval_result_free(loom_eval_result *r)
{
    if (!r || !r->ctx)
        return;
    size_t k = r->classes > 0 ? (size_t)r->classes : 0;
    loom_free(r->ctx, r->precision, k * sizeof *r->precision);
    loom_free(r->ctx, r->recall, k * sizeof *r->recall);
    loom_free(r->ctx, r->confusion, k * k * sizeof *r->confusion);
    r->precision = r->recall = NULL;
    r->confusion = NULL;
}

loom_status loom_sequential_predict(loom_sequential *m, const float *x, int64_t n, float *out)
{
    LOOM_TRY(need_compiled(m, "loom_sequential_predict"));
    if (!x || !out || n <= 0)
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_predict: bad arguments (n %lld)", (long long)n);
    int64_t b = m->cfg.batch, outs = loom_model_outputs(m), f = m->in_features, pos = loom_model_positions(m);
    for (int64_t start = 0; start < n; start += b) {
        int64_t nb = n - start < b ? n - start : b;
        model_prog *mp;
        LOOM_TRY(loom_model_prog(m, 0, nb, &mp));
        LOOM_TRY(loom_model_check_inputs(m, x + start * f, nb));
        LOOM_TRY(loom_program_set_input(mp->p, "x", x + start * f, (size_t)(nb * f) * sizeof(float)));
        /* The loss needs targets; any valid ones will do for prediction. */
        memset(m->ybuf, 0, (size_t)(nb * pos) * sizeof *m->ybuf);
        if (m->cfg.loss == LOOM_LOSS_SPARSE_CE)
            LOOM_TRY(loom_program_set_input(mp->p, "labels", m->ybuf, (size_t)(nb * pos) * sizeof(int32_t)));
        else {
            memset(m->tbuf, 0, (size_t)(nb * outs) * sizeof(float));
            LOOM_TRY(loom_program_set_input(mp->p, "targets", m->tbuf, (size_t)(nb * outs) * sizeof(float)));
        }
        LOOM_TRY(loom_program_run(mp->p));
        LOOM_TRY(loom_program_read(mp->p, "out", out + start * outs, (size_t)(nb * outs) * sizeof(float)));
    }
    return LOOM_OK;
}

static loom_status write_metrics(loom_sequential *m, const loom_fit_config *cfg, model_prog *mp,
                                 const loom_fit_stats *st)
{
    loom_metrics_line line;
    loom_metrics_line_init(&line);
    line.step = st->step;
    line.epoch = st->epoch;
    line.loss = st->loss;
    line.accuracy = st->accuracy;
    line.val_loss = st->val_loss;
    line.val_accuracy = st->val_accuracy;
    line.samples_per_s = st->samples_per_s;
    line.lr = loom_optimizer_lr(&m->cfg.optimizer, st->step > 0 ? st->step : 1);
    if (st->loss_scale > 0) {
        line.loss_scale = st->loss_scale;
        line.skipped_steps = (double)st->skipped_steps;
    }
    LOOM_TRY(loom_metrics_sample(cfg->metrics, mp->p, &line));
    return loom_metrics_write(cfg->metrics, &line);
}

static int report(const loom_fit_config *cfg, loom_fit_stats *st)
{
    return cfg->progress ? cfg->progress(cfg->user, st) : 0;
}

loom_status loom_sequential_fit(loom_sequential *m, loom_dataset *train, const loom_fit_config *cfgp,
                                loom_fit_stats *last)
{
    LOOM_TRY(need_compiled(m, "loom_sequential_fit"));
    LOOM_TRY(check_data(m, train, "loom_sequential_fit"));
    loom_fit_config cfg = cfgp ? *cfgp : loom_fit_config_default();
    if (cfg.early_stopping_patience > 0 && !cfg.validation && !(cfg.validation_split > 0.0f))
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_fit: early stopping (patience %d) watches the "
                         "validation loss: give a validation set or a validation_split", cfg.early_stopping_patience);
    if (cfg.checkpoint_every > 0 && !cfg.checkpoint_path)
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_fit: checkpoint_every %lld without a checkpoint_path",
                         (long long)cfg.checkpoint_every);
    if (cfg.epochs < 0)
        return loom_fail(m->ctx, LOOM_E_INVALID, "loom_sequential_fit: %d epochs", cfg.epochs);
    /* The first fit of a model on scaled data records how, so that its
     * files tell predict and evaluate to scale their inputs alike. */
    if (!m->pre_set && train->scaled)
        LOOM_TRY(loom_sequential_set_preprocess(m, train->scaling, train->stats));
    loom_dataset *tr = train, *val = cfg.validation, *own_tr = NULL, *own_val = NULL;
    if (!val && cfg.validation_split > 0.0f) {
        LOOM_TRY(loom_dataset_split(train, cfg.validation_split, &own_tr, &own_val));
        tr = own_tr;
        val = own_val;
    }
    if (val)
        LOOM_TRY(check_data(m, val, "loom_sequential_fit (validation)"));
    int64_t n = loom_dataset_count(tr), b = m->cfg.batch;
    /* Several processes take their batch each of one step of b x P rows:
     * the data order (and so the result) of one process at b x P. */
    int nproc = loom_replicas_size(m), rank = loom_replicas_rank(m);
    int64_t gb = b * nproc;
    int64_t steps = (n + gb - 1) / gb;
    size_t order_bytes = 0;
    int64_t *order = NULL;
    if (!loom_mul_size((size_t)n, sizeof *order, &order_bytes))
        order = loom_malloc(m->ctx, order_bytes);
    loom_status s = order ? LOOM_OK : loom_fail(m->ctx, LOOM_E_OOM, "fit: out of memory for %lld rows", (long long)n);
    /* A checkpoint's position must lie inside this data set's epoch. */
    if (s == LOOM_OK && (m->epoch_step < 0 || m->epoch_step > steps))
        s = loom_fail(m->ctx, LOOM_E_FORMAT, "loom_sequential_fit: the checkpoint's loom.epoch_step %lld is outside "
                      "[0, %lld], the steps of an epoch of %lld rows in batches of %lld (another data set or batch?)",
                      (long long)m->epoch_step, (long long)steps, (long long)n, (long long)b);
    /* A cosine schedule given no length spans this fit: from the updates
     * the model has made to the end of its last epoch. The training
     * programs hold the optimizer: they are built again with it. */
    loom_optimizer *opt = &m->cfg.optimizer;
    if (s == LOOM_OK && opt->schedule == LOOM_LR_COSINE && opt->total_steps == 0 && cfg.epochs > m->epoch) {
        opt->total_steps = loom_state_step(m->st) + (int64_t)(cfg.epochs - m->epoch) * steps - m->epoch_step;
        if (opt->total_steps <= opt->warmup_steps)
            opt->total_steps = opt->warmup_steps + 1;
        loom_model_drop_train_progs(m);
        s = loom_replicas_rebuild_updates(m);
    }
    loom_fit_stats st;
    memset(&st, 0, sizeof st);
    st.epochs = cfg.epochs;
    st.total = n;
    st.val_loss = st.val_accuracy = NAN;
    double best_val = INFINITY;
    int bad_epochs = 0, stop = 0, plan_written = 0;
    int64_t traced = 0;
    int64_t every = cfg.metrics_every > 0 ? cfg.metrics_every : cfg.progress_every;
    model_prog *last_prog = NULL;
    while (s == LOOM_OK && !stop && m->epoch < cfg.epochs) {
        if (cfg.shuffle)
            s = loom_dataset_shuffle(tr, m->cfg.seed, m->epoch, order);
        else
            for (int64_t i = 0; i < n; i++)
                order[i] = i;
        double loss = 0, secs = 0;
        int64_t correct = 0, seen = 0;
        st.epoch = (int)m->epoch + 1;
        st.val_loss = st.val_accuracy = NAN;
        st.end_of_epoch = 0;
        for (int64_t k = m->epoch_step; k < steps && s == LOOM_OK && !stop; k++) {
            int64_t gn = n - k * gb < gb ? n - k * gb : gb;
            /* this process's rows of the step: an equal part each */
            int64_t q = gn / nproc, rem = gn % nproc;
            int64_t lo = k * gb + rank * q + (rank < rem ? rank : rem), nb = q + (rank < rem);
            double t0 = loom_nn_now_s();
            s = nb > 0 ? loom_dataset_gather(tr, order + lo, nb, m->xbuf, m->ybuf) : LOOM_OK;
            if (s == LOOM_OK && nb > 0)
                s = loom_model_augment(m, &cfg, m->xbuf, nb, loom_state_step(m->st));
            model_prog *mp = NULL;
            /* pruning's schedule: new masks before the update that follows */
            if (s == LOOM_OK)
                s = loom_model_prune_step(m);
            if (s == LOOM_OK)
                s = m->rep ? loom_replicas_step(m, nb, gn, &loss, &correct, &mp) : step(m, 1, nb, &loss, &correct, &mp);
            secs += loom_nn_now_s() - t0;
            if (s != LOOM_OK)
                break;
            if (mp && cfg.trace && m->cfg.profile && traced < cfg.trace_steps) {
                s = m->rep ? loom_replicas_trace(m, cfg.trace, loom_state_step(m->st))
                           : loom_trace_add_run(cfg.trace, mp->p, loom_state_step(m->st), "train step");
                traced++;
            }
            if (mp)
                last_prog = mp;
            seen += nb;
            m->epoch_step = k + 1;
            st.step = loom_state_step(m->st);
            st.loss_scale = loom_state_loss_scale(m->st);
            st.skipped_steps = loom_state_skipped_steps(m->st);
            st.seen = m->epoch_step == steps ? n : m->epoch_step * gb;
            st.loss = seen ? loss / (double)seen : 0.0;
            st.accuracy = seen ? (double)correct / (double)(seen * loom_model_positions(m)) : 0.0;
            st.seconds = secs;
            st.samples_per_s = secs > 0 ? (double)seen * nproc / secs : 0;
            /* rank 0 writes the checkpoints: every process holds the same state */
            if (cfg.checkpoint_every > 0 && cfg.checkpoint_path && st.step % cfg.checkpoint_every == 0 && rank == 0) {
                if (m->epoch_step == steps) {
                    /* a checkpoint at an epoch's end resumes at the next one */
                    m->epoch++;
                    m->epoch_step = 0;
                    s = loom_sequential_checkpoint(m, cfg.checkpoint_path);
                    m->epoch--;
                    m->epoch_step = steps;
                } else {
                    s = loom_sequential_checkpoint(m, cfg.checkpoint_path);
                }
            }
            if (s == LOOM_OK && cfg.metrics && !plan_written && mp) {
                s = loom_metrics_write_plan(cfg.metrics, mp->p, "train");
                plan_written = 1;
            }
            if (s == LOOM_OK && cfg.metrics && mp && every > 0 && st.step % every == 0 && k + 1 < steps)
                s = write_metrics(m, &cfg, mp, &st);
            if (cfg.progress_every > 0 && st.step % cfg.progress_every == 0 && k + 1 < steps)
                stop = report(&cfg, &st);
        }
        if (s != LOOM_OK || m->epoch_step < steps)
            break;
        if (nproc > 1) {
            /* the epoch's figures over every process */
            double v[3] = {loss, (double)correct, (double)seen};
            s = loom_replicas_sum(m, v, 3);
            if (s != LOOM_OK)
                break;
            st.loss = v[2] > 0 ? v[0] / v[2] : 0.0;
            st.accuracy = v[2] > 0 ? v[1] / (v[2] * (double)loom_model_positions(m)) : 0.0;
            st.samples_per_s = secs > 0 ? v[2] / secs : 0;
        }
        m->epoch++;
        m->epoch_step = 0;
        if (val) {
            loom_eval_result r;
            memset(&r, 0, sizeof r);
            s = run_eval(m, val, &r);
            st.val_loss = r.loss;
            st.val_accuracy = r.accuracy;
            if (s == LOOM_OK && cfg.early_stopping_patience > 0) {
                if (r.loss < best_val) {
                    best_val = r.loss;
                    bad_epochs = 0;
                } else if (++bad_epochs >= cfg.early_stopping_patience) {
                    loom_logf(m->ctx, LOOM_LOG_INFO, "fit: early stop after epoch %d (val_loss %.4f, best %.4f)",
                              st.epoch, r.loss, best_val);
                    st.early_stopped = 1;
                    stop = 1;
                }
            }
        }
        st.end_of_epoch = 1;
        if (s == LOOM_OK && cfg.metrics && last_prog) {
            s = write_metrics(m, &cfg, last_prog, &st);
            if (s == LOOM_OK && m->cfg.profile)
                s = loom_metrics_write_ops(cfg.metrics, last_prog->p, st.step);
        }
        if (s == LOOM_OK && report(&cfg, &st))
            stop = 1;
    }
    /* the replicas are compared once more at the end of every fit */
    if (s == LOOM_OK && m->rep)
        s = loom_replicas_end(m);
    loom_free(m->ctx, order, order_bytes);
    loom_dataset_destroy(own_tr);
    loom_dataset_destroy(own_val);
    if (last)
        *last = st;
    return s;
}
