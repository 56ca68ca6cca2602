/*
 * A process deadline that needs no GIL: past it, one line to stderr and _exit(code).
 *
 * The middleware's teardown can deadlock inside C (Fast DDS 3.2.3, doc/lifecycle.md) while the
 * main thread holds the GIL: rclpy calls rcl_*_fini without releasing it, so no Python thread
 * (a threading.Timer, say) ever runs again. This thread is plain pthreads; it touches no Python
 * object after arm() returns. jetson_shm_ros.process.teardown decides when to arm it.
 *
 *   arm(deadline, exit_code, message)  deadline on the CLOCK_MONOTONIC clock (time.monotonic())
 *   disarm()
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static int started;
static int armed;
static int exit_code;
static struct timespec deadline;
static char message[512];
static size_t message_length;

static int same_time(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static void *watch(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&lock);
    for (;;) {
        if (!armed) {
            pthread_cond_wait(&changed, &lock);
            continue;
        }
        struct timespec at = deadline;
        int rc = pthread_cond_timedwait(&changed, &lock, &at);
        /* Re-armed or disarmed meanwhile: wait for the new deadline instead. */
        if (rc == ETIMEDOUT && armed && same_time(&at, &deadline)) {
            ssize_t written = write(STDERR_FILENO, message, message_length);
            (void)written;
            _exit(exit_code);
        }
    }
    return NULL;
}

static int start_thread(void)
{
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &attributes);
    pthread_condattr_destroy(&attributes);
    /* Signals go to the Python threads, never to this one. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, watch, NULL);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (rc != 0) {
        return rc;
    }
    pthread_detach(thread);
    started = 1;
    return 0;
}

static PyObject *arm(PyObject *self, PyObject *args)
{
    double when;
    int code;
    const char *text;
    Py_ssize_t length;
    (void)self;
    if (!PyArg_ParseTuple(args, "dis#", &when, &code, &text, &length)) {
        return NULL;
    }
    if (!(when >= 0.0 && when < 1e12)) {
        PyErr_SetString(PyExc_ValueError, "deadline must be a time.monotonic() value");
        return NULL;
    }
    pthread_mutex_lock(&lock);
    if (!started) {
        int rc = start_thread();
        if (rc != 0) {
            pthread_mutex_unlock(&lock);
            errno = rc;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    deadline.tv_sec = (time_t)when;
    deadline.tv_nsec = (long)((when - (double)deadline.tv_sec) * 1e9);
    exit_code = code;
    message_length = (size_t)length < sizeof message ? (size_t)length : sizeof message;
    memcpy(message, text, message_length);
    armed = 1;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
    Py_RETURN_NONE;
}

static PyObject *disarm(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    pthread_mutex_lock(&lock);
    armed = 0;
    if (started) {
        pthread_cond_signal(&changed);
    }
    pthread_mutex_unlock(&lock);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"arm", arm, METH_VARARGS,
     "arm(deadline, exit_code, message): past deadline (time.monotonic()), write message to "
     "stderr and _exit(exit_code), GIL or not. Re-arming moves the deadline."},
    {"disarm", disarm, METH_NOARGS, "disarm(): cancel the deadline."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_deadline",
    "A process deadline enforced by a pthread that needs no GIL.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__deadline(void)
{
    return PyModule_Create(&module);
}
