/*
 * test_digest.c - engine/digest.c: SHA-256 against the FIPS 180-2 test
 * vectors ("abc", "", the two-block message, one million 'a'), one-shot
 * and incremental in pieces of every size giving the same digest, and the
 * hex spelling of a chunk name (64 lowercase digits and nothing else).
 */
#include <errno.h>
#include <stdio.h>

#include "unit.h"
#include "digest.h"

static const struct {
	const char *msg;
	const char *hex;
} vectors[] = {
	{ "abc",
	  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "",
	  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
};

#define MILLION_A_HEX \
	"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static void assert_digest_hex(const uint8_t d[DIGEST_LEN], const char *want)
{
	char hex[DIGEST_HEX_LEN + 1];

	digest_to_hex(d, hex);
	assert_string_equal(hex, want);
}

static void test_vectors_one_shot(void **state)
{
	uint8_t d[DIGEST_LEN];

	for (size_t i = 0; i < G_N_ELEMENTS(vectors); i++) {
		assert_errno(digest_sha256(vectors[i].msg,
					   strlen(vectors[i].msg), d),
			     0);
		assert_digest_hex(d, vectors[i].hex);
	}
	/* the empty message may come as NULL */
	assert_errno(digest_sha256(NULL, 0, d), 0);
	assert_digest_hex(d, vectors[1].hex);
}

static void test_million_a(void **state)
{
	size_t len = 1000000;
	g_autofree char *a = g_malloc(len);
	struct digest_stream *ds;
	uint8_t d[DIGEST_LEN];

	memset(a, 'a', len);
	assert_errno(digest_sha256(a, len, d), 0);
	assert_digest_hex(d, MILLION_A_HEX);

	/* the same, in pieces that do not divide 64-byte blocks evenly */
	assert_errno(digest_stream_new(&ds), 0);
	for (size_t off = 0; off < len; off += 997)
		assert_errno(digest_stream_update(ds, a + off,
						  MIN(997, len - off)),
			     0);
	assert_errno(digest_stream_finish(ds, d), 0);
	digest_stream_free(ds);
	assert_digest_hex(d, MILLION_A_HEX);
}

/* Every split of a message into two pieces gives the one-shot digest. */
static void test_stream_every_split(void **state)
{
	const char *msg = vectors[2].msg;
	size_t len = strlen(msg);

	for (size_t cut = 0; cut <= len; cut++) {
		struct digest_stream *ds;
		uint8_t d[DIGEST_LEN];

		assert_errno(digest_stream_new(&ds), 0);
		assert_errno(digest_stream_update(ds, msg, cut), 0);
		assert_errno(digest_stream_update(ds, msg + cut, len - cut), 0);
		assert_errno(digest_stream_update(ds, NULL, 0), 0);
		assert_errno(digest_stream_finish(ds, d), 0);
		assert_digest_hex(d, vectors[2].hex);
		/* finished: nothing more goes in or out */
		assert_errno(digest_stream_update(ds, "x", 1), -EINVAL);
		assert_errno(digest_stream_finish(ds, d), -EINVAL);
		digest_stream_free(ds);
	}
	digest_stream_free(NULL);
}

static void test_hex_round_trip(void **state)
{
	uint8_t d[DIGEST_LEN], back[DIGEST_LEN];
	char hex[DIGEST_HEX_LEN + 1];

	for (int i = 0; i < DIGEST_LEN; i++)
		d[i] = (uint8_t)(i * 37 + 11);
	d[0] = 0x00; /* leading zero digits are spelled */
	d[1] = 0xff;
	digest_to_hex(d, hex);
	assert_int_equal(strlen(hex), DIGEST_HEX_LEN);
	assert_memory_equal(hex, "00ff", 4);
	assert_errno(digest_from_hex(hex, back), 0);
	assert_memory_equal(d, back, DIGEST_LEN);
}

static void test_hex_rejects(void **state)
{
	const char *good = vectors[0].hex;
	uint8_t d[DIGEST_LEN], keep[DIGEST_LEN];
	char s[DIGEST_HEX_LEN + 8];

	memset(d, 0x5a, sizeof(d));
	memcpy(keep, d, sizeof(d));

	/* uppercase: a different file name, so not a chunk name */
	g_strlcpy(s, good, sizeof(s));
	s[10] = 'A';
	assert_errno(digest_from_hex(s, d), -EINVAL);
	g_strlcpy(s, good, sizeof(s));
	s[0] = 'B'; /* "ba..." -> "Ba..." */
	assert_errno(digest_from_hex(s, d), -EINVAL);

	/* 63 digits, 65 digits, a suffix, an empty string, NULL */
	g_strlcpy(s, good, DIGEST_HEX_LEN);
	assert_int_equal(strlen(s), 63);
	assert_errno(digest_from_hex(s, d), -EINVAL);
	g_snprintf(s, sizeof(s), "%s0", good);
	assert_errno(digest_from_hex(s, d), -EINVAL);
	g_snprintf(s, sizeof(s), "%s.tmp", good);
	assert_errno(digest_from_hex(s, d), -EINVAL);
	assert_errno(digest_from_hex("", d), -EINVAL);
	assert_errno(digest_from_hex(NULL, d), -EINVAL);

	/* not hex: g, a space, a sign, a NUL inside */
	g_strlcpy(s, good, sizeof(s));
	s[63] = 'g';
	assert_errno(digest_from_hex(s, d), -EINVAL);
	g_strlcpy(s, good, sizeof(s));
	s[5] = ' ';
	assert_errno(digest_from_hex(s, d), -EINVAL);
	g_strlcpy(s, good, sizeof(s));
	s[0] = '+';
	assert_errno(digest_from_hex(s, d), -EINVAL);
	g_strlcpy(s, good, sizeof(s));
	s[32] = '\0';
	assert_errno(digest_from_hex(s, d), -EINVAL);

	/* failures leave @out alone */
	assert_memory_equal(d, keep, DIGEST_LEN);
}

static void test_zero_digest(void **state)
{
	uint8_t d[DIGEST_LEN] = { 0 };

	assert_true(digest_is_zero(d));
	d[31] = 1;
	assert_false(digest_is_zero(d));
	/* the SHA-256 of nothing is not the zero digest */
	assert_errno(digest_sha256("", 0, d), 0);
	assert_false(digest_is_zero(d));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_one_shot),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_stream_every_split),
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_hex_rejects),
		cmocka_unit_test(test_zero_digest),
	};

	return unit_run("digest", tests, G_N_ELEMENTS(tests));
}
