/*
 * image.h - qemu-img command lines and qcow2 facts, as pure functions.
 *
 * Nothing here runs a process or touches a file: argv vectors are built
 * here (and checked against golden files in tests/unit), run by proc.c.
 * Every argv ends with the image paths after "--"-free explicit options,
 * so a path can never be taken for an option (paths are absolute).
 */
#ifndef SNAP_IMAGE_H
#define SNAP_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* The program, overridable for tests through SNAPFS_QEMU_IMG. */
const char *image_qemu_img(void);

/*
 * Each builder returns a NULL-terminated vector owned by the caller
 * (g_strfreev), or NULL when a path is not absolute.
 */

/** image_argv_overlay() - empty qcow2 @path of @size bytes over @backing. */
char **image_argv_overlay(const char *backing, const char *path, uint64_t size);

/**
 * image_argv_convert() - standalone qcow2 copy of the chain ending in @src,
 * printing progress, sharing @src with other readers (-U) and leaving the
 * flush of @dst to the caller.
 */
char **image_argv_convert(const char *src, const char *dst);

/** image_argv_check() - structural check of a qcow2 image. */
char **image_argv_check(const char *path);
/** image_argv_repair_leaks() - free the clusters of a qcow2 image that no
 * table points to (a write cut by a crash); never touches data. */
char **image_argv_repair_leaks(const char *path);

/**
 * image_argv_map() - `qemu-img map` of bytes [@offset, @offset + @length)
 * of the chain ending in @path, in the human format: one line per data
 * extent with its file and offset there (imagemap.c parses it).  With -U,
 * like convert: the chain is frozen.
 */
char **image_argv_map(const char *path, uint64_t offset, uint64_t length);

/**
 * image_argv_map_json() - `qemu-img map --output=json` of the qcow2 file
 * @path opened without its backing files: one object per line, "present"
 * where @path itself allocates the extent (data or zeros), depth 0
 * throughout.  With -U.
 */
char **image_argv_map_json(const char *path);

/** image_argv_info() - JSON facts of one image, shared with other users. */
char **image_argv_info(const char *path);

/**
 * image_argv_commit() - write the data of @path into its backing file,
 * leaving @path itself unchanged (-d), so readers of @path stay consistent.
 * Takes no image locks (file.locking=off), so a VM using the chain does
 * not block it nor is blocked by it.
 */
char **image_argv_commit(const char *path);

/**
 * image_argv_rebase() - make @path's backing @backing (NULL: none), copying
 * into @path whatever differs (safe mode), with image locks on.
 */
char **image_argv_rebase(const char *path, const char *backing);

/** image_argv_version() - `qemu-img --version`. */
char **image_argv_version(void);

/* The NBD server, overridable for tests through SNAPFS_QEMU_NBD. */
const char *image_qemu_nbd(void);

/**
 * image_argv_nbd_server() - a read-only qemu-nbd serving the chain ending
 * in @path on the socket systemd socket activation hands it (nbd.c runs
 * it through libnbd), with the meta context "qemu:allocation-depth".
 * Wrapped in `setpriv --pdeathsig KILL`: the server dies with the thread
 * that started it, as proc.c's children do.  Exits when its one client
 * disconnects (no --persistent).  Takes qemu's shared read lock (qemu-nbd
 * 7.2 has no --force-share): it coexists with a VM running over the chain
 * and with snapfs's commits (file.locking=off).
 */
char **image_argv_nbd_server(const char *path);

/**
 * image_argv_nbd_writer() - a writable qemu-nbd serving the one qcow2 file
 * @path (a restore's new image, nothing else has it open), on the socket
 * systemd socket activation hands it; `setpriv --pdeathsig KILL` as above.
 * Writes go through qemu's own cache; the client flushes before it closes.
 */
char **image_argv_nbd_writer(const char *path);

/** image_argv_create() - `qemu-img create -f qcow2 @path @size`: an empty
 * standalone qcow2 (a restore writes into it over NBD). */
char **image_argv_create(const char *path, uint64_t size);

/**
 * struct qcow2_header - the parts of a qcow2 header snapfs reads
 * @virtual_size: guest-visible size in bytes
 * @cluster_bits: log2 of the cluster size
 * @backing:      backing file name, "" when none (NUL-terminated)
 */
struct qcow2_header {
	uint32_t version;
	uint64_t virtual_size;
	uint32_t cluster_bits;
	uint32_t crypt_method;	/* 0: not encrypted */
	uint64_t incompatible;	/* version 3's incompatible features, else 0 */
	char backing[4096];
};

/* incompatible feature bit 2: the data clusters lie in an external file */
#define QCOW2_INCOMPAT_DATA_FILE (UINT64_C(1) << 2)

/**
 * image_parse_header() - read a qcow2 header from the first bytes of a file
 * @buf, @len: the file's first bytes (the backing name lies in cluster 0,
 *             so the first 64 KiB always suffice)
 * Return: 0; -EINVAL not qcow2 or inconsistent; -E2BIG backing name not
 * inside @buf or longer than 4095 bytes.
 */
int image_parse_header(const void *buf, size_t len, struct qcow2_header *out);

/**
 * image_parse_progress() - percent from one `qemu-img convert -p` line
 * such as "    (42.17/100%)".  Return: 0 and *@percent; -EINVAL otherwise.
 */
int image_parse_progress(const char *line, double *percent);

/**
 * image_stderr_errno() - the errno a qemu-img error message stands for
 *
 * "No space left on device" is -ENOSPC, "Permission denied" -EACCES,
 * "No such file" -ENOENT, a lock conflict -EBUSY, anything else -EIO.
 */
int image_stderr_errno(const char *text);

#endif
