/*
 * fuzz_path.c - fs/path.c path_parse(), the first thing every FUSE request
 * goes through.
 *
 * Invariants (fs/path.h):
 *  - the result is 0, -ENOENT, -EINVAL or -ENAMETOOLONG; ENAMETOOLONG only
 *    when a component is longer than 255 bytes;
 *  - the names in struct node are NUL-terminated within their arrays;
 *  - -EINVAL leaves a kind that has a name a user may create (volume,
 *    snapshot, VM, VM snapshot, policy);
 *  - on success: the kind is inside the enum, every name it carries is a
 *    valid name (checked against an independent definition), the fields
 *    it does not carry are empty, read_only says "under backed-up/ or
 *    images/", a node is never both a directory and a link; and the path, with repeated and
 *    trailing slashes removed, is exactly the canonical path of the node
 *    (so the parser accepts one spelling per node), which parses again to
 *    the same node.
 */
#include <errno.h>
#include <inttypes.h>

#include "fuzz.h"
#include "path.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

enum { HAS_VOL = 1, HAS_SNAP = 2, HAS_VM = 4, HAS_ID = 8, HAS_HOST = 16 };

/* What a node of @kind carries, and its canonical path into @s. */
static int canonical(const struct node *n, GString *s)
{
	g_string_truncate(s, 0);
	switch (n->kind) {
	case NODE_ROOT:
		g_string_append(s, "/");
		return 0;
	case NODE_README:
		g_string_append(s, "/README");
		return 0;
	case NODE_EVENTS:
		g_string_append(s, "/events");
		return 0;
	case NODE_CLOCK:
		g_string_append(s, "/.clock");
		return 0;
	case NODE_ALERTS:
		g_string_append(s, "/alerts");
		return 0;
	case NODE_ALERT:
		g_string_append_printf(s, "/alerts/%" PRIu64, n->id);
		return HAS_ID;
	case NODE_JOBS:
		g_string_append(s, "/jobs");
		return 0;
	case NODE_JOB:
		g_string_append_printf(s, "/jobs/%" PRIu64, n->id);
		return HAS_ID;
	case NODE_LIMITS:
		g_string_append(s, "/limits");
		return 0;
	case NODE_POLICIES:
		g_string_append(s, "/policies");
		return 0;
	case NODE_POLICY:
		g_string_append_printf(s, "/policies/%s", n->snap);
		return HAS_SNAP;
	case NODE_VOLUMES:
		g_string_append(s, "/volumes");
		return 0;
	case NODE_VOLUME:
		g_string_append_printf(s, "/volumes/%s", n->vol);
		return HAS_VOL;
	case NODE_VOLUME_INFO:
		g_string_append_printf(s, "/volumes/%s/info", n->vol);
		return HAS_VOL;
	case NODE_VOLUME_CONTROL:
		g_string_append_printf(s, "/volumes/%s/control", n->vol);
		return HAS_VOL;
	case NODE_SNAPSHOTS:
		g_string_append_printf(s, "/volumes/%s/snapshots", n->vol);
		return HAS_VOL;
	case NODE_SNAPSHOT:
		g_string_append_printf(s, "/volumes/%s/snapshots/%s", n->vol,
				       n->snap);
		return HAS_VOL | HAS_SNAP;
	case NODE_SNAPSHOT_STATE:
		g_string_append_printf(s, "/volumes/%s/snapshots/%s/state",
				       n->vol, n->snap);
		return HAS_VOL | HAS_SNAP;
	case NODE_SNAPSHOT_INFO:
		g_string_append_printf(s, "/volumes/%s/snapshots/%s/info",
				       n->vol, n->snap);
		return HAS_VOL | HAS_SNAP;
	case NODE_SNAPSHOT_WAIT:
		g_string_append_printf(s, "/wait/%s/%s", n->vol, n->snap);
		return HAS_VOL | HAS_SNAP;
	case NODE_WAIT:
		g_string_append(s, "/wait");
		return 0;
	case NODE_WAIT_VOLUME:
		g_string_append_printf(s, "/wait/%s", n->vol);
		return HAS_VOL;
	case NODE_CACHEDIR_TAG: {
		/* @id: the kind of the directory that holds it */
		struct node dir = { .kind = (enum node_kind)n->id };

		if (dir.kind != NODE_VOLUMES && dir.kind != NODE_VMS &&
		    dir.kind != NODE_JOBS && dir.kind != NODE_ALERTS &&
		    dir.kind != NODE_POLICIES)
			return -1;
		canonical(&dir, s);
		g_string_append(s, "/CACHEDIR.TAG");
		return HAS_ID;
	}
	case NODE_BACKED_UP:
		g_string_append(s, "/backed-up");
		return 0;
	case NODE_BACKED_UP_VOLUMES:
		g_string_append(s, "/backed-up/volumes");
		return 0;
	case NODE_BACKED_UP_VOLUME:
		g_string_append_printf(s, "/backed-up/volumes/%s", n->vol);
		return HAS_VOL;
	case NODE_BACKED_UP_IMAGE:
		g_string_append_printf(s, "/backed-up/volumes/%s/%s.qcow2",
				       n->vol, n->snap);
		return HAS_VOL | HAS_SNAP;
	case NODE_BACKED_UP_MANIFEST:
		g_string_append_printf(s, "/backed-up/volumes/%s/%s.json",
				       n->vol, n->snap);
		return HAS_VOL | HAS_SNAP;
	case NODE_BACKED_UP_HOSTS:
		g_string_append(s, "/backed-up/hosts");
		return 0;
	case NODE_BACKED_UP_HOST:
		g_string_append_printf(s, "/backed-up/hosts/%s", n->host);
		return HAS_HOST;
	case NODE_BACKED_UP_HOST_VOLUMES:
		g_string_append_printf(s, "/backed-up/hosts/%s/volumes", n->host);
		return HAS_HOST;
	case NODE_BACKED_UP_HOST_VOLUME:
		g_string_append_printf(s, "/backed-up/hosts/%s/volumes/%s",
				       n->host, n->vol);
		return HAS_HOST | HAS_VOL;
	case NODE_BACKED_UP_HOST_IMAGE:
		g_string_append_printf(s, "/backed-up/hosts/%s/volumes/%s/%s.qcow2",
				       n->host, n->vol, n->snap);
		return HAS_HOST | HAS_VOL | HAS_SNAP;
	case NODE_BACKED_UP_HOST_MANIFEST:
		g_string_append_printf(s, "/backed-up/hosts/%s/volumes/%s/%s.json",
				       n->host, n->vol, n->snap);
		return HAS_HOST | HAS_VOL | HAS_SNAP;
	case NODE_CONTROL:
		g_string_append(s, "/control");
		return 0;
	case NODE_IMAGES:
		g_string_append(s, "/images");
		return 0;
	case NODE_IMAGES_VOLUMES:
		g_string_append(s, "/images/volumes");
		return 0;
	case NODE_IMAGES_VOLUME:
		g_string_append_printf(s, "/images/volumes/%s", n->vol);
		return HAS_VOL;
	case NODE_IMAGE_RAW:
		g_string_append_printf(s, "/images/volumes/%s/%s.raw",
				       n->vol, n->snap);
		return HAS_VOL | HAS_SNAP;
	case NODE_IMAGES_TAG:
		g_string_append(s, "/images/CACHEDIR.TAG");
		return 0;
	case NODE_VMS:
		g_string_append(s, "/vms");
		return 0;
	case NODE_VM:
		g_string_append_printf(s, "/vms/%s", n->vm);
		return HAS_VM;
	case NODE_VM_INFO:
		g_string_append_printf(s, "/vms/%s/info", n->vm);
		return HAS_VM;
	case NODE_VM_STATE:
		g_string_append_printf(s, "/vms/%s/state", n->vm);
		return HAS_VM;
	case NODE_VM_CONTROL:
		g_string_append_printf(s, "/vms/%s/control", n->vm);
		return HAS_VM;
	case NODE_VM_OPTIONS:
		g_string_append_printf(s, "/vms/%s/snapshot-options", n->vm);
		return HAS_VM;
	case NODE_VM_VOLUMES:
		g_string_append_printf(s, "/vms/%s/volumes", n->vm);
		return HAS_VM;
	case NODE_VM_VOLUME_LINK:
		g_string_append_printf(s, "/vms/%s/volumes/%s", n->vm, n->vol);
		return HAS_VM | HAS_VOL;
	case NODE_VM_SNAPSHOTS:
		g_string_append_printf(s, "/vms/%s/snapshots", n->vm);
		return HAS_VM;
	case NODE_VM_CURRENT:
		g_string_append_printf(s, "/vms/%s/snapshots/current", n->vm);
		return HAS_VM;
	case NODE_VM_SNAPSHOT:
		g_string_append_printf(s, "/vms/%s/snapshots/%s", n->vm,
				       n->snap);
		return HAS_VM | HAS_SNAP;
	case NODE_VM_SNAPSHOT_INFO:
		g_string_append_printf(s, "/vms/%s/snapshots/%s/info", n->vm,
				       n->snap);
		return HAS_VM | HAS_SNAP;
	case NODE_VM_SNAPSHOT_PARENT:
		g_string_append_printf(s, "/vms/%s/snapshots/%s/parent", n->vm,
				       n->snap);
		return HAS_VM | HAS_SNAP;
	case NODE_NONE:
	case NODE_LAST:
		break;
	}
	return -1;
}

/* @path without repeated or trailing slashes. */
static void normalize(const char *path, GString *s)
{
	g_string_truncate(s, 0);
	for (const char *p = path; *p; p++)
		if (*p != '/' || (p[1] != '/' && p[1] != '\0'))
			g_string_append_c(s, *p);
	if (s->len == 0)
		g_string_append_c(s, '/');
}

static bool has_long_component(const char *path)
{
	for (const char *q = path; *q;) {
		size_t len = strcspn(q, "/");

		if (len > 255)
			return true;
		q += len + (q[len] == '/');
	}
	return false;
}

static bool names_terminated(const struct node *n)
{
	return fuzz_terminated(n->vol, sizeof(n->vol)) &&
	       fuzz_terminated(n->snap, sizeof(n->snap)) &&
	       fuzz_terminated(n->vm, sizeof(n->vm)) &&
	       fuzz_terminated(n->host, sizeof(n->host));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *path = fuzz_cstr(data, size);
	g_autoptr(GString) want = g_string_new(NULL);
	g_autoptr(GString) got = g_string_new(NULL);
	struct node n, again;
	int rc, has;

	memset(&n, 0xa5, sizeof(n));
	rc = path_parse(path, &n);
	FUZZ_CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL ||
		   rc == -ENAMETOOLONG, "rc %d", rc);
	FUZZ_CHECK(names_terminated(&n), "rc %d", rc);
	if (rc == -ENAMETOOLONG)
		FUZZ_CHECK(has_long_component(path), "no component > 255");
	if (strlen(path) >= 4096)
		FUZZ_CHECK(rc == -ENOENT || rc == -ENAMETOOLONG, "rc %d", rc);
	if (rc == -EINVAL)
		FUZZ_CHECK(n.kind == NODE_VOLUME || n.kind == NODE_SNAPSHOT ||
			   n.kind == NODE_VM || n.kind == NODE_VM_SNAPSHOT ||
			   n.kind == NODE_POLICY,
			   "EINVAL with kind %d", (int)n.kind);
	if (rc != 0)
		return 0;

	FUZZ_CHECK(n.kind > NODE_NONE && n.kind < NODE_LAST, "kind %d",
		   (int)n.kind);
	FUZZ_CHECK(!(node_is_dir(n.kind) && node_is_link(n.kind)), "kind %d",
		   (int)n.kind);
	has = canonical(&n, want);
	FUZZ_CHECK(has >= 0, "kind %d", (int)n.kind);
	FUZZ_CHECK((has & HAS_VOL) ? fuzz_name_ok(n.vol) : !n.vol[0],
		   "kind %d vol '%s'", (int)n.kind, n.vol);
	FUZZ_CHECK((has & HAS_SNAP) ? fuzz_name_ok(n.snap) : !n.snap[0],
		   "kind %d snap '%s'", (int)n.kind, n.snap);
	FUZZ_CHECK((has & HAS_VM) ? fuzz_name_ok(n.vm) : !n.vm[0],
		   "kind %d vm '%s'", (int)n.kind, n.vm);
	FUZZ_CHECK((has & HAS_HOST) ? fuzz_name_ok(n.host) : !n.host[0],
		   "kind %d host '%s'", (int)n.kind, n.host);
	FUZZ_CHECK((has & HAS_ID) ? n.id != 0 : n.id == 0, "kind %d id %" PRIu64,
		   (int)n.kind, n.id);
	normalize(path, got);
	FUZZ_CHECK(n.read_only == (g_str_has_prefix(got->str, "/backed-up") ||
				   g_str_has_prefix(got->str, "/images")),
		   "read_only %d", n.read_only);
	FUZZ_CHECK(!strcmp(got->str, want->str),
		   "'%s' parsed as kind %d, whose path is '%s'", got->str,
		   (int)n.kind, want->str);

	rc = path_parse(want->str, &again);
	FUZZ_CHECK(rc == 0 && again.kind == n.kind &&
		   !strcmp(again.vol, n.vol) && !strcmp(again.snap, n.snap) &&
		   !strcmp(again.vm, n.vm) && !strcmp(again.host, n.host) &&
		   again.id == n.id &&
		   again.read_only == n.read_only,
		   "'%s' parses differently", want->str);
	return 0;
}
