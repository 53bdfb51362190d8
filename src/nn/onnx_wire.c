/* The protobuf wire format checked before protobuf-c unpacks it, so that a
 * truncated or corrupt file is refused with the field and byte offset at
 * fault (protobuf-c only says NULL), and nesting cannot take its
 * recursion deep; and protobuf-c's allocations through the context. */
#include "onnx_internal.h"

#include <stdio.h>
#include <string.h>

/* protobuf's own default recursion limit */
#define WIRE_MAX_DEPTH 100

typedef struct wire {
    loom_ctx *ctx;
    const char *what;
    const uint8_t *base;
    size_t total;
} wire;

static int varint(const uint8_t *p, size_t n, size_t *used, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *used = i + 1;
            *out = v;
            return 1;
        }
    }
    return 0;
}

static const char *wire_type_name(unsigned wt)
{
    static const char *const names[] = {"varint", "fixed64", "length-delimited", "group start", "group end",
                                        "fixed32", "6", "7"};
    return names[wt & 7];
}

/* The wire type a field of this type takes (packed repeated fields may
 * also come length-delimited). */
static unsigned expected_wire(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT: return 5;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 1;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE: return 2;
    default: return 0;
    }
}

static loom_status check(wire *w, const uint8_t *p, size_t n, const ProtobufCMessageDescriptor *desc, int depth,
                         char *path, size_t plen)
{
    if (depth > WIRE_MAX_DEPTH)
        return loom_fail(w->ctx, LOOM_E_FORMAT, "%s: %s nests messages more than %d deep", w->what, path,
                         WIRE_MAX_DEPTH);
    unsigned counts[64] = {0};
    size_t at = 0;
    while (at < n) {
        size_t off = (size_t)(p + at - w->base), used;
        uint64_t tag;
        if (!varint(p + at, n - at, &used, &tag))
            return loom_fail(w->ctx, LOOM_E_FORMAT, "%s: %s: a field tag at byte %zu is cut off (%zu bytes in all)",
                             w->what, path, off, w->total);
        at += used;
        unsigned wt = (unsigned)(tag & 7);
        uint64_t num = tag >> 3;
        if (num == 0 || num > 536870911u)
            return loom_fail(w->ctx, LOOM_E_FORMAT, "%s: %s: field number %llu at byte %zu is not valid", w->what,
                             path, (unsigned long long)num, off);
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(desc, (unsigned)num);
        size_t len = 0;
        switch (wt) {
        case 0: {
            uint64_t v;
            if (!varint(p + at, n - at, &used, &v))
                return loom_fail(w->ctx, LOOM_E_FORMAT, "%s: %s.%s: a varint at byte %zu is cut off", w->what, path,
                                 fd ? fd->name : "?", off);
            break;
        }
        case 1: used = 8; break;
        case 5: used = 4; break;
        case 2: {
            uint64_t l;
            if (!varint(p + at, n - at, &used, &l))
                return loom_fail(w->ctx, LOOM_E_FORMAT, "%s: %s.%s: a length at byte %zu is cut off", w->what,
                                 path, fd ? fd->name : "?", off);
            at += used;
            if (l > n - at)
                return loom_fail(w->ctx, LOOM_E_FORMAT,
                                 "%s: %s.%s at byte %zu claims %llu bytes, only %zu are left (truncated or corrupt)",
                                 w->what, path, fd ? fd->name : "?", off, (unsigned long long)l, n - at);
            len = (size_t)l;
            used = len;
            break;
        }
        default:
            return loom_fail(w->ctx, LOOM_E_FORMAT, "%s: %s: wire type %s at byte %zu is not used by ONNX files",
                             w->what, path, wire_type_name(wt), off);
        }
        if (wt != 2 && used > n - at)
            return loom_fail(w->ctx, LOOM_E_FORMAT, "%s: %s.%s: a %s value at byte %zu is cut off", w->what, path,
                             fd ? fd->name : "?", wire_type_name(wt), off);
        if (fd) {
            unsigned want = expected_wire(fd->type);
            int packed_ok = fd->label == PROTOBUF_C_LABEL_REPEATED && want != 2 && wt == 2;
            if (wt != want && !packed_ok)
                return loom_fail(w->ctx, LOOM_E_FORMAT, "%s: %s.%s at byte %zu is %s, the field is %s", w->what,
                                 path, fd->name, off, wire_type_name(wt), wire_type_name(want));
            if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                size_t pl = strlen(path);
                unsigned idx = num < 64 ? counts[num]++ : 0;
                if (fd->label == PROTOBUF_C_LABEL_REPEATED)
                    snprintf(path + pl, plen - pl, ".%s[%u]", fd->name, idx);
                else
                    snprintf(path + pl, plen - pl, ".%s", fd->name);
                loom_status s = check(w, p + at, len, fd->descriptor, depth + 1, path, plen);
                path[pl] = 0;
                if (s != LOOM_OK)
                    return s;
            }
        }
        at += used;
    }
    return LOOM_OK;
}

loom_status ox_wire_check(loom_ctx *ctx, const char *what, const uint8_t *data, size_t n,
                          const ProtobufCMessageDescriptor *desc)
{
    wire w = {ctx, what, data, n};
    char path[1024];
    snprintf(path, sizeof path, "%s", desc->short_name);
    return check(&w, data, n, desc, 0, path, sizeof path);
}

/* protobuf-c frees without a size; loom_free wants one: keep it in front. */
typedef union pb_head {
    size_t size;
    max_align_t align;
} pb_head;

static void *pb_alloc(void *user, size_t size)
{
    ox_pb_alloc *a = user;
    size_t total;
    pb_head *h = loom_add_size(size, sizeof(pb_head), &total) ? NULL : loom_malloc(a->ctx, total);
    if (!h) {
        a->failed = 1;
        return NULL;
    }
    h->size = total;
    return h + 1;
}

static void pb_free(void *user, void *p)
{
    if (!p)
        return;
    pb_head *h = (pb_head *)p - 1;
    loom_free(((ox_pb_alloc *)user)->ctx, h, h->size);
}

void ox_pb_allocator(loom_ctx *ctx, ox_pb_alloc *a)
{
    a->ctx = ctx;
    a->failed = 0;
    a->al.alloc = pb_alloc;
    a->al.free = pb_free;
    a->al.allocator_data = a;
}
