/* JSON text into a growing bytes object, for capture's native line encoder (_lines.c).
 *
 * A Buffer is the bytes object being returned, written in place and resized as it fills.
 * put_* write one JSON string literal, quotes included, escaped as
 * json.encoder.encode_basestring_ascii does (ensure_ascii): the short escapes \" \\ \b \f \n
 * \r \t, every other character outside ' '..'~' as \u00xx with lowercase hex, astral
 * characters as a surrogate pair; put_base64 writes standard base64 with padding.
 *
 * Included by _lines.c only: everything here is static.
 */

#ifndef SHADOWLAB_CAPTURE_JSONTEXT_H
#define SHADOWLAB_CAPTURE_JSONTEXT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The lines, written straight into the bytes object returned (resized as it fills). */
typedef struct {
    PyObject *bytes;
    char *data; /* PyBytes_AS_STRING(bytes) */
    Py_ssize_t len;
    Py_ssize_t cap;
} Buffer;

static int
reserve(Buffer *b, Py_ssize_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    if (b->bytes == NULL)
        b->bytes = PyBytes_FromStringAndSize(NULL, cap);
    else if (_PyBytes_Resize(&b->bytes, cap) < 0)
        b->bytes = NULL; /* _PyBytes_Resize freed it */
    if (b->bytes == NULL)
        return -1;
    b->data = PyBytes_AS_STRING(b->bytes);
    b->cap = cap;
    return 0;
}

/* Callers reserve first: these only copy. */
static inline void
put(Buffer *b, const char *s, Py_ssize_t n)
{
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
}

#define PUT_LITERAL(b, s) put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

static int
append(Buffer *b, const char *s, Py_ssize_t n)
{
    if (reserve(b, n) < 0)
        return -1;
    put(b, s, n);
    return 0;
}

#define APPEND_LITERAL(b, s) append((b), (s), (Py_ssize_t)(sizeof(s) - 1))

static const char HEX[] = "0123456789abcdef";

/* One code point, escaped, written at `out`; returns the end. Room for 12 bytes is the
 * caller's to reserve. */
static inline char *
escape_into(char *out, Py_UCS4 c)
{
    if (c >= ' ' && c <= '~' && c != '\\' && c != '"') {
        *out = (char)c;
        return out + 1;
    }
    out[0] = '\\';
    switch (c) {
    case '\\': out[1] = '\\'; return out + 2;
    case '"': out[1] = '"'; return out + 2;
    case '\b': out[1] = 'b'; return out + 2;
    case '\f': out[1] = 'f'; return out + 2;
    case '\n': out[1] = 'n'; return out + 2;
    case '\r': out[1] = 'r'; return out + 2;
    case '\t': out[1] = 't'; return out + 2;
    }
    if (c >= 0x10000) { /* a surrogate pair */
        Py_UCS4 v = c - 0x10000;
        Py_UCS4 high = 0xd800 | ((v >> 10) & 0x3ff);
        out[1] = 'u';
        out[2] = HEX[(high >> 12) & 0xf];
        out[3] = HEX[(high >> 8) & 0xf];
        out[4] = HEX[(high >> 4) & 0xf];
        out[5] = HEX[high & 0xf];
        out += 6;
        c = 0xdc00 | (v & 0x3ff);
        out[0] = '\\';
    }
    out[1] = 'u';
    out[2] = HEX[(c >> 12) & 0xf];
    out[3] = HEX[(c >> 8) & 0xf];
    out[4] = HEX[(c >> 4) & 0xf];
    out[5] = HEX[c & 0xf];
    return out + 6;
}

/* Whether any of 8 bytes needs more than a copy: >= 0x80, < 0x20, '"', '\\' or DEL. The
 * classic "has a zero byte" bit trick, four times: exact as a yes/no answer. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static inline int
needs_care(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\'), del = w ^ (ONES * 0x7f);
    uint64_t found = ((w - ONES * 0x20) & ~w) | ((quote - ONES) & ~quote) |
                     ((backslash - ONES) & ~backslash) | ((del - ONES) & ~del) | w;
    return (found & HIGHS) != 0;
}

/* Bytes as a JSON string literal when they are all ASCII: 1 when written, 0 when a byte >= 0x80
 * shows they are not (nothing is left written), -1 on error. Eight bytes at a time while they
 * need no escaping, which is nearly always. */
static int
put_ascii(Buffer *b, const unsigned char *s, Py_ssize_t n)
{
    if (reserve(b, 2 + 6 * n) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    Py_ssize_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!needs_care(w)) {
                memcpy(out, &w, 8);
                out += 8;
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i++];
        if (c >= 0x80)
            return 0; /* b->len untouched: nothing was written */
        out = escape_into(out, c);
    }
    *out++ = '"';
    b->len = out - b->data;
    return 1;
}

/* A str as a JSON string literal, quotes included. */
static int
put_str(Buffer *b, PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (PyUnicode_IS_ASCII(text))
        return put_ascii(b, PyUnicode_1BYTE_DATA(text), n) < 0 ? -1 : 0;
    if (reserve(b, 2 + 12 * n) < 0)
        return -1;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++)
        out = escape_into(out, PyUnicode_READ(kind, data, i));
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

/* Bytes read as latin-1 (a header value), as a JSON string literal. */
static int
put_latin1(Buffer *b, const unsigned char *s, Py_ssize_t n)
{
    if (reserve(b, 2 + 6 * n) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++)
        out = escape_into(out, s[i]);
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

static int
put_base64(Buffer *b, const unsigned char *s, Py_ssize_t n)
{
    static const char ALPHABET[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (reserve(b, 2 + (n + 2) / 3 * 4) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    Py_ssize_t i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned int v = ((unsigned int)s[i] << 16) | ((unsigned int)s[i + 1] << 8) | s[i + 2];
        *out++ = ALPHABET[(v >> 18) & 63];
        *out++ = ALPHABET[(v >> 12) & 63];
        *out++ = ALPHABET[(v >> 6) & 63];
        *out++ = ALPHABET[v & 63];
    }
    if (i < n) {
        unsigned int v = (unsigned int)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned int)s[i + 1] << 8;
        *out++ = ALPHABET[(v >> 18) & 63];
        *out++ = ALPHABET[(v >> 12) & 63];
        *out++ = i + 1 < n ? ALPHABET[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

#endif
