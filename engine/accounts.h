/*
 * accounts.h - accounts: the snapshot limit of each user and its check.
 *
 * Calling sequence: account_quota_check() inside the transaction that
 * inserts the snapshot row.
 */
#ifndef SNAP_ACCOUNTS_H
#define SNAP_ACCOUNTS_H

#include "context.h"

/** account_limit() - snapshots @uid may store; 0 for no limit (root). */
int64_t account_limit(struct snap_engine *eng, uid_t uid);
/**
 * account_quota_check() - may @uid store one more snapshot?  Call inside
 * the transaction that inserts it (it is rolled back on -EDQUOT: the
 * caller records the rejection, with @why, after it).
 * Return: 0; -EDQUOT and @why says so; -EIO.
 */
int account_quota_check(struct snap_engine *eng, uid_t uid, char *why,
			size_t size);

#endif
