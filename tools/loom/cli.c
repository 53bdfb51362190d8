/* What the loom commands share: the context and exit status, option
 * parsing (getopt_long with checked values), JSON output. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

loom_ctx *cli_ctx(void)
{
    loom_ctx *ctx = NULL;
    loom_status s = loom_ctx_create(NULL, &ctx);
    if (s != LOOM_OK)
        fprintf(stderr, "loom: cannot create a context: %s\n", loom_status_str(s));
    return ctx;
}

int cli_finish(loom_ctx *ctx, const char *cmd, int rc)
{
    if (!ctx)
        return rc;
    uint64_t errors = loom_validation_errors(ctx);
    loom_ctx_destroy(ctx);
    if (errors) {
        fprintf(stderr, "loom %s: the Vulkan validation layer reported %llu error%s (see the messages above): "
                        "exit status %d\n", cmd, (unsigned long long)errors, errors == 1 ? "" : "s",
                CLI_EXIT_VALIDATION);
        return CLI_EXIT_VALIDATION;
    }
    return rc;
}

void cli_usage(FILE *f, const char *cmd)
{
    fprintf(f, "usage: loom %s  %s\n", cmd, cli_help(cmd));
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loom %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n");
    cli_usage(stderr, cmd);
    return CLI_EXIT_USAGE;
}

/* ---- options ------------------------------------------------------------------ */

#define CLI_MAX_OPTS 128

/* Which options were given, by their index in the table: one process
 * parses one command line. */
static unsigned char given_flags[CLI_MAX_OPTS];

cli_args cli_args_init(const char *cmd, int argc, char **argv, const struct option *opts)
{
    cli_args a = {cmd, argc, argv, opts, NULL, 0};
    memset(given_flags, 0, sizeof given_flags);
    optind = 0;  /* 0: GNU getopt starts over, its internal state reset */
    opterr = 0;  /* the messages are ours, naming the command */
    return a;
}

static const struct option *by_val(const cli_args *a, int val)
{
    for (const struct option *o = a->opts; o->name; o++)
        if (o->val == val)
            return o;
    return NULL;
}

static int stop(cli_args *a, int rc)
{
    a->rc = rc;
    return CLI_STOP;
}

int cli_next(cli_args *a)
{
    int index = -1;
    int c = getopt_long(a->argc, a->argv, ":h", a->opts, &index);
    if (c == -1) {
        if (optind < a->argc)
            return stop(a, cli_usage_error(a->cmd, "unexpected argument \"%s\"", a->argv[optind]));
        return -1;
    }
    if (c == 'h') {
        cli_usage(stdout, a->cmd);
        return stop(a, 0);
    }
    if (c == ':') {
        const struct option *o = by_val(a, optopt);
        return stop(a, cli_usage_error(a->cmd, "option --%s needs a value", o ? o->name : "?"));
    }
    if (c == '?') {
        const struct option *o = optopt ? by_val(a, optopt) : NULL;
        if (o)
            return stop(a, cli_usage_error(a->cmd, "option --%s takes no value", o->name));
        if (optopt)
            return stop(a, cli_usage_error(a->cmd, "unknown option -%c", optopt));
        return stop(a, cli_usage_error(a->cmd, "unknown option %s", a->argv[optind - 1]));
    }
    const struct option *o = index >= 0 ? &a->opts[index] : by_val(a, c);
    if (!o)
        return stop(a, cli_usage_error(a->cmd, "unknown option"));
    static char name[80];
    snprintf(name, sizeof name, "--%s", o->name);
    a->name = name;
    if (o - a->opts < CLI_MAX_OPTS)
        given_flags[o - a->opts] = 1;
    return c;
}

int cli_given(const cli_args *a, const char *name)
{
    for (int i = 0; a->opts[i].name && i < CLI_MAX_OPTS; i++)
        if (!strcmp(a->opts[i].name, name[0] == '-' && name[1] == '-' ? name + 2 : name))
            return given_flags[i];
    return 0;
}

int cli_int(cli_args *a, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = optarg ? optarg : "";
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno == ERANGE || x < lo || x > hi)
        return cli_usage_error(a->cmd, "%s: \"%s\" is not a whole number in [%lld, %lld]", a->name, v,
                               (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

int cli_double(cli_args *a, double lo, double hi, double *out)
{
    const char *v = optarg ? optarg : "";
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno == ERANGE || !isfinite(x) || x < lo || x > hi)
        return cli_usage_error(a->cmd, "%s: \"%s\" is not a number in [%g, %g]", a->name, v, lo, hi);
    *out = x;
    return 0;
}

int cli_choice(cli_args *a, const char *const *words)
{
    const char *v = optarg ? optarg : "";
    for (int i = 0; words[i]; i++)
        if (!strcmp(v, words[i]))
            return i;
    char list[256] = "";
    for (int i = 0; words[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", words[i]);
    cli_usage_error(a->cmd, "%s: \"%s\" is not one of %s", a->name, v, list);
    return -1;
}

const char *cli_opt(int argc, char **argv, const char *name, const char *def)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], name) && i + 1 < argc)
            return argv[i + 1];
        if (!strncmp(argv[i], name, n) && argv[i][n] == '=')
            return argv[i] + n + 1;
    }
    return def;
}

int cli_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name))
            return 1;
    return 0;
}

/* ---- JSON ----------------------------------------------------------------------- */

int cli_print_json(cJSON *root)
{
    char *s = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) {
        fprintf(stderr, "loom: out of memory writing JSON\n");
        return 1;
    }
    printf("%s\n", s);
    fflush(stdout);
    cJSON_free(s);
    return 0;
}

cJSON *cli_json_number(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

const char *const cli_lr_schedules[] = {"constant", "cosine", NULL};

void cli_set_lr_schedule(loom_optimizer *o, int cosine, int64_t warmup)
{
    o->schedule = cosine ? LOOM_LR_COSINE : LOOM_LR_CONSTANT;
    o->warmup_steps = cosine ? warmup : 0;
    o->total_steps = 0;
    o->lr_min = 0.0f;
}
