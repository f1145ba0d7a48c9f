/*
 * digest.c - all of OpenSSL's libcrypto: SHA-256 through EVP.
 *
 * The SHA-256 implementation is fetched once (EVP_MD_fetch) and kept for
 * the process: an implicit fetch per call (EVP_sha256() in EVP_Digest())
 * takes a lock in OpenSSL 3.0's provider store on every call.  OpenSSL's
 * errors are turned into -EIO here, with its error queue logged, and never
 * leave this file.
 */
#include <errno.h>
#include <string.h>
#include <glib.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "digest.h"
#include "log.h"

struct digest_stream {
	EVP_MD_CTX *ctx;
	bool finished;
};

/* Log OpenSSL's queued errors for @what, once, and empty the queue. */
static int openssl_error(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		g_strlcpy(buf, "unknown error", sizeof(buf));
	ERR_clear_error();
	snap_log(LOG_ERR, "digest: %s failed: %s", what, buf);
	return -EIO;
}

/*
 * The SHA-256 implementation, fetched once; NULL when OpenSSL has none.
 *
 * The first fetch initializes OpenSSL (its configuration file included)
 * and leaves state owned by the calling thread, its error queue among it.
 * That thread is often a pool worker, and OpenSSL frees a thread's state
 * when the thread ends: a worker ending while the process exits races
 * OpenSSL's own cleanup at exit, and the state is lost (LeakSanitizer saw
 * it in CI).  OPENSSL_thread_stop() frees it at once; hashing with the
 * fetched implementation creates no per-thread state again.
 */
static EVP_MD *sha256_md(void)
{
	static gsize once;
	static EVP_MD *md;

	if (g_once_init_enter(&once)) {
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
		if (!md)
			openssl_error("fetching sha256");
		OPENSSL_thread_stop();
		g_once_init_leave(&once, 1);
	}
	return md;
}

int digest_sha256(const void *data, size_t len, uint8_t out[DIGEST_LEN])
{
	struct digest_stream *ds;
	int rc;

	rc = digest_stream_new(&ds);
	if (rc < 0)
		return rc;
	rc = digest_stream_update(ds, data, len);
	if (rc == 0)
		rc = digest_stream_finish(ds, out);
	digest_stream_free(ds);
	return rc;
}

int digest_stream_new(struct digest_stream **out)
{
	EVP_MD *md = sha256_md();
	struct digest_stream *ds;

	if (!md)
		return -EIO;
	ds = g_try_new0(struct digest_stream, 1);
	if (!ds)
		return -ENOMEM;
	ds->ctx = EVP_MD_CTX_new();
	if (!ds->ctx) {
		g_free(ds);
		return -ENOMEM;
	}
	if (!EVP_DigestInit_ex(ds->ctx, md, NULL)) {
		digest_stream_free(ds);
		return openssl_error("sha256 init");
	}
	*out = ds;
	return 0;
}

int digest_stream_update(struct digest_stream *ds, const void *data,
			 size_t len)
{
	if (ds->finished)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (!EVP_DigestUpdate(ds->ctx, data, len))
		return openssl_error("sha256 update");
	return 0;
}

int digest_stream_finish(struct digest_stream *ds, uint8_t out[DIGEST_LEN])
{
	unsigned int n = 0;

	if (ds->finished)
		return -EINVAL;
	ds->finished = true;
	if (!EVP_DigestFinal_ex(ds->ctx, out, &n))
		return openssl_error("sha256 final");
	if (n != DIGEST_LEN) {
		snap_log(LOG_ERR, "digest: sha256 gave %u bytes, not %d", n,
			 DIGEST_LEN);
		return -EIO;
	}
	return 0;
}

void digest_stream_free(struct digest_stream *ds)
{
	if (!ds)
		return;
	EVP_MD_CTX_free(ds->ctx);
	g_free(ds);
}

void digest_to_hex(const uint8_t d[DIGEST_LEN], char hex[DIGEST_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < DIGEST_LEN; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 0xf];
	}
	hex[DIGEST_HEX_LEN] = '\0';
}

/* The value of lowercase hex digit @c, or -1. */
static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int digest_from_hex(const char *hex, uint8_t out[DIGEST_LEN])
{
	uint8_t d[DIGEST_LEN];

	/* strnlen: a 64-digit prefix of a longer string is not a name */
	if (!hex || strnlen(hex, DIGEST_HEX_LEN + 1) != DIGEST_HEX_LEN)
		return -EINVAL;
	for (int i = 0; i < DIGEST_LEN; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		d[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(out, d, DIGEST_LEN);
	return 0;
}

bool digest_is_zero(const uint8_t d[DIGEST_LEN])
{
	uint8_t acc = 0;

	for (int i = 0; i < DIGEST_LEN; i++)
		acc |= d[i];
	return acc == 0;
}
