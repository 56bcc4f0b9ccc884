/* The common Access-Request's wire work, compiled: one call to check and read a request,
 * one to sign its reply. The Python references in aaa/radius/fastlane.py are the
 * specification: tests hold the two to the same answers, and without a C compiler or the
 * OpenSSL headers the package runs the Python ones (an optional build).
 *
 * `parse_access_request(data, secret)` accepts only the common case and answers None for
 * everything else, so that the daemon's general pipeline deals with it (and with its
 * errors and counters): an Access-Request with well-formed attributes, exactly one
 * Message-Authenticator whose HMAC-MD5 is right, a non-empty User-Name, a User-Password
 * of 16..128 octets in steps of 16 (returned unhidden, NUL padding removed) or else a
 * CHAP-Password, and at most MAX_PROXY_STATES Proxy-States. It returns
 *   (identifier, request authenticator, User-Name, password or None, CHAP-Password or None,
 *    CHAP-Challenge or None, Calling-Station-Id or None, NAS-Port-Id or None,
 *    the Proxy-State attributes as sent, joined)
 * each value the first occurrence of its attribute.
 *
 * `sign_access_reply(code, identifier, request_authenticator, attributes, proxy_states,
 * secret)` builds an Access-Accept/Reject: header, Response Authenticator,
 * Message-Authenticator first (BlastRADIUS), the encoded attributes, the Proxy-States.
 *
 * MD5 comes from OpenSSL's libcrypto (the library CPython's hashlib uses); the calls hold
 * the interpreter lock, so one digest context serves them all.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define ACCESS_REQUEST 1
#define USER_NAME 1
#define USER_PASSWORD 2
#define CHAP_PASSWORD 3
#define CALLING_STATION_ID 31
#define PROXY_STATE 33
#define CHAP_CHALLENGE 60
#define MESSAGE_AUTHENTICATOR 80
#define NAS_PORT_ID 87
#define HEADER 20
#define MIN_LENGTH 20
#define MAX_LENGTH 4096
#define MAX_PROXY_STATES 8
#define MAX_PASSWORD 128
#define MA_SIZE 18
#define BLOCK 64

static EVP_MD *md5_algorithm;
static EVP_MD_CTX *md5_context;

typedef struct {
    const unsigned char *data;
    size_t size;
} Part;

/* MD5 over the parts in order; 0 on success, -1 with a Python error set. */
static int
md5_parts(const Part *parts, int count, unsigned char out[16])
{
    unsigned int written = 0;
    if (!EVP_DigestInit_ex2(md5_context, md5_algorithm, NULL)) {
        goto failed;
    }
    for (int i = 0; i < count; i++) {
        if (parts[i].size && !EVP_DigestUpdate(md5_context, parts[i].data, parts[i].size)) {
            goto failed;
        }
    }
    if (!EVP_DigestFinal_ex(md5_context, out, &written) || written != 16) {
        goto failed;
    }
    return 0;
failed:
    PyErr_SetString(PyExc_RuntimeError, "OpenSSL MD5 failed");
    return -1;
}

/* HMAC-MD5 (RFC 2104) keyed by `key` over the parts; 0 on success, -1 with an error set. */
static int
hmac_md5_parts(const unsigned char *key, size_t key_size, const Part *parts, int count,
               unsigned char out[16])
{
    unsigned char padded[BLOCK] = {0};
    unsigned char inner_pad[BLOCK], outer_pad[BLOCK], inner[16];
    Part inner_parts[8];
    if (count > 7) {
        PyErr_SetString(PyExc_RuntimeError, "too many HMAC parts");
        return -1;
    }
    if (key_size > BLOCK) {
        Part whole = {key, key_size};
        if (md5_parts(&whole, 1, padded) < 0) {
            return -1;
        }
    }
    else {
        memcpy(padded, key, key_size);
    }
    for (int i = 0; i < BLOCK; i++) {
        inner_pad[i] = padded[i] ^ 0x36;
        outer_pad[i] = padded[i] ^ 0x5c;
    }
    inner_parts[0] = (Part){inner_pad, BLOCK};
    for (int i = 0; i < count; i++) {
        inner_parts[i + 1] = parts[i];
    }
    if (md5_parts(inner_parts, count + 1, inner) < 0) {
        return -1;
    }
    Part outer_parts[2] = {{outer_pad, BLOCK}, {inner, 16}};
    return md5_parts(outer_parts, 2, out);
}

typedef struct {
    Py_ssize_t at;  /* offset of the value, or -1 when the attribute is absent */
    Py_ssize_t size;
} Found;

static PyObject *
value_or_none(const unsigned char *data, Found found)
{
    if (found.at < 0) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize((const char *)data + found.at, found.size);
}

static PyObject *
parse_access_request(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "parse_access_request(data: bytes, secret: bytes)");
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    const unsigned char *secret = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t secret_size = PyBytes_GET_SIZE(args[1]);
    if (size < MIN_LENGTH || size > MAX_LENGTH || data[0] != ACCESS_REQUEST) {
        Py_RETURN_NONE;
    }
    Py_ssize_t length = (data[2] << 8) | data[3];
    if (length < MIN_LENGTH || length > size) {
        Py_RETURN_NONE;
    }
    Found name = {-1, 0}, password = {-1, 0}, chap = {-1, 0}, challenge = {-1, 0};
    Found calling = {-1, 0}, port = {-1, 0};
    Found proxies[MAX_PROXY_STATES];
    int proxy_count = 0;
    Py_ssize_t proxy_size = 0, ma_at = -1;
    Py_ssize_t pos = HEADER;
    while (pos < length) {
        if (pos + 2 > length) {
            Py_RETURN_NONE;
        }
        int kind = data[pos];
        Py_ssize_t end = pos + data[pos + 1];
        if (end < pos + 2 || end > length) {
            Py_RETURN_NONE;
        }
        Found here = {pos + 2, end - pos - 2};
        switch (kind) {
        case USER_NAME: if (name.at < 0) name = here; break;
        case USER_PASSWORD: if (password.at < 0) password = here; break;
        case CHAP_PASSWORD: if (chap.at < 0) chap = here; break;
        case CHAP_CHALLENGE: if (challenge.at < 0) challenge = here; break;
        case CALLING_STATION_ID: if (calling.at < 0) calling = here; break;
        case NAS_PORT_ID: if (port.at < 0) port = here; break;
        case MESSAGE_AUTHENTICATOR:
            if (ma_at >= 0 || end - pos != MA_SIZE) {
                Py_RETURN_NONE;  /* a second one, or the wrong size: never valid */
            }
            ma_at = pos;
            break;
        case PROXY_STATE:
            if (proxy_count == MAX_PROXY_STATES) {
                Py_RETURN_NONE;
            }
            proxies[proxy_count++] = (Found){pos, end - pos};  /* the whole attribute */
            proxy_size += end - pos;
            break;
        default: break;
        }
        pos = end;
    }
    if (ma_at < 0 || name.at < 0 || name.size == 0) {
        Py_RETURN_NONE;
    }
    if (password.at >= 0) {
        if (password.size == 0 || password.size % 16 || password.size > MAX_PASSWORD) {
            Py_RETURN_NONE;
        }
    }
    else if (chap.at < 0) {
        Py_RETURN_NONE;  /* MS-CHAP, or no method: the general pipeline's */
    }

    static const unsigned char zeros[16] = {0};
    unsigned char expected[16];
    Part signed_parts[3] = {
        {data, (size_t)ma_at + 2}, {zeros, 16}, {data + ma_at + MA_SIZE, (size_t)(length - ma_at - MA_SIZE)},
    };
    if (hmac_md5_parts(secret, (size_t)secret_size, signed_parts, 3, expected) < 0) {
        return NULL;
    }
    if (CRYPTO_memcmp(expected, data + ma_at + 2, 16) != 0) {
        Py_RETURN_NONE;
    }

    PyObject *plain = NULL;
    if (password.at >= 0) {
        unsigned char clear[MAX_PASSWORD], key[16];
        const unsigned char *previous = data + 4;  /* the Request Authenticator, then each block */
        for (Py_ssize_t offset = 0; offset < password.size; offset += 16) {
            Part chain[2] = {{secret, (size_t)secret_size}, {previous, 16}};
            if (md5_parts(chain, 2, key) < 0) {
                return NULL;
            }
            const unsigned char *block = data + password.at + offset;
            for (int i = 0; i < 16; i++) {
                clear[offset + i] = block[i] ^ key[i];
            }
            previous = block;
        }
        Py_ssize_t kept = password.size;
        while (kept > 0 && clear[kept - 1] == 0) {
            kept--;
        }
        plain = PyBytes_FromStringAndSize((const char *)clear, kept);
    }
    else {
        plain = Py_NewRef(Py_None);
    }
    PyObject *joined = PyBytes_FromStringAndSize(NULL, proxy_size);
    if (plain == NULL || joined == NULL) {
        Py_XDECREF(plain);
        Py_XDECREF(joined);
        return NULL;
    }
    char *cursor = PyBytes_AS_STRING(joined);
    for (int i = 0; i < proxy_count; i++) {
        memcpy(cursor, data + proxies[i].at, proxies[i].size);
        cursor += proxies[i].size;
    }
    return Py_BuildValue(
        "(iy#NNNNNNN)", data[1], (const char *)data + 4, (Py_ssize_t)16,
        value_or_none(data, name), plain,
        password.at >= 0 ? Py_NewRef(Py_None) : value_or_none(data, chap),
        password.at >= 0 ? Py_NewRef(Py_None) : value_or_none(data, challenge),
        value_or_none(data, calling), value_or_none(data, port), joined);
}

static PyObject *
sign_access_reply(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyLong_Check(args[0]) || !PyLong_Check(args[1]) || !PyBytes_CheckExact(args[2])
        || !PyBytes_CheckExact(args[3]) || !PyBytes_CheckExact(args[4]) || !PyBytes_CheckExact(args[5])) {
        PyErr_SetString(PyExc_TypeError, "sign_access_reply(code: int, identifier: int, "
                        "request_authenticator: bytes, attributes: bytes, proxy_states: bytes, secret: bytes)");
        return NULL;
    }
    long code = PyLong_AsLong(args[0]);
    long identifier = PyLong_AsLong(args[1]);
    if ((code == -1 || identifier == -1) && PyErr_Occurred()) {
        return NULL;
    }
    if (code < 0 || code > 255 || identifier < 0 || identifier > 255 || PyBytes_GET_SIZE(args[2]) != 16) {
        PyErr_SetString(PyExc_ValueError, "code and identifier are octets, the authenticator 16 octets");
        return NULL;
    }
    Py_ssize_t attributes_size = PyBytes_GET_SIZE(args[3]);
    Py_ssize_t proxies_size = PyBytes_GET_SIZE(args[4]);
    Py_ssize_t length = HEADER + MA_SIZE + attributes_size + proxies_size;
    if (length > MAX_LENGTH) {
        PyErr_Format(PyExc_ValueError, "packet of %zd octets exceeds %d", length, MAX_LENGTH);
        return NULL;
    }
    PyObject *reply = PyBytes_FromStringAndSize(NULL, length);
    if (reply == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(reply);
    out[0] = (unsigned char)code;
    out[1] = (unsigned char)identifier;
    out[2] = (unsigned char)(length >> 8);
    out[3] = (unsigned char)(length & 0xff);
    memcpy(out + 4, PyBytes_AS_STRING(args[2]), 16);
    out[HEADER] = MESSAGE_AUTHENTICATOR;
    out[HEADER + 1] = MA_SIZE;
    memset(out + HEADER + 2, 0, 16);
    memcpy(out + HEADER + MA_SIZE, PyBytes_AS_STRING(args[3]), attributes_size);
    memcpy(out + HEADER + MA_SIZE + attributes_size, PyBytes_AS_STRING(args[4]), proxies_size);
    const unsigned char *secret = (const unsigned char *)PyBytes_AS_STRING(args[5]);
    size_t secret_size = (size_t)PyBytes_GET_SIZE(args[5]);
    /* Message-Authenticator over the reply with the request's authenticator in place ... */
    Part whole = {out, (size_t)length};
    unsigned char digest[16];
    if (hmac_md5_parts(secret, secret_size, &whole, 1, digest) < 0) {
        Py_DECREF(reply);
        return NULL;
    }
    memcpy(out + HEADER + 2, digest, 16);
    /* ... then the Response Authenticator over all of it and the secret. */
    Part signed_parts[2] = {{out, (size_t)length}, {secret, secret_size}};
    if (md5_parts(signed_parts, 2, digest) < 0) {
        Py_DECREF(reply);
        return NULL;
    }
    memcpy(out + 4, digest, 16);
    return reply;
}

static PyMethodDef methods[] = {
    {"parse_access_request", (PyCFunction)(void (*)(void))parse_access_request, METH_FASTCALL,
     "parse_access_request(data, secret) -> the common Access-Request's fields, or None"},
    {"sign_access_reply", (PyCFunction)(void (*)(void))sign_access_reply, METH_FASTCALL,
     "sign_access_reply(code, identifier, request_authenticator, attributes, proxy_states, secret) -> bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "aaa._radiuswire",
    "The common Access-Request's wire work, compiled (see aaa/_radiuswire.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__radiuswire(void)
{
    if (md5_algorithm == NULL) {
        /* NULL where MD5 is not allowed (a FIPS-only OpenSSL): then the Python path runs. */
        md5_algorithm = EVP_MD_fetch(NULL, "MD5", NULL);
        md5_context = EVP_MD_CTX_new();
        if (md5_algorithm == NULL || md5_context == NULL) {
            PyErr_SetString(PyExc_ImportError, "OpenSSL offers no MD5 here");
            return NULL;
        }
    }
    return PyModule_Create(&module);
}
