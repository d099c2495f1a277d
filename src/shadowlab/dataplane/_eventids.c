/* Event ids in C: dataplane/observer.py's `new_event_id`, for the hot path.
 *
 * An id is a 24-character prefix (the random, per-process part of a UUID version-4 layout,
 * dashes included) and a counter as 12 lowercase hex digits. observer.py draws the prefix and
 * the counter's start (`seed`) and keeps the Python version, which is the specification and
 * the fallback when this module is not built; tests/capture/test_capture_config.py holds the two
 * equal. Why it exists: formatting the id in Python (an f-string with a format spec, or taking it
 * from a pre-formatted block) cost 2-3.5k CPU instructions per request, more than any other step
 * of capture on the event loop; this is a few hundred (docs/benchmarks.md, "capture").
 *
 * Called on the event loop with the GIL held, so the counter needs no lock.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define PREFIX_LENGTH 24
#define ID_LENGTH 36

static char prefix[PREFIX_LENGTH];
static uint64_t counter;
static int seeded;

static PyObject *
new_event_id(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    static const char HEX[] = "0123456789abcdef";
    if (!seeded) {
        PyErr_SetString(PyExc_RuntimeError, "event ids are not seeded (observer.py seeds them)");
        return NULL;
    }
    PyObject *id = PyUnicode_New(ID_LENGTH, 127);
    if (id == NULL)
        return NULL;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(id);
    memcpy(out, prefix, PREFIX_LENGTH);
    uint64_t n = counter++;
    for (int i = ID_LENGTH - 1; i >= PREFIX_LENGTH; i--) {
        out[i] = (Py_UCS1)HEX[n & 15];
        n >>= 4;
    }
    return id;
}

static PyObject *
seed(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *text;
    unsigned long long start;
    if (!PyArg_ParseTuple(args, "UK:seed", &text, &start))
        return NULL;
    /* ASCII only: the ids are made as ASCII strs, byte by byte. */
    if (!PyUnicode_IS_ASCII(text) || PyUnicode_GET_LENGTH(text) != PREFIX_LENGTH) {
        PyErr_Format(PyExc_ValueError, "an event id prefix has %d ASCII characters",
                     PREFIX_LENGTH);
        return NULL;
    }
    memcpy(prefix, PyUnicode_1BYTE_DATA(text), PREFIX_LENGTH);
    counter = start;
    seeded = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"new_event_id", new_event_id, METH_NOARGS, "new_event_id() -> str: see observer.py."},
    {"seed", seed, METH_VARARGS,
     "seed(prefix, start): the 24-character prefix and the counter's next value."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shadowlab.dataplane._eventids",
    .m_doc = "Event ids for the hot path (see dataplane/observer.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__eventids(void)
{
    return PyModule_Create(&module);
}
