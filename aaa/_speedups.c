/* Three of the daemon's hottest loops of plain data shuffling, compiled. Each has a Python
 * reference beside its caller that stays the specification: tests hold the two to the same
 * answers, and without a C compiler the package runs the Python one (an optional build).
 *
 * 1. `split_attributes(data, odd_vendors)`, for `aaa.radius.packet.decode`: the split is a
 *    third of an Interim-Update's handling in the daemon and a fifth of an Access-Request's;
 *    the Python loop spends it building tuples one bytecode at a time.
 * 2. `pg_array_literals(rows, kinds)`, for `aaa.db.accounting._pg_arrays`: the accounting
 *    upsert's columns as PostgreSQL array literals, ~7 us a record in Python (two thirds of
 *    it `datetime.isoformat`), on the committer thread, holding the interpreter lock.
 * 3. `pg_copy_binary(rows, kinds, limits)`, for `aaa.db.authlog.write_records`: the auth
 *    log's rows in PostgreSQL's binary COPY format; as CSV through the csv module the
 *    writer spent ~9 us a row, on the same two cores as the daemon.
 *
 * `split_attributes(data, odd_vendors)` walks the attributes of a RADIUS packet whose
 * header `decode` has already checked (20 <= len(data) <= 4096, Length == len(data)) and
 * returns exactly what the Python loop in packet.py builds: (attributes, message
 * authenticator offset, Proxy-State count), the attributes a tuple of (key, value) pairs,
 * a key being the type (int) or (vendor, type) for a Vendor-Specific sub-attribute in the
 * recommended layout. On any framing fault it returns None and `decode` runs the Python
 * loop, which raises the precise MalformedPacket: this module never decides what is valid
 * on its own. tests/radius/test_speedups.py holds the two to the same answers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>

#define VENDOR_SPECIFIC 26
#define MESSAGE_AUTHENTICATOR 80
#define PROXY_STATE 33
#define NO_MA (-1)
#define DUPLICATE_MA (-2)
#define HEADER 20

/* Append (key, data[start:end]) to list; steals the reference to key. 0 on success. */
static int
append_pair(PyObject *list, PyObject *key, const char *data, Py_ssize_t start, Py_ssize_t end)
{
    if (key == NULL) {
        return -1;
    }
    PyObject *value = PyBytes_FromStringAndSize(data + start, end - start);
    if (value == NULL) {
        Py_DECREF(key);
        return -1;
    }
    PyObject *pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(key);
        Py_DECREF(value);
        return -1;
    }
    PyTuple_SET_ITEM(pair, 0, key);
    PyTuple_SET_ITEM(pair, 1, value);
    int failed = PyList_Append(list, pair);
    Py_DECREF(pair);
    return failed;
}

/* The sub-attributes of one VSA value in data[start:end] appended to list: 1 if split,
 * 0 if not in the standard layout (nothing appended), -1 on a Python error. */
static int
split_vsa(PyObject *list, const unsigned char *data, Py_ssize_t start, Py_ssize_t end,
          unsigned long vendor)
{
    Py_ssize_t pos = start;
    int subs = 0;
    while (pos < end) {  /* validate first, as the Python helper does: all or none */
        if (pos + 2 > end) {
            return 0;
        }
        Py_ssize_t sub_len = data[pos + 1];
        if (sub_len < 2 || pos + sub_len > end) {
            return 0;
        }
        pos += sub_len;
        subs++;
    }
    if (subs == 0) {
        return 0;
    }
    PyObject *vendor_number = PyLong_FromUnsignedLong(vendor);
    if (vendor_number == NULL) {
        return -1;
    }
    for (pos = start; pos < end; pos += data[pos + 1]) {
        PyObject *key = Py_BuildValue("(Oi)", vendor_number, (int)data[pos]);
        if (append_pair(list, key, (const char *)data, pos + 2, pos + data[pos + 1]) < 0) {
            Py_DECREF(vendor_number);
            return -1;
        }
    }
    Py_DECREF(vendor_number);
    return 1;
}

static PyObject *
split_attributes(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "split_attributes(data: bytes, odd_vendors)");
        return NULL;
    }
    PyObject *odd_vendors = args[1];
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t length = PyBytes_GET_SIZE(args[0]);
    if (length < HEADER) {
        Py_RETURN_NONE;
    }
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    Py_ssize_t ma_at = NO_MA;
    Py_ssize_t proxy_states = 0;
    Py_ssize_t pos = HEADER;
    while (pos < length) {
        if (pos + 2 > length) {
            goto malformed;
        }
        int kind = data[pos];
        Py_ssize_t end = pos + data[pos + 1];
        if (end < pos + 2 || end > length) {
            goto malformed;
        }
        if (kind == VENDOR_SPECIFIC && end - pos > 6) {
            unsigned long vendor = ((unsigned long)data[pos + 2] << 24) | ((unsigned long)data[pos + 3] << 16)
                                   | ((unsigned long)data[pos + 4] << 8) | (unsigned long)data[pos + 5];
            PyObject *vendor_number = PyLong_FromUnsignedLong(vendor);
            if (vendor_number == NULL) {
                goto error;
            }
            int odd = PySequence_Contains(odd_vendors, vendor_number);
            Py_DECREF(vendor_number);
            if (odd < 0) {
                goto error;
            }
            if (!odd) {
                int split = split_vsa(list, data, pos + 6, end, vendor);
                if (split < 0) {
                    goto error;
                }
                if (split) {
                    pos = end;
                    continue;
                }
            }
            /* Not in the layout we know: the whole VSA stays raw under key 26. */
        }
        else if (kind == MESSAGE_AUTHENTICATOR) {
            ma_at = ma_at == NO_MA ? pos : DUPLICATE_MA;
        }
        else if (kind == PROXY_STATE) {
            proxy_states++;
        }
        if (append_pair(list, PyLong_FromLong(kind), (const char *)data, pos + 2, end) < 0) {
            goto error;
        }
        pos = end;
    }
    PyObject *attributes = PyList_AsTuple(list);
    Py_DECREF(list);
    if (attributes == NULL) {
        return NULL;
    }
    return Py_BuildValue("(Nnn)", attributes, ma_at, proxy_states);

malformed:
    Py_DECREF(list);
    Py_RETURN_NONE;
error:
    Py_DECREF(list);
    return NULL;
}

/* --- 2. PostgreSQL array literals -------------------------------------------------------
 *
 * Column kinds, as `_pg_arrays` treats them: 't' text (each cell double-quoted, `\` and `"`
 * escaped with a backslash), 'd' timestamp (`isoformat()`), 'n' anything else (`str()`).
 * None is NULL in every kind.
 */

/* `value` (0 <= value < 10**width) in exactly `width` decimal digits; the count written. */
static int
put_digits(char *out, int value, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return width;
}

/* A datetime in UTC as datetime.isoformat() writes it: 1 with *out set (NULL on a Python
 * error), or 0 for anything else (naive, another zone, a subclass, not a datetime), which
 * the caller then asks for its own isoformat(). */
static int
utc_isoformat(PyObject *value, PyObject **out)
{
    if (!PyDateTime_CheckExact(value) || PyDateTime_DATE_GET_TZINFO(value) != PyDateTime_TimeZone_UTC) {
        return 0;
    }
    char text[40];
    int micro = PyDateTime_DATE_GET_MICROSECOND(value);
    int size = 0;
    size += put_digits(text + size, PyDateTime_GET_YEAR(value), 4);
    text[size++] = '-';
    size += put_digits(text + size, PyDateTime_GET_MONTH(value), 2);
    text[size++] = '-';
    size += put_digits(text + size, PyDateTime_GET_DAY(value), 2);
    text[size++] = 'T';
    size += put_digits(text + size, PyDateTime_DATE_GET_HOUR(value), 2);
    text[size++] = ':';
    size += put_digits(text + size, PyDateTime_DATE_GET_MINUTE(value), 2);
    text[size++] = ':';
    size += put_digits(text + size, PyDateTime_DATE_GET_SECOND(value), 2);
    if (micro) {
        text[size++] = '.';
        size += put_digits(text + size, micro, 6);
    }
    memcpy(text + size, "+00:00", 6);
    *out = PyUnicode_FromStringAndSize(text, size + 6);
    return 1;
}

/* The text of one cell, quoted and escaped for a text column; a new reference or NULL. */
static PyObject *
cell_text(PyObject *value, char kind)
{
    if (value == Py_None) {
        static PyObject *null_text = NULL;  /* made once, shared by every NULL cell */
        if (null_text == NULL && (null_text = PyUnicode_InternFromString("NULL")) == NULL) {
            return NULL;
        }
        Py_INCREF(null_text);
        return null_text;
    }
    if (kind == 'd') {
        PyObject *text;
        return utc_isoformat(value, &text) ? text : PyObject_CallMethod(value, "isoformat", NULL);
    }
    if (kind != 't') {
        return PyObject_Str(value);
    }
    if (!PyUnicode_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "a text column holds a non-str value");
        return NULL;
    }
    Py_ssize_t size = PyUnicode_GET_LENGTH(value);
    Py_INCREF(value);
    PyObject *escaped = value;
    if (PyUnicode_FindChar(value, '\\', 0, size, 1) >= 0 || PyUnicode_FindChar(value, '"', 0, size, 1) >= 0) {
        static const char *pairs[2][2] = {{"\\", "\\\\"}, {"\"", "\\\""}};
        for (int i = 0; i < 2 && escaped != NULL; i++) {
            PyObject *from = PyUnicode_FromString(pairs[i][0]);
            PyObject *to = PyUnicode_FromString(pairs[i][1]);
            PyObject *next = from && to ? PyUnicode_Replace(escaped, from, to, -1) : NULL;
            Py_XDECREF(from);
            Py_XDECREF(to);
            Py_DECREF(escaped);
            escaped = next;
        }
        if (escaped == NULL) {
            return NULL;
        }
    }
    PyObject *quoted = PyUnicode_FromFormat("\"%U\"", escaped);
    Py_DECREF(escaped);
    return quoted;
}

/* 1 when every item of the list `rows` is a tuple of `columns` values; else 0 with a
 * ValueError set. */
static int
rows_fit(PyObject *rows, Py_ssize_t columns)
{
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(rows); r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != columns) {
            PyErr_SetString(PyExc_ValueError, "every row must be a tuple with one value per column");
            return 0;
        }
    }
    return 1;
}

static PyObject *
pg_array_literals(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "pg_array_literals(rows: list[tuple], kinds: bytes)");
        return NULL;
    }
    PyObject *rows = args[0];
    const char *kinds = PyBytes_AS_STRING(args[1]);
    Py_ssize_t columns = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t count = PyList_GET_SIZE(rows);
    if (!rows_fit(rows, columns)) {
        return NULL;
    }
    if (count == 0) {  /* as zip(*rows) in the Python version: no row, no column */
        return PyList_New(0);
    }
    PyObject *result = PyList_New(columns);
    PyObject *cells = PyList_New(count);
    PyObject *comma = PyUnicode_FromString(",");
    PyObject *quoted_comma = PyUnicode_FromString("\",\"");
    if (result == NULL || cells == NULL || comma == NULL || quoted_comma == NULL) {
        goto error;
    }
    for (Py_ssize_t c = 0; c < columns; c++) {
        if (kinds[c] == 't') {
            /* The usual text column: no NULL, nothing to escape, so '{"' + '","'.join + '"}'
               with no string made per cell. */
            int plain = 1;
            for (Py_ssize_t r = 0; r < count && plain; r++) {
                PyObject *value = PyTuple_GET_ITEM(PyList_GET_ITEM(rows, r), c);
                plain = PyUnicode_CheckExact(value)
                        && PyUnicode_FindChar(value, '\\', 0, PyUnicode_GET_LENGTH(value), 1) < 0
                        && PyUnicode_FindChar(value, '"', 0, PyUnicode_GET_LENGTH(value), 1) < 0;
            }
            if (plain && count > 0) {
                for (Py_ssize_t r = 0; r < count; r++) {
                    PyObject *value = PyTuple_GET_ITEM(PyList_GET_ITEM(rows, r), c);
                    Py_INCREF(value);
                    PyList_SetItem(cells, r, value);
                }
                PyObject *body = PyUnicode_Join(quoted_comma, cells);
                PyObject *array = body != NULL ? PyUnicode_FromFormat("{\"%U\"}", body) : NULL;
                Py_XDECREF(body);
                if (array == NULL) {
                    goto error;
                }
                PyList_SET_ITEM(result, c, array);
                continue;
            }
        }
        for (Py_ssize_t r = 0; r < count; r++) {
            PyObject *text = cell_text(PyTuple_GET_ITEM(PyList_GET_ITEM(rows, r), c), kinds[c]);
            if (text == NULL) {
                goto error;
            }
            PyList_SetItem(cells, r, text);  /* replaces (and releases) the previous column's */
        }
        PyObject *body = PyUnicode_Join(comma, cells);
        if (body == NULL) {
            goto error;
        }
        PyObject *array = PyUnicode_FromFormat("{%U}", body);
        Py_DECREF(body);
        if (array == NULL) {
            goto error;
        }
        PyList_SET_ITEM(result, c, array);
    }
    Py_DECREF(cells);
    Py_DECREF(comma);
    Py_DECREF(quoted_comma);
    return result;

error:
    Py_XDECREF(result);
    Py_XDECREF(cells);
    Py_XDECREF(comma);
    Py_XDECREF(quoted_comma);
    return NULL;
}

/* --- pg_copy_binary ---------------------------------------------------------------------- */

#define PG_EPOCH_MICROS 946684800000000LL /* 2000-01-01 UTC, PostgreSQL's epoch */

typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Buffer;

static int
buffer_put(Buffer *buffer, const void *data, Py_ssize_t size)
{
    if (buffer->size + size > buffer->capacity) {
        Py_ssize_t capacity = (buffer->capacity + size) * 2;
        char *grown = PyMem_Realloc(buffer->data, capacity);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->size, data, size);
    buffer->size += size;
    return 0;
}

static int
buffer_put_be(Buffer *buffer, unsigned long long value, int octets)
{
    unsigned char out[8];
    for (int i = octets - 1; i >= 0; i--) {
        out[i] = (unsigned char)(value & 0xff);
        value >>= 8;
    }
    return buffer_put(buffer, out, octets);
}

/* One cell: its length (-1 for NULL) and its octets; 0, or -1 with a Python error set. */
static int
copy_cell(Buffer *buffer, PyObject *value, char kind, Py_ssize_t limit)
{
    if (value == Py_None) {
        return buffer_put_be(buffer, 0xffffffffULL, 4);
    }
    switch (kind) {
    case 't': { /* timestamptz from POSIX seconds: microseconds since 2000-01-01 UTC */
        double seconds = PyFloat_AsDouble(value);
        if (seconds == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        double micros = nearbyint(seconds * 1e6);  /* round half to even, as round() */
        if (!(micros > -9.0e18 && micros < 9.0e18)) {
            PyErr_SetString(PyExc_OverflowError, "a timestamp out of range");
            return -1;
        }
        long long since = (long long)micros - PG_EPOCH_MICROS;
        return buffer_put_be(buffer, 8, 4) < 0 ? -1 : buffer_put_be(buffer, (unsigned long long)since, 8);
    }
    case 'i': { /* int4 */
        if (!PyLong_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "an integer column holds a non-int value");
            return -1;
        }
        long number = PyLong_AsLong(value);
        if (number == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (number < -2147483648L || number > 2147483647L) {
            PyErr_SetString(PyExc_OverflowError, "an integer out of int4's range");
            return -1;
        }
        return buffer_put_be(buffer, 4, 4) < 0 ? -1 : buffer_put_be(buffer, (unsigned long long)(number & 0xffffffffL), 4);
    }
    case 'b': { /* bool */
        int truth = PyObject_IsTrue(value);
        if (truth < 0) {
            return -1;
        }
        unsigned char octet = (unsigned char)truth;
        return buffer_put_be(buffer, 1, 4) < 0 ? -1 : buffer_put(buffer, &octet, 1);
    }
    case 's': { /* text, at most `limit` characters (0: no limit), as UTF-8 */
        if (!PyUnicode_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "a text column holds a non-str value");
            return -1;
        }
        PyObject *kept = value;
        Py_INCREF(kept);
        if (limit > 0 && PyUnicode_GET_LENGTH(value) > limit) {
            Py_SETREF(kept, PyUnicode_Substring(value, 0, limit));
            if (kept == NULL) {
                return -1;
            }
        }
        Py_ssize_t size;
        const char *text = PyUnicode_AsUTF8AndSize(kept, &size);
        int failed = text == NULL || buffer_put_be(buffer, (unsigned long long)size, 4) < 0
                     || buffer_put(buffer, text, size) < 0;
        Py_DECREF(kept);
        return failed ? -1 : 0;
    }
    default:
        PyErr_Format(PyExc_ValueError, "unknown column kind %c", kind);
        return -1;
    }
}

static PyObject *
pg_copy_binary(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyList_Check(args[0]) || !PyBytes_Check(args[1]) || !PyTuple_Check(args[2])
        || PyTuple_GET_SIZE(args[2]) != PyBytes_GET_SIZE(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "pg_copy_binary(rows: list[tuple], kinds: bytes, limits: tuple[int, ...] (one per kind))");
        return NULL;
    }
    PyObject *rows = args[0];
    const char *kinds = PyBytes_AS_STRING(args[1]);
    Py_ssize_t columns = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t limits[256];
    if (columns > 256) {
        PyErr_SetString(PyExc_ValueError, "at most 256 columns");
        return NULL;
    }
    for (Py_ssize_t c = 0; c < columns; c++) {
        limits[c] = PyLong_AsSsize_t(PyTuple_GET_ITEM(args[2], c));
        if (limits[c] == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    Buffer buffer = {NULL, 0, 0};
    static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    if (buffer_put(&buffer, header, 19) < 0) {
        goto error;
    }
    Py_ssize_t count = PyList_GET_SIZE(rows);
    if (!rows_fit(rows, columns)) {
        goto error;
    }
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (buffer_put_be(&buffer, (unsigned long long)columns, 2) < 0) {
            goto error;
        }
        for (Py_ssize_t c = 0; c < columns; c++) {
            if (copy_cell(&buffer, PyTuple_GET_ITEM(row, c), kinds[c], limits[c]) < 0) {
                goto error;
            }
        }
    }
    if (buffer_put_be(&buffer, 0xffffULL, 2) < 0) {
        goto error;
    }
    PyObject *result = PyBytes_FromStringAndSize(buffer.data, buffer.size);
    PyMem_Free(buffer.data);
    return result;

error:
    PyMem_Free(buffer.data);
    return NULL;
}

static PyMethodDef methods[] = {
    {"split_attributes", (PyCFunction)(void (*)(void))split_attributes, METH_FASTCALL,
     "split_attributes(data, odd_vendors) -> (attributes, ma_at, proxy_states) or None"},
    {"pg_array_literals", (PyCFunction)(void (*)(void))pg_array_literals, METH_FASTCALL,
     "pg_array_literals(rows, kinds) -> one PostgreSQL array literal per column"},
    {"pg_copy_binary", (PyCFunction)(void (*)(void))pg_copy_binary, METH_FASTCALL,
     "pg_copy_binary(rows, kinds, limits) -> the rows in PostgreSQL's binary COPY format"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "aaa._speedups",
    "Three hot loops of the daemon, compiled (see aaa/_speedups.c).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) {
        return NULL;
    }
    return PyModule_Create(&module);
}
