/*
 * Atomic operations on 64-bit words in shared memory, with stated C11 memory orders.
 *
 * Python cannot express atomic read-modify-write or memory ordering; the sequence lock and the
 * slot claims of jetson_shm_ros need both, on x86_64 and on the Arm cores of a Jetson. Every
 * function takes the address of a naturally aligned 64-bit word (an int, e.g. a NumPy view's
 * .ctypes.data plus an offset). The Python wrapper (jetson_shm_ros.core.atomics) checks that
 * the word lies inside a live mapping; here only null and misaligned addresses are refused,
 * because a misaligned exclusive access raises SIGBUS on Arm.
 *
 * GCC/Clang __atomic builtins only: no inline assembly, nothing x86-specific. The words must be
 * lock-free (checked at compile time): a lock-based fallback (libatomic) would take a lock that
 * is private to one process, so it would not be atomic across processes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

_Static_assert(sizeof(uint64_t) == 8 && __atomic_always_lock_free(sizeof(uint64_t), 0),
               "jetson_shm_ros needs lock-free 64-bit atomics (x86_64, aarch64)");

static int word_address(PyObject *arg, uint64_t **word)
{
    unsigned long long value = PyLong_AsUnsignedLongLong(arg);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    if (value == 0 || value % sizeof(uint64_t) != 0) {
        /* snprintf: PyErr_Format's %x modifiers differ between Python versions. */
        char text[96];
        snprintf(text, sizeof text, "address %#llx is not a non-null 8-byte aligned address",
                 value);
        PyErr_SetString(PyExc_ValueError, text);
        return -1;
    }
    *word = (uint64_t *)(uintptr_t)value;
    return 0;
}

static int word_value(PyObject *arg, uint64_t *value)
{
    unsigned long long parsed = PyLong_AsUnsignedLongLong(arg);  /* OverflowError if < 0 */
    if (parsed == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    *value = (uint64_t)parsed;
    return 0;
}

static int check_nargs(const char *name, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, expected,
                     nargs);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(load_acquire_doc,
"load_acquire(address) -> int\n\n"
"Load the word with acquire order: no later load or store moves before it.");

static PyObject *load_acquire(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t *word;
    if (check_nargs("load_acquire", nargs, 1) || word_address(args[0], &word)) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(__atomic_load_n(word, __ATOMIC_ACQUIRE));
}

PyDoc_STRVAR(store_release_doc,
"store_release(address, value)\n\n"
"Store the word with release order: no earlier load or store moves after it.");

static PyObject *store_release(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t *word;
    uint64_t value;
    if (check_nargs("store_release", nargs, 2) || word_address(args[0], &word) ||
        word_value(args[1], &value)) {
        return NULL;
    }
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(compare_exchange_doc,
"compare_exchange(address, expected, desired) -> (bool, int)\n\n"
"Strong compare-and-swap: if the word equals expected, write desired. Returns (swapped, the\n"
"value found). Order: acq_rel when it swaps, acquire when it does not.");

static PyObject *compare_exchange(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t *word;
    uint64_t expected, desired;
    if (check_nargs("compare_exchange", nargs, 3) || word_address(args[0], &word) ||
        word_value(args[1], &expected) || word_value(args[2], &desired)) {
        return NULL;
    }
    /* On failure `expected` receives the value found. */
    int swapped = __atomic_compare_exchange_n(word, &expected, desired, 0, __ATOMIC_ACQ_REL,
                                              __ATOMIC_ACQUIRE);
    return Py_BuildValue("(OK)", swapped ? Py_True : Py_False, (unsigned long long)expected);
}

PyDoc_STRVAR(fetch_add_doc,
"fetch_add(address, value) -> int\n\n"
"Add value (modulo 2**64) and return the previous word, with acq_rel order.");

static PyObject *fetch_add(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t *word;
    uint64_t value;
    if (check_nargs("fetch_add", nargs, 2) || word_address(args[0], &word) ||
        word_value(args[1], &value)) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(__atomic_fetch_add(word, value, __ATOMIC_ACQ_REL));
}

PyDoc_STRVAR(fetch_and_doc,
"fetch_and(address, mask) -> int\n\n"
"AND the word with mask and return the previous word, with acq_rel order.");

static PyObject *fetch_and(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t *word;
    uint64_t mask;
    if (check_nargs("fetch_and", nargs, 2) || word_address(args[0], &word) ||
        word_value(args[1], &mask)) {
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(__atomic_fetch_and(word, mask, __ATOMIC_ACQ_REL));
}

PyDoc_STRVAR(fence_acquire_doc,
"fence_acquire()\n\n"
"Acquire fence: loads before it are ordered before every load and store after it.");

static PyObject *fence_acquire(PyObject *module, PyObject *unused)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(fence_release_doc,
"fence_release()\n\n"
"Release fence: loads and stores before it are ordered before every store after it.");

static PyObject *fence_release(PyObject *module, PyObject *unused)
{
    __atomic_thread_fence(__ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

static PyMethodDef atomics_methods[] = {
    {"load_acquire", (PyCFunction)(void (*)(void))load_acquire, METH_FASTCALL,
     load_acquire_doc},
    {"store_release", (PyCFunction)(void (*)(void))store_release, METH_FASTCALL,
     store_release_doc},
    {"compare_exchange", (PyCFunction)(void (*)(void))compare_exchange, METH_FASTCALL,
     compare_exchange_doc},
    {"fetch_add", (PyCFunction)(void (*)(void))fetch_add, METH_FASTCALL, fetch_add_doc},
    {"fetch_and", (PyCFunction)(void (*)(void))fetch_and, METH_FASTCALL, fetch_and_doc},
    {"fence_acquire", fence_acquire, METH_NOARGS, fence_acquire_doc},
    {"fence_release", fence_release, METH_NOARGS, fence_release_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef atomics_module = {
    PyModuleDef_HEAD_INIT,
    "jetson_shm_ros.core._atomics",
    "C11 atomics on 64-bit words at raw addresses; use jetson_shm_ros.core.atomics instead.",
    -1,
    atomics_methods,
};

PyMODINIT_FUNC PyInit__atomics(void)
{
    return PyModule_Create(&atomics_module);
}
