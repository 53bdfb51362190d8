/* onnx_conformance: ONNX's backend node tests on one loom device.
 *
 *   onnx_conformance --device SPEC [--timeout S] [--json FILE] [--filter SUBSTR] CASE_DIR...
 *
 * Each CASE_DIR holds model.onnx and test_data_set_N/input_K.pb,
 * output_K.pb (onnx/backend/test/data/node/<case> of the onnx wheel). A
 * case passes when every output matches the expected one within ONNX's
 * own tolerances (|got - want| <= atol + rtol |want|, rtol 1e-3, atol 1e-7,
 * NaN equal to NaN, integers and bools exactly); it is unsupported when
 * the importer or the device refuses it with LOOM_E_UNSUPPORTED; anything
 * else is a failure. The cases run in a worker process that a supervisor
 * restarts after a crash or a case that runs past --timeout, so one case
 * can neither stop the others nor hang the run: those count as crash and
 * timeout. A JSON report (cJSON) lists every case.
 *
 * The op types of a case are read with the parser loom's importer uses
 * (protoc-c's, from onnx.proto), and a case is "listed" when loom's op
 * table has every op type of it at its opset (loom_onnx_supports). */
#include "loom.h"
#include "onnx.pb-c.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RTOL 1e-3
#define ATOL 1e-7
#define MAX_IO 16

typedef enum { ST_PASS, ST_FAIL, ST_UNSUPPORTED, ST_CRASH, ST_TIMEOUT, ST_COUNT } status;
static const char *const st_names[] = {"pass", "fail", "unsupported", "crash", "timeout"};

typedef struct result {
    status st;
    char msg[400];
    double worst;              /* max |got - want| / (atol + rtol |want|) */
    int frozen;                /* inputs given to the importer as values */
    double seconds;
} result;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 0) {
        fclose(f);
        return NULL;
    }
    unsigned char *d = malloc((size_t)sb.st_size + 1);
    if (d && sb.st_size && fread(d, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
        free(d);
        d = NULL;
    }
    fclose(f);
    *n = (size_t)sb.st_size;
    return d;
}

/* ---- the op types of a model (for "listed") ---- */

typedef struct model_ops {
    char ops[512];             /* comma-separated, in order of appearance */
    int listed;                /* every op type has a row at the opset */
    int typed;                 /* ... and every graph input and output is
                                  of an element type loom holds */
    int64_t opset;
} model_ops;

static int holdable(const Onnx__ValueInfoProto *v)
{
    const Onnx__TypeProto *t = v->type;
    return t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type &&
           loom_onnx_dtype(t->tensor_type->elem_type) != LOOM_DTYPE_COUNT;
}

static void read_ops(const char *path, model_ops *mo)
{
    memset(mo, 0, sizeof *mo);
    size_t n;
    unsigned char *d = read_all(path, &n);
    if (!d)
        return;
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, n, d);
    free(d);
    if (!m || !m->graph) {
        if (m)
            onnx__model_proto__free_unpacked(m, NULL);
        return;
    }
    mo->opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++)
        if (!m->opset_import[i]->domain || !*m->opset_import[i]->domain)
            mo->opset = m->opset_import[i]->version;
    mo->listed = 1;
    for (size_t i = 0; i < m->graph->n_node; i++) {
        const Onnx__NodeProto *nd = m->graph->node[i];
        if (!nd->op_type)
            continue;
        if (!strstr(mo->ops, nd->op_type)) {
            size_t l = strlen(mo->ops);
            snprintf(mo->ops + l, sizeof mo->ops - l, "%s%s", l ? "," : "", nd->op_type);
        }
        if ((nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx")) || !loom_onnx_supports(nd->op_type, mo->opset))
            mo->listed = 0;
    }
    mo->typed = mo->listed;
    for (size_t i = 0; i < m->graph->n_input; i++)
        mo->typed &= holdable(m->graph->input[i]);
    for (size_t i = 0; i < m->graph->n_output; i++)
        mo->typed &= holdable(m->graph->output[i]);
    onnx__model_proto__free_unpacked(m, NULL);
}

/* ---- one case ---- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* input_<k>.pb / output_<k>.pb of a data set, by k */
static int list_pb(const char *dir, const char *prefix, char names[][320], int max)
{
    int n = 0;
    for (int k = 0; k < max; k++) {
        snprintf(names[n], 320, "%s/%s_%d.pb", dir, prefix, k);
        if (access(names[n], R_OK) != 0)
            break;
        n++;
    }
    return n;
}

static status status_of(loom_status s)
{
    return s == LOOM_E_UNSUPPORTED ? ST_UNSUPPORTED : ST_FAIL;
}

static void set_msg(result *r, status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
    r->st = st;
}

/* Compares a loom output (read in its dtype) with the expected tensor. */
static int compare(loom_ctx *ctx, const loom_onnx_value *o, const void *got, const loom_onnx_tensor *want,
                   result *r)
{
    if ((size_t)o->ndim != (size_t)want->ndim) {
        set_msg(r, ST_FAIL, "output \"%s\": rank %d, expected %d", o->name, o->ndim, want->ndim);
        return 0;
    }
    for (int i = 0; i < o->ndim; i++)
        if (o->shape[i] != want->shape[i]) {
            set_msg(r, ST_FAIL, "output \"%s\": dim %d is %lld, expected %lld", o->name, i, (long long)o->shape[i],
                    (long long)want->shape[i]);
            return 0;
        }
    size_t n = (size_t)want->count;
    size_t es = loom_onnx_type_size(want->type);
    void *conv = malloc(n * es + 1);
    if (!conv) {
        set_msg(r, ST_FAIL, "out of memory");
        return 0;
    }
    loom_status s = loom_onnx_from_dtype(ctx, o->dtype, got, n, want->type, conv);
    if (s != LOOM_OK) {
        set_msg(r, status_of(s), "output \"%s\": %s", o->name, loom_last_error(ctx));
        free(conv);
        return 0;
    }
    /* both as doubles: the expected array widened from its own type */
    double *a = malloc((n + 1) * sizeof *a), *e = malloc((n + 1) * sizeof *e);
    int ok = a && e;
    if (ok) {
        float *fa = malloc((n + 1) * sizeof *fa), *fe = malloc((n + 1) * sizeof *fe);
        ok = fa && fe;
        if (ok && want->type != LOOM_ONNX_DOUBLE && want->type != LOOM_ONNX_INT64 && want->type != LOOM_ONNX_UINT64) {
            ok = loom_onnx_to_dtype(ctx, want->type, conv, n, LOOM_F32, fa) == LOOM_OK &&
                 loom_onnx_to_dtype(ctx, want->type, want->data, n, LOOM_F32, fe) == LOOM_OK;
            for (size_t i = 0; ok && i < n; i++) {
                a[i] = fa[i];
                e[i] = fe[i];
            }
        } else if (ok) {
            for (size_t i = 0; i < n; i++) {
                if (want->type == LOOM_ONNX_DOUBLE) {
                    a[i] = ((double *)conv)[i];
                    e[i] = ((double *)want->data)[i];
                } else if (want->type == LOOM_ONNX_INT64) {
                    a[i] = (double)((int64_t *)conv)[i];
                    e[i] = (double)((int64_t *)want->data)[i];
                } else {
                    a[i] = (double)((uint64_t *)conv)[i];
                    e[i] = (double)((uint64_t *)want->data)[i];
                }
            }
        }
        free(fa);
        free(fe);
    }
    free(conv);
    if (!ok) {
        free(a);
        free(e);
        set_msg(r, ST_FAIL, "output \"%s\": conversion failed", o->name);
        return 0;
    }
    int exact = want->type != LOOM_ONNX_FLOAT && want->type != LOOM_ONNX_DOUBLE && want->type != LOOM_ONNX_FLOAT16 &&
                want->type != LOOM_ONNX_BFLOAT16;
    size_t bad = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - e[i]), lim = exact ? 0 : ATOL + RTOL * fabs(e[i]);
        if (isnan(a[i]) && isnan(e[i]))
            continue;
        if (isinf(e[i]) && a[i] == e[i])
            continue;
        double q = lim > 0 ? d / lim : (d > 0 ? INFINITY : 0);
        if (!(q <= r->worst))
            r->worst = isnan(q) ? INFINITY : q;
        if (!(d <= lim) && bad == (size_t)-1)
            bad = i;
    }
    if (bad != (size_t)-1) {
        set_msg(r, ST_FAIL, "output \"%s\": element %zu is %.9g, expected %.9g (%zu values, worst %.3g x the "
                "tolerance)", o->name, bad, a[bad], e[bad], n, r->worst);
        free(a);
        free(e);
        return 0;
    }
    free(a);
    free(e);
    return 1;
}

/* Inputs a static-shape engine must know at load (the axes, shapes,
 * pads, k of an op, given as graph inputs by some cases): integers and
 * bools of at most 64 values, and scalars. */
static int freezable(const loom_onnx_tensor *t)
{
    int small = t->count <= 64;
    int intish = t->type != LOOM_ONNX_FLOAT && t->type != LOOM_ONNX_DOUBLE && t->type != LOOM_ONNX_FLOAT16 &&
                 t->type != LOOM_ONNX_BFLOAT16;
    return (intish && small) || t->ndim == 0;
}

/* One data set: load (again freezing what the importer wants at load when
 * it asks), compile, feed, run, compare. */
static void run_set(loom_ctx *ctx, loom_device *dev, const char *model, const char *set, result *r)
{
    char ins[MAX_IO][320], outs[MAX_IO][320];
    int ni = list_pb(set, "input", ins, MAX_IO), no = list_pb(set, "output", outs, MAX_IO);
    loom_onnx_tensor in_t[MAX_IO];
    memset(in_t, 0, sizeof in_t);
    loom_state *st = NULL;
    loom_graph *g = NULL;
    loom_program *p = NULL;
    loom_onnx_info info;
    memset(&info, 0, sizeof info);
    loom_status s = LOOM_OK, load_s = LOOM_OK;
    char load_msg[400] = "";
    int loaded = 0;
    for (int attempt = 0; attempt < 2 && !loaded; attempt++) {
        if (attempt == 1) {
            /* the inputs' values, read only now: a model that is refused
             * for its input types is that, not a file it cannot read */
            for (int i = 0; i < ni; i++) {
                size_t n;
                unsigned char *d = read_all(ins[i], &n);
                if (!d || (s = loom_onnx_tensor_read(ctx, d, n, NULL, &in_t[i])) != LOOM_OK) {
                    set_msg(r, d ? status_of(s) : ST_FAIL, "%s: %s", ins[i], d ? loom_last_error(ctx) : strerror(errno));
                    free(d);
                    goto out;
                }
                free(d);
            }
        }
        loom_onnx_opts o;
        loom_onnx_opts_default(&o);
        loom_onnx_tensor frozen[MAX_IO];
        int nf = 0;
        if (attempt == 1) {
            for (int i = 0; i < ni; i++)
                if (in_t[i].name[0] && freezable(&in_t[i]))
                    frozen[nf++] = in_t[i];
            if (!nf)
                break;
            o.values = frozen;
            o.nvalues = nf;
        }
        loom_state_destroy(st);
        st = NULL;
        if ((s = loom_state_create(dev, &st)) != LOOM_OK)
            break;
        s = loom_onnx_load(ctx, model, &g, st, &o, &info);
        if (s == LOOM_OK) {
            loaded = 1;
            r->frozen = nf;
            break;
        }
        load_s = s;
        snprintf(load_msg, sizeof load_msg, "%s", loom_last_error(ctx));
        if (s != LOOM_E_UNSUPPORTED || !strstr(load_msg, "at load"))
            break;
    }
    if (!loaded) {
        if (r->st == ST_PASS)
            set_msg(r, status_of(load_s), "load: %s", load_msg);
        goto out;
    }
    if ((s = loom_compile(g, dev, st, NULL, &p)) != LOOM_OK) {
        set_msg(r, status_of(s), "compile: %s", loom_last_error(ctx));
        goto out;
    }
    for (int i = 0; i < ni && !r->frozen; i++) {
        size_t n;
        unsigned char *d = read_all(ins[i], &n);
        if (!d || (s = loom_onnx_tensor_read(ctx, d, n, NULL, &in_t[i])) != LOOM_OK) {
            set_msg(r, d ? status_of(s) : ST_FAIL, "%s: %s", ins[i], d ? loom_last_error(ctx) : strerror(errno));
            free(d);
            goto out;
        }
        free(d);
    }
    for (int i = 0; i < ni && r->st == ST_PASS; i++) {
        const loom_onnx_tensor *t = &in_t[i];
        const loom_onnx_value *in = NULL;
        for (int j = 0; j < info.ninputs; j++)
            if (t->name[0] && !strcmp(info.inputs[j].name, t->name))
                in = &info.inputs[j];
        if (!in && !t->name[0] && i < info.ninputs)
            in = &info.inputs[i];
        /* frozen, an initializer's default, or only its shape is read */
        if (!in || !in->used)
            continue;
        size_t bytes = (size_t)t->count * loom_dtype_size(in->dtype);
        void *buf = malloc(bytes + 1);
        s = buf ? loom_onnx_to_dtype(ctx, t->type, t->data, (size_t)t->count, in->dtype, buf) : LOOM_E_OOM;
        if (s == LOOM_OK)
            s = loom_program_set_input(p, in->name, buf, bytes);
        if (s != LOOM_OK)
            set_msg(r, status_of(s), "input \"%s\": %s", in->name, loom_last_error(ctx));
        free(buf);
    }
    if (r->st != ST_PASS)
        goto out;
    if ((s = loom_program_run(p)) != LOOM_OK) {
        set_msg(r, status_of(s), "run: %s", loom_last_error(ctx));
        goto out;
    }
    if (no != info.noutputs) {
        set_msg(r, ST_FAIL, "%d expected outputs, the model has %d", no, info.noutputs);
        goto out;
    }
    for (int i = 0; i < no && r->st == ST_PASS; i++) {
        size_t n;
        unsigned char *d = read_all(outs[i], &n);
        loom_onnx_tensor want;
        if (!d || (s = loom_onnx_tensor_read(ctx, d, n, NULL, &want)) != LOOM_OK) {
            set_msg(r, d ? status_of(s) : ST_FAIL, "%s: %s", outs[i], d ? loom_last_error(ctx) : strerror(errno));
            free(d);
            break;
        }
        free(d);
        const loom_onnx_value *o = &info.outputs[i];
        for (int j = 0; j < info.noutputs; j++)
            if (want.name[0] && !strcmp(info.outputs[j].name, want.name))
                o = &info.outputs[j];
        uint64_t cnt = 1;
        for (int j = 0; j < o->ndim; j++)
            cnt *= (uint64_t)o->shape[j];
        size_t bytes = (size_t)cnt * loom_dtype_size(o->dtype);
        void *got = malloc(bytes + 1);
        s = got ? loom_program_read(p, o->name, got, bytes) : LOOM_E_OOM;
        if (s != LOOM_OK)
            set_msg(r, status_of(s), "read \"%s\": %s", o->name, loom_last_error(ctx));
        else
            compare(ctx, o, got, &want, r);
        free(got);
        loom_onnx_tensor_free(&want);
    }
out:
    for (int i = 0; i < ni; i++)
        loom_onnx_tensor_free(&in_t[i]);
    loom_program_destroy(p);
    loom_graph_destroy(g);
    loom_onnx_info_free(&info);
    loom_state_destroy(st);
}

static void run_case(loom_ctx *ctx, loom_device *dev, const char *dir, result *r)
{
    memset(r, 0, sizeof *r);
    r->st = ST_PASS;
    char model[512];
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    char sets[64][320];
    char *setnames[64];
    int nsets = 0;
    DIR *dd = opendir(dir);
    struct dirent *de;
    while (dd && (de = readdir(dd)) && nsets < 64)
        if (!strncmp(de->d_name, "test_data_set_", 14)) {
            snprintf(sets[nsets], sizeof sets[nsets], "%s/%s", dir, de->d_name);
            setnames[nsets] = sets[nsets];
            nsets++;
        }
    if (dd)
        closedir(dd);
    qsort(setnames, (size_t)nsets, sizeof *setnames, cmp_names);
    if (!nsets)
        set_msg(r, ST_FAIL, "no test_data_set_* folder");
    for (int k = 0; k < nsets && r->st == ST_PASS; k++)
        run_set(ctx, dev, model, setnames[k], r);
}

/* ---- the worker and its supervisor ---- */

static void quiet_log(void *u, loom_log_level l, const char *m)
{
    (void)u, (void)l, (void)m;
}

/* Runs cases [from, n) and reports each on fd: "B i\n" before, "R i st
 * worst seconds msg\n" after. */
static int worker(const char *spec, char **cases, int from, int n, int fd)
{
    loom_ctx_opts o;
    loom_ctx_opts_default(&o);
    o.log = quiet_log;
    loom_ctx *ctx = NULL;
    loom_device *dev = NULL;
    if (loom_ctx_create(&o, &ctx) != LOOM_OK || loom_device_open(ctx, spec, &dev) != LOOM_OK) {
        dprintf(fd, "E cannot open device %s: %s\n", spec, ctx ? loom_last_error(ctx) : "no context");
        return 1;
    }
    for (int i = from; i < n; i++) {
        dprintf(fd, "B %d\n", i);
        result r;
        double t0 = now_s();
        run_case(ctx, dev, cases[i], &r);
        r.seconds = now_s() - t0;
        for (char *c = r.msg; *c; c++)
            if (*c == '\n' || *c == '\r')
                *c = ' ';
        dprintf(fd, "R %d %d %.6g %.4f %d %s\n", i, (int)r.st, r.worst, r.seconds, r.frozen, r.msg);
    }
    loom_device_close(dev);
    loom_ctx_destroy(ctx);
    return 0;
}

/* Reads one line from fd within timeout seconds: 1 a line, 0 EOF, -1 timeout. */
static int read_line(int fd, char *buf, size_t n, double timeout, char *pend, size_t *plen)
{
    double end = now_s() + timeout;
    for (;;) {
        char *nl = memchr(pend, '\n', *plen);
        if (nl) {
            size_t l = (size_t)(nl - pend);
            size_t c = l < n - 1 ? l : n - 1;
            memcpy(buf, pend, c);
            buf[c] = 0;
            memmove(pend, nl + 1, *plen - l - 1);
            *plen -= l + 1;
            return 1;
        }
        double left = end - now_s();
        if (left <= 0)
            return -1;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        if (*plen >= 8191) {
            *plen = 0;
            continue;
        }
        ssize_t got = read(fd, pend + *plen, 8191 - *plen);
        if (got <= 0)
            return 0;
        *plen += (size_t)got;
    }
}

static const char *case_name(const char *dir)
{
    size_t l = strlen(dir);
    while (l && dir[l - 1] == '/')
        l--;
    const char *s = dir + l;
    while (s > dir && s[-1] != '/')
        s--;
    return s;
}

int main(int argc, char **argv)
{
    const char *spec = "cpu", *json = NULL, *filter = NULL;
    double timeout = 300;
    int quiet = 0;
    static const struct option opts[] = {
        {"device", required_argument, 0, 'd'}, {"timeout", required_argument, 0, 't'},
        {"json", required_argument, 0, 'j'},   {"filter", required_argument, 0, 'f'},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case 'd': spec = optarg; break;
        case 't': timeout = atof(optarg); break;
        case 'j': json = optarg; break;
        case 'f': filter = optarg; break;
        case 'q': quiet = 1; break;
        case 'h':
            printf("usage: onnx_conformance --device SPEC [--timeout S] [--json FILE] [--filter SUBSTR] [--quiet] "
                   "CASE_DIR...\n");
            return 0;
        default: return 2;
        }
    }
    if (!(timeout > 0)) {
        fprintf(stderr, "onnx_conformance: --timeout must be > 0\n");
        return 2;
    }
    int n = 0;
    char **cases = calloc((size_t)(argc + 1), sizeof *cases);
    for (int i = optind; i < argc; i++)
        if (!filter || strstr(argv[i], filter))
            cases[n++] = argv[i];
    result *res = calloc((size_t)n + 1, sizeof *res);
    model_ops *mops = calloc((size_t)n + 1, sizeof *mops);
    if (!cases || !res || !mops)
        return 1;
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/model.onnx", cases[i]);
        read_ops(path, &mops[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    int next = 0;
    char line[1024];
    static char pend[8192];
    while (next < n) {
        int pfd[2];
        if (pipe(pfd) != 0)
            return 1;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            _exit(worker(spec, cases, next, n, pfd[1]));
        }
        close(pfd[1]);
        size_t plen = 0;
        int current = -1;
        for (;;) {
            /* a generous first wait: the device opens */
            int rl = read_line(pfd[0], line, sizeof line, current < 0 ? timeout + 60 : timeout, pend, &plen);
            if (rl == 1 && line[0] == 'B') {
                current = atoi(line + 2);
                continue;
            }
            if (rl == 1 && line[0] == 'R') {
                int i, st, fr = 0;
                double worst, secs;
                int off = 0;
                if (sscanf(line + 2, "%d %d %lf %lf %d %n", &i, &st, &worst, &secs, &fr, &off) >= 5 && i >= 0 &&
                    i < n && st >= 0 && st < ST_COUNT) {
                    res[i].st = (status)st;
                    res[i].frozen = fr;
                    res[i].worst = worst;
                    res[i].seconds = secs;
                    snprintf(res[i].msg, sizeof res[i].msg, "%s", off ? line + 2 + off : "");
                    if (!quiet)
                        printf("%-11s %s%s%s\n", st_names[st], case_name(cases[i]), res[i].msg[0] ? "  " : "",
                               res[i].msg);
                    next = i + 1;
                }
                current = -1;
                continue;
            }
            if (rl == 1 && line[0] == 'E') {
                fprintf(stderr, "onnx_conformance: %s\n", line + 2);
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                return 1;
            }
            if (rl == 1)
                continue;
            /* EOF (the worker ended or died) or a timeout */
            int wst = 0;
            if (rl < 0)
                kill(pid, SIGKILL);
            waitpid(pid, &wst, 0);
            if (current >= 0) {
                res[current].st = rl < 0 ? ST_TIMEOUT : ST_CRASH;
                if (rl < 0)
                    snprintf(res[current].msg, sizeof res[current].msg, "ran past %g s", timeout);
                else
                    snprintf(res[current].msg, sizeof res[current].msg, "worker died (%s %d)",
                             WIFSIGNALED(wst) ? "signal" : "exit", WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
                if (!quiet)
                    printf("%-11s %s  %s\n", st_names[res[current].st], case_name(cases[current]), res[current].msg);
                next = current + 1;
            } else if (rl < 0 || next < n) {
                /* died between cases: skip nothing, but never spin */
                if (rl == 0 && WIFEXITED(wst) && WEXITSTATUS(wst) == 0)
                    next = n;
                else if (rl != 0 || !(WIFEXITED(wst)))
                    next = next < n ? next + 1 : n;
            }
            break;
        }
        close(pfd[0]);
    }
    int count[ST_COUNT] = {0}, lcount[ST_COUNT] = {0}, tcount[ST_COUNT] = {0}, listed = 0, typed = 0;
    for (int i = 0; i < n; i++) {
        count[res[i].st]++;
        if (mops[i].listed) {
            listed++;
            lcount[res[i].st]++;
        }
        if (mops[i].typed) {
            typed++;
            tcount[res[i].st]++;
        }
    }
    printf("\n%s: %d cases: %d pass, %d fail, %d unsupported, %d crash, %d timeout\n", spec, n, count[ST_PASS],
           count[ST_FAIL], count[ST_UNSUPPORTED], count[ST_CRASH], count[ST_TIMEOUT]);
    printf("%s: %d cases whose ops loom lists: %d pass (%.1f%%), %d fail, %d unsupported, %d crash, %d timeout\n",
           spec, listed, lcount[ST_PASS], listed ? 100.0 * lcount[ST_PASS] / listed : 0.0, lcount[ST_FAIL],
           lcount[ST_UNSUPPORTED], lcount[ST_CRASH], lcount[ST_TIMEOUT]);
    printf("%s: %d of them of element types loom holds: %d pass (%.1f%%), %d fail, %d unsupported, %d crash, "
           "%d timeout\n", spec, typed, tcount[ST_PASS], typed ? 100.0 * tcount[ST_PASS] / typed : 0.0,
           tcount[ST_FAIL], tcount[ST_UNSUPPORTED], tcount[ST_CRASH], tcount[ST_TIMEOUT]);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "device", spec);
        cJSON_AddNumberToObject(root, "rtol", RTOL);
        cJSON_AddNumberToObject(root, "atol", ATOL);
        cJSON_AddNumberToObject(root, "timeout_s", timeout);
        cJSON *tot = cJSON_AddObjectToObject(root, "totals");
        cJSON *lt = cJSON_AddObjectToObject(root, "listed");
        cJSON *ty = cJSON_AddObjectToObject(root, "listed_types");
        cJSON_AddNumberToObject(tot, "cases", n);
        cJSON_AddNumberToObject(lt, "cases", listed);
        cJSON_AddNumberToObject(ty, "cases", typed);
        for (int s = 0; s < ST_COUNT; s++) {
            cJSON_AddNumberToObject(tot, st_names[s], count[s]);
            cJSON_AddNumberToObject(lt, st_names[s], lcount[s]);
            cJSON_AddNumberToObject(ty, st_names[s], tcount[s]);
        }
        cJSON *arr = cJSON_AddArrayToObject(root, "cases");
        for (int i = 0; i < n; i++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "name", case_name(cases[i]));
            cJSON_AddStringToObject(c, "ops", mops[i].ops);
            cJSON_AddNumberToObject(c, "opset", (double)mops[i].opset);
            cJSON_AddBoolToObject(c, "listed", mops[i].listed);
            cJSON_AddBoolToObject(c, "listed_types", mops[i].typed);
            cJSON_AddStringToObject(c, "status", st_names[res[i].st]);
            if (res[i].msg[0])
                cJSON_AddStringToObject(c, "message", res[i].msg);
            cJSON_AddNumberToObject(c, "seconds", res[i].seconds);
            if (res[i].frozen)
                cJSON_AddNumberToObject(c, "inputs_given_at_load", res[i].frozen);
            cJSON_AddItemToArray(arr, c);
        }
        char *txt = cJSON_Print(root);
        loom_ctx *ctx = NULL;
        int ok = txt && loom_ctx_create(NULL, &ctx) == LOOM_OK &&
                 loom_write_file_atomic(ctx, json, txt, strlen(txt)) == LOOM_OK;
        if (!ok)
            fprintf(stderr, "onnx_conformance: cannot write %s: %s\n", json, ctx ? loom_last_error(ctx) : "no memory");
        loom_ctx_destroy(ctx);
        free(txt);
        cJSON_Delete(root);
        if (!ok)
            return 1;
    }
    free(cases);
    free(res);
    free(mops);
    return count[ST_CRASH] || count[ST_TIMEOUT] ? 3 : 0;
}
