/*
 * testpoint.h - test points: where a test can make the daemon hang for a
 * kill -9, or pause until it has done something meanwhile.
 *
 * Calling sequence: testpoint("name") at the point; SNAPFS_HANG_AT=name
 * makes it block for ever there, or, with SNAPFS_HANG_FIFO=<fifo> too,
 * until the test has opened and closed that FIFO for writing.
 */
#ifndef SNAP_TESTPOINT_H
#define SNAP_TESTPOINT_H

/**
 * testpoint() - when SNAPFS_HANG_AT names @name: block for ever here, or,
 * with SNAPFS_HANG_FIFO set, until a writer has opened the FIFO and
 * closed it again (each arrival waits for one release).
 */
void testpoint(const char *name);

#endif
