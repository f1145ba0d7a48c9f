/*
 * image.c - qemu-img argv builders and qcow2 header parsing (pure).
 *
 * Why these options:
 *  - overlays are created with -u and an explicit size, so creating one
 *    never opens the backing chain: its cost does not depend on the volume
 *    (the chain may be large, or locked by a running VM);
 *  - convert reads with -U (force share): the layers it reads are frozen,
 *    and other snapfs operations must not be blocked by qemu's image locks;
 *    -t unsafe is qemu-img's default and we fsync the result ourselves,
 *    in parallel with checksumming it (see backup.c);
 *  - commit uses -d so the committed layer keeps its data and any reader
 *    still holding it sees an unchanged image (see layer.c);
 *  - qemu-nbd (nbd.c) serves read-only (a shared lock: a VM over the
 *    chain and commits without locks go on; qemu-nbd 7.2 has no
 *    --force-share), without --persistent, so that it exits when its client
 *    (snapfs) closes the connection or dies; `setpriv --pdeathsig KILL`
 *    kills it too when snapfs dies before connecting, since libnbd
 *    spawns it without PR_SET_PDEATHSIG.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "image.h"
#include "json.h"

const char *image_qemu_img(void)
{
	const char *p = getenv("SNAPFS_QEMU_IMG");

	return p && *p ? p : "qemu-img";
}

static char **argv_build(const char *first, ...)
{
	GPtrArray *v = g_ptr_array_new();
	va_list ap;
	const char *s;

	g_ptr_array_add(v, g_strdup(image_qemu_img()));
	va_start(ap, first);
	for (s = first; s; s = va_arg(ap, const char *))
		g_ptr_array_add(v, g_strdup(s));
	va_end(ap);
	g_ptr_array_add(v, NULL);
	return (char **)g_ptr_array_free(v, FALSE);
}

static bool absolute(const char *path)
{
	return path && path[0] == '/';
}

char **image_argv_overlay(const char *backing, const char *path, uint64_t size)
{
	char sz[32];

	if (!absolute(backing) || !absolute(path))
		return NULL;
	g_snprintf(sz, sizeof(sz), "%" G_GUINT64_FORMAT, size);
	return argv_build("create", "-q", "-f", "qcow2", "-F", "qcow2", "-u",
			  "-b", backing, path, sz, NULL);
}

char **image_argv_convert(const char *src, const char *dst)
{
	if (!absolute(src) || !absolute(dst))
		return NULL;
	return argv_build("convert", "-p", "-U", "-f", "qcow2", "-O", "qcow2",
			  src, dst, NULL);
}

char **image_argv_check(const char *path)
{
	if (!absolute(path))
		return NULL;
	return argv_build("check", "-q", "-f", "qcow2", path, NULL);
}

char **image_argv_repair_leaks(const char *path)
{
	if (!absolute(path))
		return NULL;
	return argv_build("check", "-q", "-r", "leaks", "-f", "qcow2", path, NULL);
}

char **image_argv_map(const char *path, uint64_t offset, uint64_t length)
{
	char start[48], max[48];

	if (!absolute(path))
		return NULL;
	g_snprintf(start, sizeof(start), "--start-offset=%" G_GUINT64_FORMAT,
		   offset);
	g_snprintf(max, sizeof(max), "--max-length=%" G_GUINT64_FORMAT, length);
	return argv_build("map", "-U", "-f", "qcow2", start, max, path, NULL);
}

char **image_argv_map_json(const char *path)
{
	g_autofree char *file = NULL, *spec = NULL;

	if (!absolute(path))
		return NULL;
	/* the file alone: its backing files are neither opened nor read
	 * (a chain of n layers cost n files' cold metadata reads) */
	file = json_quote(path);
	spec = g_strdup_printf("json:{\"driver\":\"qcow2\",\"backing\":null,"
			       "\"file\":{\"driver\":\"file\",\"filename\":%s}}",
			       file);
	return argv_build("map", "-U", "--output=json", spec, NULL);
}

char **image_argv_info(const char *path)
{
	if (!absolute(path))
		return NULL;
	return argv_build("info", "-U", "--output=json", "-f", "qcow2", path,
			  NULL);
}

/* A path as a value in qemu's "key=value,..." syntax: commas doubled. */
static char *opts_escape(const char *path)
{
	GString *s = g_string_new(NULL);

	for (; *path; path++) {
		if (*path == ',')
			g_string_append_c(s, ',');
		g_string_append_c(s, *path);
	}
	return g_string_free(s, FALSE);
}

char **image_argv_commit(const char *path)
{
	g_autofree char *esc = NULL, *opts = NULL;

	if (!absolute(path))
		return NULL;
	esc = opts_escape(path);
	/*
	 * No image locks: a VM (or qemu-io) using the volume has every layer
	 * open as a backing file and forbids writers; committing is still
	 * safe for it (see layer.c), and locks would make either side fail.
	 */
	opts = g_strdup_printf("driver=qcow2,file.driver=file,file.filename=%s,"
			       "file.locking=off,backing.file.locking=off", esc);
	return argv_build("commit", "-q", "-d", "--image-opts", opts, NULL);
}

char **image_argv_rebase(const char *path, const char *backing)
{
	if (!absolute(path) || (backing && !absolute(backing)))
		return NULL;
	if (!backing)
		return argv_build("rebase", "-q", "-f", "qcow2", "-b", "", path,
				  NULL);
	return argv_build("rebase", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
			  backing, path, NULL);
}

char **image_argv_version(void)
{
	return argv_build("--version", NULL);
}

const char *image_qemu_nbd(void)
{
	const char *p = getenv("SNAPFS_QEMU_NBD");

	return p && *p ? p : "qemu-nbd";
}

/* qemu-nbd serving the qcow2 at @path, killed with its parent;
 * @read_only also reports allocation depth (what a backup reads). */
static char **nbd_argv(const char *path, bool read_only)
{
	GPtrArray *v;

	if (!absolute(path))
		return NULL;
	v = g_ptr_array_new();
	/* setpriv execs in place: the pid libnbd put in LISTEN_PID stays */
	g_ptr_array_add(v, g_strdup("setpriv"));
	g_ptr_array_add(v, g_strdup("--pdeathsig"));
	g_ptr_array_add(v, g_strdup("KILL"));
	g_ptr_array_add(v, g_strdup("--"));
	g_ptr_array_add(v, g_strdup(image_qemu_nbd()));
	if (read_only)
		g_ptr_array_add(v, g_strdup("--read-only"));
	g_ptr_array_add(v, g_strdup("--format=qcow2"));
	if (read_only)
		g_ptr_array_add(v, g_strdup("--allocation-depth"));
	g_ptr_array_add(v, g_strdup(path));
	g_ptr_array_add(v, NULL);
	return (char **)g_ptr_array_free(v, FALSE);
}

char **image_argv_nbd_server(const char *path)
{
	return nbd_argv(path, true);
}

char **image_argv_nbd_writer(const char *path)
{
	return nbd_argv(path, false);
}

char **image_argv_create(const char *path, uint64_t size)
{
	char sz[32];

	if (!absolute(path))
		return NULL;
	g_snprintf(sz, sizeof(sz), "%" G_GUINT64_FORMAT, size);
	return argv_build("create", "-q", "-f", "qcow2", path, sz, NULL);
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

int image_parse_header(const void *buf, size_t len, struct qcow2_header *out)
{
	const unsigned char *p = buf;
	uint64_t boff;
	uint32_t bsize;

	memset(out, 0, sizeof(*out));
	if (len < 72 || memcmp(p, "QFI\xfb", 4) != 0)
		return -EINVAL;
	out->version = be32(p + 4);
	if (out->version < 2 || out->version > 3)
		return -EINVAL;
	boff = be64(p + 8);
	bsize = be32(p + 16);
	out->cluster_bits = be32(p + 20);
	out->virtual_size = be64(p + 24);
	out->crypt_method = be32(p + 32);
	if (out->version == 3 && len >= 80)
		out->incompatible = be64(p + 72);
	if (out->cluster_bits < 9 || out->cluster_bits > 21)
		return -EINVAL;
	if (boff == 0)
		return 0;
	if (bsize == 0)
		return -EINVAL;
	if (bsize >= sizeof(out->backing))
		return -E2BIG;
	if (boff > len || bsize > len - boff)
		return -E2BIG;
	memcpy(out->backing, p + boff, bsize);
	out->backing[bsize] = '\0';
	if (strlen(out->backing) != bsize)
		return -EINVAL;
	return 0;
}

int image_parse_progress(const char *line, double *percent)
{
	const char *p = strchr(line, '(');
	char *end;
	double v;

	if (!p)
		return -EINVAL;
	v = g_ascii_strtod(p + 1, &end);
	if (end == p + 1 || strncmp(end, "/100%)", 6) != 0)
		return -EINVAL;
	if (!(v >= 0.0 && v <= 100.0))
		return -EINVAL;
	*percent = v;
	return 0;
}

int image_stderr_errno(const char *text)
{
	if (!text)
		return -EIO;
	if (strstr(text, "No space left on device"))
		return -ENOSPC;
	if (strstr(text, "Disk quota exceeded"))
		return -EDQUOT;
	if (strstr(text, "Permission denied"))
		return -EACCES;
	if (strstr(text, "Failed to get") && strstr(text, "lock"))
		return -EBUSY;
	if (strstr(text, "No such file or directory"))
		return -ENOENT;
	return -EIO;
}
