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

/* Room for `more` bytes past b->len, the buffer doubled until there is. */
static int
reserve(Buffer *b, Py_ssize_t more)
{
    if (more < 0 || more > PY_SSIZE_T_MAX - b->len) {
        PyErr_NoMemory();
        return -1;
    }
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
    if (b->bytes == NULL) {
        b->data = NULL;
        b->len = b->cap = 0;
        return -1;
    }
    b->data = PyBytes_AS_STRING(b->bytes);
    b->cap = cap;
    return 0;
}

/* Room for `need` bytes at `*out`, a position at or past b->len (written, not yet counted in
 * it); when the buffer grows, `*out` moves with it. */
static int
make_room(Buffer *b, char **out, Py_ssize_t need)
{
    Py_ssize_t at = *out - b->data;
    if (b->cap - at >= need)
        return 0;
    Py_ssize_t len = b->len;
    b->len = at;
    if (reserve(b, need) < 0)
        return -1;
    b->len = len;
    *out = b->data + at;
    return 0;
}

/* Room for `n` items of up to `per` bytes each and `extra` more, the product checked for
 * overflow before `reserve` sees it. */
static int
reserve_items(Buffer *b, Py_ssize_t n, Py_ssize_t per, Py_ssize_t extra)
{
    if (n > (PY_SSIZE_T_MAX - extra) / per) {
        PyErr_NoMemory();
        return -1;
    }
    return reserve(b, n * per + extra);
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

/* How many of the 8 bytes of `w` (as read from memory) come before the first one that needs
 * more than a copy: >= 0x80, < 0x20, '"', '\\' or DEL; 8 when none does. The classic "has a
 * zero byte" bit trick, four times, flags the high bit of such bytes; its lowest flag is exact
 * (a borrow only runs upwards, past the first match), and on a little-endian machine the
 * lowest byte is the first in memory. Elsewhere, any flag counts as the first byte. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

static inline int
clean_prefix(uint64_t w)
{
    uint64_t quote = w ^ (ONES * '"'), backslash = w ^ (ONES * '\\'), del = w ^ (ONES * 0x7f);
    uint64_t found = (((w - ONES * 0x20) & ~w) | ((quote - ONES) & ~quote) |
                      ((backslash - ONES) & ~backslash) | ((del - ONES) & ~del) | w) &
                     HIGHS;
    if (!found)
        return 8;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_ctzll(found) >> 3;
#else
    return 0;
#endif
}

/* Bytes as a JSON string literal when they are all ASCII: 1 when written, 0 when a byte >= 0x80
 * shows they are not (nothing is left written), -1 on error. Eight bytes at a time: the bytes
 * before the first that needs escaping are copied in one go, then that byte is escaped.
 *
 * Room is reserved for a plain copy (plus 8 bytes of slack: a word is stored whole) and grows
 * at an escape, not for the worst case up front: that would be six times a body that may be
 * hundreds of MiB. At the top of the loop, room >= (n - i) + 9. */
static int
put_ascii(Buffer *b, const unsigned char *s, Py_ssize_t n)
{
    if (reserve_items(b, n, 1, 10) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    Py_ssize_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            int clean = clean_prefix(w);
            memcpy(out, &w, 8); /* what lies past `clean` is written over */
            out += clean;
            i += clean;
            if (clean == 8)
                continue;
        }
        unsigned char c = s[i++];
        if (c >= 0x80)
            return 0; /* b->len untouched: nothing was written */
        if (make_room(b, &out, 6 + (n - i) + 9) < 0)
            return -1;
        out = escape_into(out, c);
    }
    *out++ = '"';
    b->len = out - b->data;
    return 1;
}

/* A str as a JSON string literal, quotes included. Room as in put_ascii: a character takes
 * one byte, or up to 12 escaped (an astral one as a surrogate pair). */
static int
put_str(Buffer *b, PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (PyUnicode_IS_ASCII(text)) {
        int ascii = put_ascii(b, PyUnicode_1BYTE_DATA(text), n);
        if (ascii != 0)
            return ascii < 0 ? -1 : 0;
        /* 0 cannot happen for a well-formed str; the general path below is right anyway */
    }
    if (reserve_items(b, n, 1, 2) < 0)
        return -1;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if ((c < ' ' || c > '~' || c == '\\' || c == '"') &&
            make_room(b, &out, 12 + (n - i - 1) + 1) < 0)
            return -1;
        out = escape_into(out, c);
    }
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

/* Bytes read as latin-1 (a header value, bounded by the request head's cap), as a JSON string
 * literal. */
static int
put_latin1(Buffer *b, const unsigned char *s, Py_ssize_t n)
{
    if (reserve_items(b, n, 6, 2) < 0)
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
    if (reserve_items(b, n / 3 + 1, 4, 2) < 0) /* 4 per 3 bytes begun */
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
