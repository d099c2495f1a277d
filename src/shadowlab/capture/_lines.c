/* Capture's native line encoder: a window's records as SageMaker data-capture JSON Lines, in
 * one pass and one buffer.
 *
 * This is `RecordEncoder.encode_batch` (capture/record.py) in C, and nothing more: the Python
 * encoder there is the specification and the fallback when this module is not built, and
 * tests/capture/test_capture_encoding.py holds the two equal byte for byte (Hypothesis). Why it
 * exists: in Python, encoding was the largest part of capture's cost, ~15k CPU instructions per
 * record of CPython's string and dict work; here it is a few hundred (docs/benchmarks.md,
 * "capture"). Everything that decides *what* is written (content-type rules, the cache bounds,
 * the window a record goes to) stays in Python; this file only lays out bytes.
 *
 * encode_lines(records, capture_input, capture_output, types, resolve)
 *     records         list of InvocationRecord (plain tuples, read by position; see
 *                     dataplane/observer.py for the field order)
 *     types           dict: content type as sent (bytes or None) -> its framing, pre-built
 *                     in Python (see put_payload)
 *     resolve         called with a content type missing from `types`; returns its entry
 *                     (and stores it there)
 *  -> (data, records, failed, timeout, model_errors, shed, first, last)
 *
 * JSON strings are escaped as json.encoder.encode_basestring_ascii does (_jsontext.h).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include "_jsontext.h"

/* Field positions: dataplane/observer.py's InvocationEvent and InvocationRecord. */
enum { EV_ID = 1, EV_INFERENCE_ID = 2, EV_TIME = 3, EV_BODY = 4, EV_TYPE = 5, EV_FIELDS = 8 };
enum {
    REC_EVENT = 0, REC_STATUS = 3, REC_BODY = 4, REC_TYPE = 5, REC_ERROR = 6, REC_OUTCOME = 8,
    REC_FIELDS = 9
};

/* A payload object: the type's pre-built prefix ({"observedContentType":...,"data":), the data,
 * then the suffix (,"encoding":"..."}). A type entry is (text, input_prefix, output_prefix,
 * suffix, base64_suffix): capture/record.py's _Type.entry. */
enum { TYPE_TEXT, TYPE_INPUT_PREFIX, TYPE_OUTPUT_PREFIX, TYPE_SUFFIX, TYPE_BASE64_SUFFIX, TYPE_FIELDS };

static int
append_ascii(Buffer *b, PyObject *ascii)
{
    return append(b, (const char *)PyUnicode_1BYTE_DATA(ascii), PyUnicode_GET_LENGTH(ascii));
}

/* The data as text when the type says so and it is UTF-8, else BASE64; then its suffix. */
static int
put_payload(Buffer *b, PyObject *entry, int prefix_field, PyObject *body)
{
    if (append_ascii(b, PyTuple_GET_ITEM(entry, prefix_field)) < 0)
        return -1;
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(body);
    Py_ssize_t n = PyBytes_GET_SIZE(body);
    if (PyTuple_GET_ITEM(entry, TYPE_TEXT) == Py_True) {
        int ascii = put_ascii(b, s, n); /* the common case: escaped straight from the bytes */
        if (ascii < 0)
            return -1;
        if (!ascii) { /* Python's own strict decoder decides what is UTF-8, as in record.py */
            PyObject *text = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
            if (text == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                    return -1;
                PyErr_Clear(); /* not UTF-8: cannot be carried as text */
                goto base64;
            }
            int failed = put_str(b, text);
            Py_DECREF(text);
            if (failed)
                return -1;
        }
        return append_ascii(b, PyTuple_GET_ITEM(entry, TYPE_SUFFIX));
    }
base64:
    if (put_base64(b, s, n) < 0)
        return -1;
    return append_ascii(b, PyTuple_GET_ITEM(entry, TYPE_BASE64_SUFFIX));
}

/* The last content type seen in one role (input or output) and its entry, held for one call:
 * each request brings its header value as a new bytes object whose hash is not computed yet,
 * and the value nearly always repeats the last one, so a compare saves hashing and a lookup. */
typedef struct {
    PyObject *key;
    PyObject *entry;
} LastType;

static void
forget(LastType *last)
{
    Py_CLEAR(last->key);
    Py_CLEAR(last->entry);
}

static PyObject *type_entry(PyObject *types, PyObject *resolve, PyObject *content_type);

/* type_entry, through the role's last one. Borrowed (kept alive by `last`). */
static PyObject *
cached_type_entry(LastType *last, PyObject *types, PyObject *resolve, PyObject *content_type)
{
    PyObject *key = last->key;
    if (key != NULL &&
        (key == content_type ||
         (content_type != Py_None && key != Py_None &&
          PyBytes_GET_SIZE(key) == PyBytes_GET_SIZE(content_type) &&
          memcmp(PyBytes_AS_STRING(key), PyBytes_AS_STRING(content_type),
                 (size_t)PyBytes_GET_SIZE(key)) == 0)))
        return last->entry;
    PyObject *entry = type_entry(types, resolve, content_type);
    if (entry == NULL)
        return NULL;
    Py_INCREF(content_type);
    Py_INCREF(entry);
    forget(last);
    last->key = content_type;
    last->entry = entry;
    return entry;
}

/* The `types` entry of a content type, resolving a new one. Borrowed (kept alive by `types`). */
static PyObject *
type_entry(PyObject *types, PyObject *resolve, PyObject *content_type)
{
    PyObject *entry = PyDict_GetItemWithError(types, content_type);
    if (entry == NULL && !PyErr_Occurred()) {
        PyObject *made = PyObject_CallOneArg(resolve, content_type);
        if (made == NULL)
            return NULL;
        Py_DECREF(made); /* `resolve` stored it in `types`; read it from there */
        entry = PyDict_GetItemWithError(types, content_type);
        if (entry == NULL && !PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "resolve() did not store the content type");
    }
    if (entry == NULL)
        return NULL;
    if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != TYPE_FIELDS)
        goto malformed;
    for (int field = TYPE_INPUT_PREFIX; field < TYPE_FIELDS; field++) {
        PyObject *part = PyTuple_GET_ITEM(entry, field);
        if (!PyUnicode_Check(part) || !PyUnicode_IS_ASCII(part))
            goto malformed;
    }
    return entry;
malformed:
    PyErr_SetString(PyExc_TypeError, "a content type's entry is (text, input_prefix, "
                                     "output_prefix, suffix, base64_suffix), in ASCII");
    return NULL;
}

/* 2022-02-14T17:25:49Z, remembered for the last second asked (records arrive in bursts).
 * LLONG_MIN is no second a record can have: the caller refuses times below -9.2e18. */
static long long last_second = LLONG_MIN;
static char last_iso[32];

static int
put_inference_time(Buffer *b, long long second)
{
    if (second != last_second) {
        time_t t = (time_t)second;
        struct tm tm;
        char iso[sizeof(last_iso)];
        if (gmtime_r(&t, &tm) == NULL ||
            /* The C library's strftime, as Python's time.strftime uses. */
            strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
            PyErr_SetString(PyExc_OverflowError, "inference time out of range");
            return -1;
        }
        memcpy(last_iso, iso, sizeof(iso));
        last_second = second;
    }
    return append(b, last_iso, (Py_ssize_t)strlen(last_iso));
}

typedef struct {
    Py_ssize_t records, failed, timeout, model_errors, shed;
    long long first, last;
} Counts;

static int
is_bytes_or_none(PyObject *o)
{
    return o == Py_None || PyBytes_Check(o);
}

/* One record's line, or nothing for a shed copy. */
typedef struct {
    int capture_input, capture_output;
    PyObject *types, *resolve;
    LastType input, output;
} Encoder;

static int
encode_one(Buffer *b, PyObject *record, Encoder *encoder, Counts *counts)
{
    int capture_input = encoder->capture_input, capture_output = encoder->capture_output;
    if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) < REC_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "capture records are InvocationRecord tuples");
        return -1;
    }
    PyObject *event = PyTuple_GET_ITEM(record, REC_EVENT);
    PyObject *outcome = PyTuple_GET_ITEM(record, REC_OUTCOME);
    PyObject *status_obj = PyTuple_GET_ITEM(record, REC_STATUS);
    PyObject *response = PyTuple_GET_ITEM(record, REC_BODY);
    PyObject *response_type = PyTuple_GET_ITEM(record, REC_TYPE);
    PyObject *error = PyTuple_GET_ITEM(record, REC_ERROR);
    if (!PyTuple_Check(event) || PyTuple_GET_SIZE(event) < EV_FIELDS ||
        !PyUnicode_Check(outcome) || !PyLong_Check(status_obj) || !PyBytes_Check(response) ||
        !is_bytes_or_none(response_type) || !(error == Py_None || PyUnicode_Check(error))) {
        PyErr_SetString(PyExc_TypeError, "a capture record's fields have unexpected types");
        return -1;
    }
    PyObject *event_id = PyTuple_GET_ITEM(event, EV_ID);
    PyObject *inference_id = PyTuple_GET_ITEM(event, EV_INFERENCE_ID);
    PyObject *time_obj = PyTuple_GET_ITEM(event, EV_TIME);
    PyObject *request = PyTuple_GET_ITEM(event, EV_BODY);
    PyObject *request_type = PyTuple_GET_ITEM(event, EV_TYPE);
    if (!PyUnicode_Check(event_id) || !is_bytes_or_none(inference_id) ||
        !PyBytes_Check(request) || !is_bytes_or_none(request_type)) {
        PyErr_SetString(PyExc_TypeError, "a capture event's fields have unexpected types");
        return -1;
    }
    long long status = PyLong_AsLongLong(status_obj);
    if (status == -1 && PyErr_Occurred())
        return -1;
    double when = PyFloat_AsDouble(time_obj);
    if (when == -1.0 && PyErr_Occurred())
        return -1;
    if (!(when > -9.2e18 && when < 9.2e18)) {
        PyErr_SetString(PyExc_OverflowError, "inference time out of range");
        return -1;
    }

    const char *outcome_name = PyUnicode_AsUTF8(outcome);
    if (outcome_name == NULL)
        return -1;
    int answered = strcmp(outcome_name, "answered") == 0;
    int usual = answered && status >= 200 && status < 300;
    if (!usual) {
        if (strcmp(outcome_name, "shed") == 0) {
            counts->shed++;
            return 0;
        }
        if (answered)
            counts->model_errors++;
        else if (strcmp(outcome_name, "timeout") == 0)
            counts->timeout++;
        else if (strcmp(outcome_name, "failed") == 0)
            counts->failed++;
        else {
            PyErr_Format(PyExc_ValueError, "no capture record for outcome %R", outcome);
            return -1;
        }
    }

    if (APPEND_LITERAL(b, "{\"captureData\":{") < 0)
        return -1;
    if (capture_input) {
        PyObject *entry =
            cached_type_entry(&encoder->input, encoder->types, encoder->resolve, request_type);
        if (entry == NULL || APPEND_LITERAL(b, "\"endpointInput\":") < 0 ||
            put_payload(b, entry, TYPE_INPUT_PREFIX, request) < 0)
            return -1;
    }
    if (capture_output && answered) { /* a record without an answer has no endpointOutput */
        PyObject *entry =
            cached_type_entry(&encoder->output, encoder->types, encoder->resolve, response_type);
        /* The prefix carries the separator: ,"endpointOutput":{... after an input. */
        if (entry == NULL || put_payload(b, entry, TYPE_OUTPUT_PREFIX, response) < 0)
            return -1;
    }
    if (APPEND_LITERAL(b, "},\"eventMetadata\":{\"eventId\":") < 0 || put_str(b, event_id) < 0)
        return -1;
    if (inference_id != Py_None && PyBytes_GET_SIZE(inference_id) > 0 && /* b"": none sent */
        (APPEND_LITERAL(b, ",\"inferenceId\":") < 0 ||
         put_latin1(b, (const unsigned char *)PyBytes_AS_STRING(inference_id),
                    PyBytes_GET_SIZE(inference_id)) < 0))
        return -1;
    long long second = (long long)when; /* toward zero, as int() */
    if (APPEND_LITERAL(b, ",\"inferenceTime\":\"") < 0 || put_inference_time(b, second) < 0 ||
        APPEND_LITERAL(b, "\"},\"eventVersion\":\"0\"") < 0)
        return -1;
    if (!usual) { /* shadowlab's extension: why there is no 2xx answer */
        char status_text[32];
        int status_len = snprintf(status_text, sizeof(status_text), "%lld", status);
        if (APPEND_LITERAL(b, ",\"shadowlab\":{\"outcome\":\"") < 0 ||
            append(b, outcome_name, (Py_ssize_t)strlen(outcome_name)) < 0 ||
            APPEND_LITERAL(b, "\",\"status\":") < 0 || append(b, status_text, status_len) < 0 ||
            APPEND_LITERAL(b, ",\"error\":") < 0)
            return -1;
        if (error == Py_None ? APPEND_LITERAL(b, "null") < 0 : put_str(b, error) < 0)
            return -1;
        if (APPEND_LITERAL(b, "}") < 0)
            return -1;
    }
    if (APPEND_LITERAL(b, "}\n") < 0)
        return -1;
    counts->records++;
    if (second < counts->first)
        counts->first = second;
    if (second > counts->last)
        counts->last = second;
    return 0;
}

static PyObject *
encode_lines(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *records;
    Encoder encoder = {0};
    if (!PyArg_ParseTuple(args, "O!ppO!O:encode_lines", &PyList_Type, &records,
                          &encoder.capture_input, &encoder.capture_output, &PyDict_Type,
                          &encoder.types, &encoder.resolve))
        return NULL;
    Buffer b = {NULL, NULL, 0, 0};
    Counts counts = {0, 0, 0, 0, 0, 1LL << 62, -1};
    /* A list that a callback (resolve) could change: hold each record while it is encoded. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(records); i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        Py_INCREF(record);
        int failed = encode_one(&b, record, &encoder, &counts);
        Py_DECREF(record);
        if (failed) {
            forget(&encoder.input);
            forget(&encoder.output);
            Py_XDECREF(b.bytes);
            return NULL;
        }
    }
    forget(&encoder.input);
    forget(&encoder.output);
    if (b.bytes == NULL)
        b.bytes = PyBytes_FromStringAndSize(NULL, 0);
    else if (_PyBytes_Resize(&b.bytes, b.len) < 0)
        b.bytes = NULL;
    if (b.bytes == NULL)
        return NULL;
    return Py_BuildValue("(NnnnnnLL)", b.bytes, counts.records, counts.failed, counts.timeout,
                         counts.model_errors, counts.shed, counts.first, counts.last);
}

static PyMethodDef methods[] = {
    {"encode_lines", encode_lines, METH_VARARGS,
     "encode_lines(records, capture_input, capture_output, types, resolve) -> (data, records, "
     "failed, timeout, model_errors, shed, first, last)\n\nSee capture/record.py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shadowlab.capture._lines",
    .m_doc = "Capture's native line encoder (see capture/record.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__lines(void)
{
    return PyModule_Create(&module);
}
