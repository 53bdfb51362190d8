/* Following a file that another process appends to. */
#define _POSIX_C_SOURCE 200809L
#include "dash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A line longer than this is not a metrics line; it is dropped rather than
 * buffered without bound. */
#define MAX_LINE (16u << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int dash_follow_open(dash_follow *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->path = strdup(path);
    f->last_growth = now_s();
    return f->path ? 0 : -1;
}

void dash_follow_close(dash_follow *f)
{
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    free(f->frag);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

int dash_follow_exists(const dash_follow *f)
{
    return f->fd >= 0;
}

static void restart(dash_follow *f)
{
    f->offset = 0;
    f->flen = 0;
    f->skipping = 0;
}

static int append(dash_follow *f, const char *b, size_t n)
{
    if (f->flen + n > f->fcap) {
        size_t nc = f->fcap ? f->fcap : 4096;
        while (nc < f->flen + n)
            nc *= 2;
        char *p = realloc(f->frag, nc);
        if (!p)
            return -1;
        f->frag = p;
        f->fcap = nc;
    }
    memcpy(f->frag + f->flen, b, n);
    f->flen += n;
    return 0;
}

int dash_follow_poll(dash_follow *f, dash_line_fn fn, void *user)
{
    struct stat ps, fs;
    if (f->fd < 0) {
        f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0)
            return 0;
        if (fstat(f->fd, &fs) == 0)
            f->dev = fs.st_dev, f->ino = fs.st_ino;
        restart(f);
    }
    if (stat(f->path, &ps) == 0 && (ps.st_dev != f->dev || ps.st_ino != f->ino)) {
        /* Replaced (a new run renamed over it): start again on the new file. */
        close(f->fd);
        f->fd = -1;
        restart(f);
        return DASH_RESTART;
    }
    if (fstat(f->fd, &fs) != 0)
        return 0;
    if (fs.st_size < f->offset) {
        restart(f);
        return DASH_RESTART;
    }
    int lines = 0;
    char buf[65536];
    for (;;) {
        ssize_t k = pread(f->fd, buf, sizeof buf, f->offset);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        f->offset += k;
        f->last_growth = now_s();
        size_t start = 0;
        for (size_t i = 0; i < (size_t)k; i++) {
            if (buf[i] != '\n')
                continue;
            size_t len = i - start;
            if (f->skipping) {
                f->long_lines++;
                f->skipping = 0;
            } else if (f->flen) {
                if (append(f, buf + start, len) < 0)
                    return -1;
                size_t n = f->flen;
                fn(user, f->frag, n && f->frag[n - 1] == '\r' ? n - 1 : n);
                lines++;
            } else {
                fn(user, buf + start, len && buf[start + len - 1] == '\r' ? len - 1 : len);
                lines++;
            }
            f->flen = 0;
            start = i + 1;
        }
        if (start < (size_t)k && !f->skipping) {
            if (append(f, buf + start, (size_t)k - start) < 0)
                return -1;
            if (f->flen > MAX_LINE) {
                f->flen = 0;
                f->skipping = 1;
            }
        }
    }
    return lines;
}
