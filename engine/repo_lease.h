/*
 * repo_lease.h - what each host's running backups need kept, told to
 * every host's garbage collector (issue 14; docs/repository.md, "Hosts
 * sharing a repository").
 *
 * GC removes an unnamed chunk only if it is older than a cutoff before
 * every running backup began: a chunk a backup wrote, or touched, is
 * named only once that backup publishes its index.  One host knows its
 * own running backups (repo.c); hosts sharing a SECONDARY tell each other
 * through one small file per host, SECONDARY/.leases/<host>:
 *
 *	"oldest <unix seconds>\n"  the start of its oldest running backup
 *	"idle\n"                   no backup running
 *
 * written whole (temporary file, fsync, rename, directory fsync) before a
 * backup writes its first chunk and after it ends.  A GC takes the lowest
 * "oldest" of every other host into its cutoff; a lease it cannot read
 * or parse makes the run keep every unnamed chunk.  A host that dies in a
 * backup leaves its lease saying so: GC stays conservative about chunks
 * younger than that backup's start until the host mounts again (its lease
 * is reset at start) or an admin removes the file.
 *
 * A base module: no engine context.  Thread-safe as the file system is;
 * the caller serializes its own host's writes (repo.c's lease_lock).
 */
#ifndef SNAP_REPO_LEASE_H
#define SNAP_REPO_LEASE_H

#include <stdint.h>

#define LEASE_DIR ".leases"

/**
 * lease_write() - durably set this host's lease
 * @secondary: SECONDARY (an existing directory)
 * @host: this host's name (an object name)
 * @oldest: the start of its oldest running backup, or -1: idle
 * Creates SECONDARY/.leases (0755) when missing.  Fault point
 * "lease.write".
 * Return: 0; -errno (logged).
 */
int lease_write(const char *secondary, const char *host, int64_t oldest);

/**
 * lease_others() - the lowest "oldest" of every other host's lease
 * @host: this host's (its own lease is skipped)
 * @oldest: receives it; INT64_MAX when no other host runs a backup, 0 when
 *	a lease could not be read or parsed (keep everything)
 * @hosts: receives how many other hosts' leases were read
 * Return: 0 (a missing .leases is no lease); -errno .leases unreadable
 * (then *@oldest is 0 too; logged).
 */
int lease_others(const char *secondary, const char *host, int64_t *oldest,
		 unsigned *hosts);

/*
 * On a RADOS secondary the leases are objects ".leases/<host>" with the
 * same text, each written whole by one write op (rados.h): the same
 * contracts as lease_write() and lease_others().
 */
struct rados_store;
int lease_write_rados(struct rados_store *rs, const char *host,
		      int64_t oldest);
int lease_others_rados(struct rados_store *rs, const char *host,
		       int64_t *oldest, unsigned *hosts);

#endif
