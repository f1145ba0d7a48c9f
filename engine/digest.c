/*
 * digest.c - SHA-256 through OpenSSL's EVP interface.
 *
 * TEMPORARY STAND-IN (branch repo-index only): see digest.h.  Drop it in
 * favour of the chunk-store branch's digest.c.
 */
#include <errno.h>
#include <openssl/evp.h>

#include "digest.h"

int digest_sha256(const void *buf, size_t len, uint8_t out[DIGEST_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	int rc = 0;

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, buf, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != DIGEST_LEN)
		rc = -EIO;
	EVP_MD_CTX_free(ctx);
	return rc;
}
