/*
 * testpoint.h - test points: where a test can make the daemon hang for a kill -9.
 *
 * Calling sequence: testpoint("name") at the point; SNAPFS_HANG_AT=name
 * makes it block for ever there.
 */
#ifndef SNAP_TESTPOINT_H
#define SNAP_TESTPOINT_H

/** testpoint() - block for ever here when SNAPFS_HANG_AT names @name. */
void testpoint(const char *name);

#endif
