/*
 * The payload checksum on the CPU: the bytes read as little-endian uint32 words (the tail
 * zero-padded to a whole word), summed modulo 2**64 (jetson_shm_ros.core.payload).
 *
 * NumPy's sum gives the same number, but every frame pays its dispatch, about 3 us hot and
 * some 15 us more when a frame's code runs cold (one frame every few milliseconds). Here a
 * call is a buffer lookup and one loop that the compiler vectorizes; buffers of 64 KiB and more
 * are summed without the GIL, so other threads run meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "jetson_shm_ros lays out payloads for little-endian hosts only"
#endif

/* Without the GIL from this size on: below it, releasing costs more than it frees. */
#define NOGIL_BYTES (64 * 1024)

static uint64_t sum_words(const unsigned char *bytes, size_t nbytes)
{
    size_t words = nbytes / 4;
    /* Four sums: independent additions, which the compiler spreads over vector lanes. */
    uint64_t sums[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= words; i += 4) {
        uint32_t w[4];
        memcpy(w, bytes + 4 * i, sizeof w);  /* no alignment assumed */
        sums[0] += w[0];
        sums[1] += w[1];
        sums[2] += w[2];
        sums[3] += w[3];
    }
    uint64_t total = sums[0] + sums[1] + sums[2] + sums[3];
    for (; i < words; i++) {
        uint32_t w;
        memcpy(&w, bytes + 4 * i, sizeof w);
        total += w;
    }
    size_t tail = nbytes % 4;
    if (tail) {
        uint32_t w = 0;
        memcpy(&w, bytes + 4 * words, tail);  /* zero-padded */
        total += w;
    }
    return total;
}

PyDoc_STRVAR(checksum_words_doc,
"checksum_words(buffer) -> int\n\n"
"Sum a C-contiguous buffer as little-endian uint32 words (the tail zero-padded), modulo\n"
"2**64. Raises BufferError for a buffer that is not contiguous.");

static PyObject *checksum_words(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS) < 0) {
        return NULL;
    }
    uint64_t total;
    if (view.len >= NOGIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        total = sum_words(view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
    } else {
        total = sum_words(view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(total);
}

static PyMethodDef checksum_methods[] = {
    {"checksum_words", checksum_words, METH_O, checksum_words_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef checksum_module = {
    PyModuleDef_HEAD_INIT,
    "jetson_shm_ros.core._checksum",
    "The payload checksum in C; use jetson_shm_ros.core.payload.checksum_words instead.",
    -1,
    checksum_methods,
};

PyMODINIT_FUNC PyInit__checksum(void)
{
    return PyModule_Create(&checksum_module);
}
