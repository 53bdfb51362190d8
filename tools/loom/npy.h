/* NumPy .npy files (format versions 1.0 to 3.0, C order, little-endian):
 * the inputs and outputs of `loom run`. Element types map to ONNX's
 * (loom_onnx_type); bfloat16, which NumPy lacks, is written as float32. */
#ifndef LOOM_CLI_NPY_H
#define LOOM_CLI_NPY_H

#include "loom.h"

#include <stddef.h>
#include <stdint.h>

typedef struct npy_array {
    int type;                  /* loom_onnx_type */
    int ndim;
    int64_t shape[LOOM_ONNX_MAX_RANK];
    uint64_t count;
    void *data;                /* malloc'd, count * loom_onnx_type_size(type) */
} npy_array;

/* 0, or -1 after writing what is wrong (naming the file) into err. */
int npy_read(const char *path, npy_array *out, char *err, size_t errlen);
/* Parses the bytes of a whole file. */
int npy_parse(const unsigned char *d, size_t n, npy_array *out, char *err, size_t errlen);
/* The bytes of an .npy file of these values (malloc'd, *n bytes); NULL
 * when the type has no NumPy form. */
unsigned char *npy_encode(int type, int ndim, const int64_t *shape, const void *data, size_t *n);
void npy_free(npy_array *a);

#endif
