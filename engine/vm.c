/*
 * vm.c - all of libvirt.
 *
 * DESIGN: one virConnect per engine, shared by all threads (libvirt
 * connections are thread-safe).  libvirt needs an event loop: a thread
 * here runs virEventRunDefaultImpl() until vm_close().  The embedded QEMU
 * driver keeps its state under ROOT (one process per root); its qemu.conf
 * is written by vm_open(): stdio to files (no virtlogd), QEMU as root (no
 * libvirt-qemu access rules to maintain for /dev/kvm and the storage), no
 * relabelling of the images snapfs manages.  VMs started by the embedded
 * driver outlive snapfs and are found again at the next open.
 *
 * A libvirtd (any other URI) may restart while snapfs runs.  Its QEMUs go
 * on; only the connection is lost.  Every call takes a reference on the
 * connection through conn_get(), which opens a new one when libvirt has
 * closed the old (no RPC: virConnectIsAlive() reads the client's state).
 * While libvirtd is away that open fails at once and the call returns
 * -EAGAIN, as does a call cut by the daemon going away; c->lock guards
 * only the pointer, never a libvirt call.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "fault.h"
#include "vm.h"
#include "proc.h"
#include "log.h"

struct vm_conn {
	GMutex lock;	      /* guards conn and lost */
	virConnectPtr conn;   /* NULL while libvirt cannot be reached */
	bool lost;	      /* the outage was logged */
	vm_notify_fn notify;
	void *notify_data;
	char *uri;
	int timer;	 /* keeps the event loop iterating; -1: none */
	bool subreaper;	 /* we made the process a child subreaper */
	GThread *loop;
	GThread *reaper;
	gint stopping;
	GMutex reap_lock; /* guards reap_until; with reap_cond */
	GCond reap_cond;  /* wakes the reaper: an operation, or stopping */
	gint64 reap_until; /* monotonic us: poll fast until then */
};

/* The one table from libvirt errors to errno. */
static int vm_errno(void)
{
	virErrorPtr e = virGetLastError();

	if (!e)
		return -EIO;
	/* the daemon went away (restart): the connection is gone, not the VM */
	if (e->domain == VIR_FROM_RPC || e->code == VIR_ERR_NO_CONNECT ||
	    e->code == VIR_ERR_RPC)
		return -EAGAIN;
	switch (e->code) {
	case VIR_ERR_NO_DOMAIN:
	case VIR_ERR_NO_DOMAIN_SNAPSHOT:
		return -ENOENT;
	case VIR_ERR_OPERATION_INVALID:
		return -EBUSY;
	case VIR_ERR_NO_SUPPORT:
	case VIR_ERR_ARGUMENT_UNSUPPORTED:
	case VIR_ERR_AGENT_UNSYNCED:
		return -EOPNOTSUPP;
	case VIR_ERR_AGENT_UNRESPONSIVE:
	case VIR_ERR_OPERATION_TIMEOUT:
		return -ETIMEDOUT;
	case VIR_ERR_OPERATION_DENIED:
	case VIR_ERR_AUTH_FAILED:
		return -EACCES;
	case VIR_ERR_NO_MEMORY:
		return -ENOMEM;
	case VIR_ERR_XML_ERROR:
	case VIR_ERR_INVALID_ARG:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static int fail(const char *what, const char *subject)
{
	virErrorPtr e = virGetLastError();
	int rc = vm_errno();

	snap_log(LOG_ERR, "vm: %s '%s' failed: %s", what, subject ? subject : "",
		 e && e->message ? e->message : "unknown error");
	return rc;
}

/*
 * A reference on the connection (conn_put() it), opened anew when libvirt
 * closed the last one.  Return: NULL and *@rc = -EAGAIN while libvirt
 * cannot be reached (logged once per outage).
 */
static virConnectPtr conn_get(struct vm_conn *c, int *rc)
{
	virConnectPtr conn, old;
	g_autofree char *why = NULL;
	bool changed;

	g_mutex_lock(&c->lock);
	conn = c->conn;
	if (conn)
		virConnectRef(conn);
	g_mutex_unlock(&c->lock);
	if (conn && virConnectIsAlive(conn) == 1)
		return conn;
	if (conn)
		virConnectClose(conn);

	conn = virConnectOpen(c->uri);
	g_mutex_lock(&c->lock);
	old = c->conn;
	c->conn = conn;
	if (conn)
		virConnectRef(conn);
	changed = c->lost != !conn;
	if (!conn && changed) {
		virErrorPtr e = virGetLastError();

		why = g_strdup(e && e->message ? e->message : "unknown error");
		snap_log(LOG_ERR, "vm: lost the connection to libvirt at '%s': %s",
			 c->uri, why);
	} else if (conn && changed) {
		snap_log(LOG_INFO, "vm: reconnected to libvirt at '%s'", c->uri);
	}
	c->lost = !conn;
	g_mutex_unlock(&c->lock);
	if (old)
		virConnectClose(old);
	if (changed && c->notify)
		c->notify(c->notify_data, conn != NULL, why ? why : "");
	if (!conn)
		*rc = -EAGAIN;
	return conn;
}

static void conn_put(virConnectPtr conn)
{
	virConnectClose(conn);
}

/* libvirt prints its errors itself by default: route them to our log at
 * debug level; the failing call logs the one line that matters. */
static void quiet_errors(void *data, virErrorPtr e)
{
	snap_log(LOG_DEBUG, "vm: libvirt: %s", e && e->message ? e->message : "");
}

static gpointer event_loop(gpointer data)
{
	struct vm_conn *c = data;

	while (!g_atomic_int_get(&c->stopping))
		if (virEventRunDefaultImpl() < 0)
			break;
	return NULL;
}

/*
 * The embedded driver daemonizes each QEMU, so an exited QEMU waits for
 * pid 1 to reap it, and libvirt polls until the zombie is gone: where pid 1
 * is slow (measured 1.95 s in the test sandbox) every force-stop and revert
 * pays for it.  snapfs is a child subreaper instead, and this thread reaps
 * the QEMU zombies handed to it, and only those (by name: GLib and libvirt
 * wait for their own children themselves).
 *
 * It looks every REAP_BUSY_US for REAP_WINDOW_US after an operation that
 * may end a QEMU (reap_soon(): start, destroy, shutdown, save, restore),
 * and every REAP_IDLE_US otherwise, for a QEMU that ends by itself (a
 * guest powering off): an idle daemon scanning /proc 50 times a second
 * would be seen in top.
 */
#define REAP_BUSY_US (20 * 1000)
#define REAP_IDLE_US (1000 * 1000)
#define REAP_WINDOW_US (30 * G_USEC_PER_SEC)

/* An operation that may end a QEMU is about to run: the reaper looks
 * often for the next REAP_WINDOW_US. */
static void reap_soon(struct vm_conn *c)
{
	g_mutex_lock(&c->reap_lock);
	c->reap_until = g_get_monotonic_time() + REAP_WINDOW_US;
	g_cond_signal(&c->reap_cond);
	g_mutex_unlock(&c->reap_lock);
}

static bool qemu_orphan_zombie(pid_t pid, pid_t own_session)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
	g_autofree char *stat = NULL;
	const char *open, *close;
	int ppid, pgrp, session;

	if (!g_file_get_contents(path, &stat, NULL, NULL))
		return false;
	open = strchr(stat, '(');
	close = strrchr(stat, ')');
	if (!open || !close || close[1] != ' ' || close[2] != 'Z')
		return false;
	if (sscanf(close + 3, "%d %d %d", &ppid, &pgrp, &session) != 3)
		return false;
	/*
	 * Only daemonized QEMUs handed to us as orphans: libvirt setsid()s
	 * them.  A qemu-system libvirt runs itself (capability probes) is in
	 * our session, and libvirt waits for it: never touch those.
	 */
	return session != own_session && g_str_has_prefix(open + 1, "qemu-system");
}

static gpointer reaper(gpointer data)
{
	struct vm_conn *c = data;

	pid_t own_session = getsid(0);

	while (!g_atomic_int_get(&c->stopping)) {
		g_autoptr(GDir) tasks = g_dir_open("/proc/self/task", 0, NULL);
		const char *tid;

		while (tasks && (tid = g_dir_read_name(tasks))) {
			g_autofree char *path = g_strdup_printf(
				"/proc/self/task/%s/children", tid);
			g_autofree char *list = NULL;
			g_auto(GStrv) pids = NULL;

			if (!g_file_get_contents(path, &list, NULL, NULL))
				continue;
			pids = g_strsplit(g_strstrip(list), " ", -1);
			for (char **p = pids; *p; p++) {
				pid_t pid = (pid_t)atoi(*p);

				if (pid > 0 && qemu_orphan_zombie(pid, own_session) &&
				    waitpid(pid, NULL, WNOHANG) == pid)
					snap_log(LOG_DEBUG, "vm: reaped QEMU %d", (int)pid);
			}
		}
		g_mutex_lock(&c->reap_lock);
		if (!g_atomic_int_get(&c->stopping)) {
			gint64 now = g_get_monotonic_time();

			g_cond_wait_until(&c->reap_cond, &c->reap_lock,
					  now + (now < c->reap_until ?
						 REAP_BUSY_US : REAP_IDLE_US));
		}
		g_mutex_unlock(&c->reap_lock);
	}
	return NULL;
}

static void timer_noop(int timer, void *opaque)
{
}

static int write_qemu_conf(const char *root)
{
	g_autofree char *etc = g_strdup_printf("%s/etc", root);
	g_autofree char *path = g_strdup_printf("%s/qemu.conf", etc);
	static const char conf[] =
		"# written by snapfs at every mount: the embedded QEMU driver\n"
		"stdio_handler = \"file\"\n"
		"user = \"root\"\n"
		"group = \"root\"\n"
		"dynamic_ownership = 0\n"
		"security_driver = \"none\"\n"
		"remember_owner = 0\n"
		"# no private mount namespace: a copy of the host's mounts would\n"
		"# hold the snapfs mount itself, and snapfs could never unmount\n"
		"namespaces = [ ]\n";
	g_autoptr(GError) err = NULL;

	if (g_mkdir_with_parents(etc, 0700) < 0)
		return -errno;
	if (!g_file_set_contents(path, conf, -1, &err)) {
		snap_log(LOG_ERR, "vm: cannot write '%s': %s", path, err->message);
		return -EIO;
	}
	return 0;
}

/* As root the driver wants the libvirt-qemu user even when told to run
 * QEMU as root (NOTES.md); make sure it exists. */
static void ensure_qemu_user(void)
{
	char *argv[] = { "useradd", "-r", "-M", "-s", "/usr/sbin/nologin",
			 "libvirt-qemu", NULL };
	struct passwd pw, *pwp = NULL;
	char buf[1024];

	if (geteuid() != 0)
		return;
	getpwnam_r("libvirt-qemu", &pw, buf, sizeof(buf), &pwp);
	if (pwp)
		return;
	if (proc_run(argv, NULL, NULL, NULL) < 0)
		snap_log(LOG_WARNING, "vm: cannot create the libvirt-qemu user");
}

/* Stop what vm_open() started, in reverse order (any part may be unset). */
static void vm_conn_stop(struct vm_conn *c)
{
	g_mutex_lock(&c->reap_lock);
	g_atomic_int_set(&c->stopping, 1);
	g_cond_signal(&c->reap_cond);
	g_mutex_unlock(&c->reap_lock);
	if (c->reaper)
		g_thread_join(c->reaper);
	c->reaper = NULL;
	if (c->subreaper)
		prctl(PR_SET_CHILD_SUBREAPER, 0);
	c->subreaper = false;
	/* the timer wakes the loop up to see stopping: removed after it */
	if (c->loop)
		g_thread_join(c->loop);
	c->loop = NULL;
	if (c->timer >= 0)
		virEventRemoveTimeout(c->timer);
	c->timer = -1;
}

int vm_open(const char *uri, const char *embed_root, vm_notify_fn notify,
	    void *notify_data, struct vm_conn **out)
{
	static gsize loop_registered;
	struct vm_conn *c;
	int rc;

	virSetErrorFunc(NULL, quiet_errors);
	if (g_once_init_enter(&loop_registered)) {
		if (virEventRegisterDefaultImpl() < 0)
			return fail("event loop", "");
		g_once_init_leave(&loop_registered, 1);
	}
	c = g_new0(struct vm_conn, 1);
	g_mutex_init(&c->lock);
	g_mutex_init(&c->reap_lock);
	g_cond_init(&c->reap_cond);
	c->notify = notify;
	c->notify_data = notify_data;
	c->timer = -1;
	if (uri) {
		c->uri = g_strdup(uri);
	} else {
		ensure_qemu_user();
		rc = write_qemu_conf(embed_root);
		if (rc < 0)
			goto free_conn;
		c->uri = g_strdup_printf("qemu:///embed?root=%s", embed_root);
	}
	/* a timer keeps the loop iterating so vm_close() can stop it */
	c->timer = virEventAddTimeout(500, timer_noop, NULL, NULL);
	if (c->timer < 0) {
		rc = fail("event loop timer", "");
		goto free_conn;
	}
	/* libvirt's event loop runs before the connection uses it */
	c->loop = g_thread_try_new("snapfs-libvirt", event_loop, c, NULL);
	if (!c->loop) {
		snap_log(LOG_ERR, "vm: cannot start libvirt's event loop thread");
		rc = -ENOMEM;
		goto stop;
	}
	/* the subreaper and its reaper before the connection: the embedded
	 * driver may start QEMUs as it opens (autostart) */
	if (!uri && prctl(PR_SET_CHILD_SUBREAPER, 1) == 0) {
		c->subreaper = true;
		c->reap_until = g_get_monotonic_time() + REAP_WINDOW_US;
		c->reaper = g_thread_try_new("snapfs-reaper", reaper, c, NULL);
		if (!c->reaper) {
			/* orphans nobody reaps would stall libvirt: pid 1 */
			snap_log(LOG_WARNING, "vm: cannot start the QEMU reaper thread: pid 1 reaps QEMUs");
			prctl(PR_SET_CHILD_SUBREAPER, 0);
			c->subreaper = false;
		}
	}
	c->conn = virConnectOpen(c->uri);
	if (!c->conn) {
		rc = fail("connect", c->uri);
		goto stop;
	}
	snap_log(LOG_INFO, "vm: connected to '%s'", c->uri);
	*out = c;
	return 0;

stop:
	vm_conn_stop(c);
free_conn:
	g_free(c->uri);
	g_cond_clear(&c->reap_cond);
	g_mutex_clear(&c->reap_lock);
	g_mutex_clear(&c->lock);
	g_free(c);
	return rc;
}

void vm_close(struct vm_conn *c)
{
	if (!c)
		return;
	if (c->conn)
		virConnectClose(c->conn);
	vm_conn_stop(c);
	g_free(c->uri);
	g_cond_clear(&c->reap_cond);
	g_mutex_clear(&c->reap_lock);
	g_mutex_clear(&c->lock);
	g_free(c);
}

const char *vm_uri(struct vm_conn *c)
{
	return c->uri;
}

static gint name_cmp(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vm_list(struct vm_conn *c, char ***names_out)
{
	virDomainPtr *doms = NULL;
	GPtrArray *names;
	virConnectPtr conn;
	int n, i;

	conn = conn_get(c, &n);
	if (!conn)
		return n;
	n = virConnectListAllDomains(conn, &doms, 0);
	if (n < 0)
		n = fail("list", "domains");
	conn_put(conn);
	if (n < 0)
		return n;
	names = g_ptr_array_new();
	for (i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);

		if (name && snap_name_valid(name) == 0)
			g_ptr_array_add(names, g_strdup(name));
		virDomainFree(doms[i]);
	}
	free(doms);
	g_ptr_array_sort(names, name_cmp);
	n = (int)names->len;
	g_ptr_array_add(names, NULL);
	*names_out = (char **)g_ptr_array_free(names, FALSE);
	return n;
}

void vm_info_clear(struct vm_info *info)
{
	if (info->disks)
		g_array_free(info->disks, TRUE);
	info->disks = NULL;
}

/* ---- domain XML, with GMarkup ---- */

struct xml_walk {
	struct vm_info *info;
	bool in_disk;
	struct vm_disk disk;
	char unit[16];
	GString *text;
};

static const char *attr(const char **names, const char **values,
			const char *want)
{
	for (; *names; names++, values++)
		if (!strcmp(*names, want))
			return *values;
	return NULL;
}

/*
 * GMarkup's own stack of open elements (borrowed: the element being
 * started or ended first), so that no element name outlives the parse.
 */
static const char *parent_of(GMarkupParseContext *ctx)
{
	const GSList *stack = g_markup_parse_context_get_element_stack(ctx);

	return stack && stack->next ? stack->next->data : NULL;
}

static guint depth_of(GMarkupParseContext *ctx)
{
	return g_slist_length(
		(GSList *)g_markup_parse_context_get_element_stack(ctx));
}

static void xml_start(GMarkupParseContext *ctx, const char *el,
		      const char **names, const char **values, gpointer data,
		      GError **err)
{
	struct xml_walk *w = data;
	guint depth = depth_of(ctx); /* <domain> is 1 */
	const char *v;

	g_string_truncate(w->text, 0);
	if (!strcmp(el, "domain") && depth == 1) {
		v = attr(names, values, "type");
		g_strlcpy(w->info->type, v ? v : "", sizeof(w->info->type));
	} else if (!strcmp(el, "memory") && depth == 2) {
		v = attr(names, values, "unit");
		g_strlcpy(w->unit, v ? v : "KiB", sizeof(w->unit));
	} else if (!strcmp(el, "disk") && !g_strcmp0(parent_of(ctx), "devices")) {
		v = attr(names, values, "device");
		w->in_disk = !v || !strcmp(v, "disk");
		memset(&w->disk, 0, sizeof(w->disk));
	} else if (w->in_disk && !g_strcmp0(parent_of(ctx), "disk")) {
		if (!strcmp(el, "source") && (v = attr(names, values, "file")))
			g_strlcpy(w->disk.path, v, sizeof(w->disk.path));
		else if (!strcmp(el, "target") && (v = attr(names, values, "dev")))
			g_strlcpy(w->disk.target, v, sizeof(w->disk.target));
		else if (!strcmp(el, "driver") && (v = attr(names, values, "type")))
			g_strlcpy(w->disk.format, v, sizeof(w->disk.format));
		else if (!strcmp(el, "alias") && (v = attr(names, values, "name")))
			g_strlcpy(w->disk.alias, v, sizeof(w->disk.alias));
	}
}

static uint64_t to_kib(const char *text, const char *unit)
{
	uint64_t v = g_ascii_strtoull(text, NULL, 10);

	if (!g_ascii_strcasecmp(unit, "b") || !g_ascii_strcasecmp(unit, "bytes"))
		return v / 1024;
	if (!g_ascii_strcasecmp(unit, "MiB") || !g_ascii_strcasecmp(unit, "M"))
		return v * 1024;
	if (!g_ascii_strcasecmp(unit, "GiB") || !g_ascii_strcasecmp(unit, "G"))
		return v * 1024 * 1024;
	return v;
}

static void xml_end(GMarkupParseContext *ctx, const char *el, gpointer data,
		    GError **err)
{
	struct xml_walk *w = data;
	bool top = depth_of(ctx) == 2; /* child of <domain> */

	if (top && !strcmp(el, "name"))
		g_strlcpy(w->info->name, g_strstrip(w->text->str),
			  sizeof(w->info->name));
	else if (top && !strcmp(el, "uuid"))
		g_strlcpy(w->info->uuid, g_strstrip(w->text->str),
			  sizeof(w->info->uuid));
	else if (top && !strcmp(el, "memory"))
		w->info->memory_kib = to_kib(g_strstrip(w->text->str), w->unit);
	else if (top && !strcmp(el, "vcpu"))
		w->info->vcpus = (unsigned)g_ascii_strtoull(w->text->str, NULL, 10);
	else if (!strcmp(el, "disk") && w->in_disk) {
		if (w->disk.path[0])
			g_array_append_val(w->info->disks, w->disk);
		w->in_disk = false;
	}
	g_string_truncate(w->text, 0);
}

static void xml_text(GMarkupParseContext *ctx, const char *text, gsize len,
		     gpointer data, GError **err)
{
	struct xml_walk *w = data;

	if (w->text->len < 256)
		g_string_append_len(w->text, text, (gssize)MIN(len, 256));
}

int vm_parse_domain_xml(const char *xml, struct vm_info *out)
{
	static const GMarkupParser parser = {
		.start_element = xml_start,
		.end_element = xml_end,
		.text = xml_text,
	};
	struct xml_walk w = { .info = out };
	GMarkupParseContext *ctx;
	g_autoptr(GError) err = NULL;
	bool ok;

	memset(out, 0, sizeof(*out));
	out->disks = g_array_new(FALSE, TRUE, sizeof(struct vm_disk));
	w.text = g_string_new(NULL);
	ctx = g_markup_parse_context_new(&parser, 0, &w, NULL);
	ok = g_markup_parse_context_parse(ctx, xml, -1, &err) &&
	     g_markup_parse_context_end_parse(ctx, &err);
	g_markup_parse_context_free(ctx);
	g_string_free(w.text, TRUE);
	if (!ok || !out->name[0]) {
		snap_log(LOG_ERR, "vm: cannot parse domain XML: %s",
			 err ? err->message : "no name");
		vm_info_clear(out);
		return -EINVAL;
	}
	return 0;
}

static virDomainPtr lookup(struct vm_conn *c, const char *name, int *rc)
{
	virConnectPtr conn;
	virDomainPtr d;

	if (fault("libvirt", EIO)) {
		*rc = -EIO;
		return NULL;
	}
	conn = conn_get(c, rc);
	if (!conn)
		return NULL;
	/* the domain holds a reference on the connection of its own */
	d = virDomainLookupByName(conn, name);
	if (!d)
		*rc = vm_errno() == -ENOENT ? -ENOENT : fail("lookup", name);
	conn_put(conn);
	return d;
}

static void state_of(virDomainPtr d, struct vm_info *out)
{
	int state = 0, reason = 0;

	virDomainGetState(d, &state, &reason, 0);
	switch (state) {
	case VIR_DOMAIN_RUNNING:
		out->state = VM_STATE_RUNNING;
		strcpy(out->state_word, "running");
		break;
	case VIR_DOMAIN_PAUSED:
		out->state = VM_STATE_PAUSED;
		strcpy(out->state_word, "paused");
		break;
	case VIR_DOMAIN_SHUTOFF:
		out->state = VM_STATE_STOPPED;
		/* the embedded driver, opened again, forgets why: unknown */
		out->saved = reason == VIR_DOMAIN_SHUTOFF_SAVED ||
			     reason == VIR_DOMAIN_SHUTOFF_UNKNOWN;
		strcpy(out->state_word, "stopped");
		break;
	case VIR_DOMAIN_SHUTDOWN:
		out->state = VM_STATE_OTHER;
		strcpy(out->state_word, "stopping");
		break;
	case VIR_DOMAIN_CRASHED:
		out->state = VM_STATE_OTHER;
		strcpy(out->state_word, "crashed");
		break;
	default:
		out->state = VM_STATE_OTHER;
		strcpy(out->state_word, "unknown");
		break;
	}
}

int vm_get(struct vm_conn *c, const char *name, struct vm_info *out)
{
	virDomainPtr d;
	char *xml;
	int rc = 0;

	d = lookup(c, name, &rc);
	if (!d)
		return rc;
	xml = virDomainGetXMLDesc(d, 0);
	if (!xml) {
		rc = fail("describe", name);
		virDomainFree(d);
		return rc;
	}
	rc = vm_parse_domain_xml(xml, out);
	free(xml);
	if (rc == 0)
		state_of(d, out);
	virDomainFree(d);
	return rc;
}

int vm_exists(struct vm_conn *c, const char *uuid)
{
	virConnectPtr conn;
	virDomainPtr d;
	int rc = 1;

	conn = conn_get(c, &rc);
	if (!conn)
		return rc;
	d = virDomainLookupByUUIDString(conn, uuid);
	if (d)
		virDomainFree(d);
	else
		rc = vm_errno() == -ENOENT ? 0 : fail("lookup", uuid);
	conn_put(conn);
	return rc;
}

int vm_define_xml(struct vm_conn *c, const char *xml, char *name_out,
		  size_t name_size)
{
	virConnectPtr conn;
	virDomainPtr d;
	int rc = 0;

	conn = conn_get(c, &rc);
	if (!conn)
		return rc;
	d = virDomainDefineXML(conn, xml);
	if (!d) {
		rc = fail("define", "domain");
	} else {
		if (name_out)
			g_strlcpy(name_out, virDomainGetName(d), name_size);
		virDomainFree(d);
	}
	conn_put(conn);
	return rc;
}

/* Run @op on domain @name; the usual lookup/free around it. */
#define WITH_DOMAIN(c, name, what, call)                                 \
	do {                                                             \
		int _rc = 0;                                             \
		virDomainPtr dom = lookup((c), (name), &_rc);            \
		if (!dom)                                                \
			return _rc;                                      \
		if ((call) < 0)                                          \
			_rc = fail((what), (name));                      \
		virDomainFree(dom);                                      \
		return _rc;                                              \
	} while (0)

int vm_start(struct vm_conn *c, const char *name)
{
	reap_soon(c); /* a QEMU that fails to start exits at once */
	WITH_DOMAIN(c, name, "start", virDomainCreate(dom));
}

int vm_destroy(struct vm_conn *c, const char *name)
{
	int rc = 0, state = 0;
	virDomainPtr dom;

	reap_soon(c);
	dom = lookup(c, name, &rc);

	if (!dom)
		return rc;
	if (virDomainGetState(dom, &state, NULL, 0) == 0 &&
	    state == VIR_DOMAIN_SHUTOFF) {
		virDomainFree(dom);
		return 0;
	}
	/*
	 * Right after a mount, libvirt may still be reconnecting to a QEMU
	 * left running by the last snapfs and call the domain "not running"
	 * for a moment: try again for up to 5 s.
	 */
	for (int i = 0; i < 50; i++) {
		rc = virDomainDestroy(dom) < 0 ? vm_errno() : 0;
		if (rc != -EBUSY)
			break;
		if (virDomainGetState(dom, &state, NULL, 0) == 0 &&
		    state == VIR_DOMAIN_SHUTOFF) {
			rc = 0;
			break;
		}
		g_usleep(100000);
	}
	if (rc < 0)
		fail("force-stop", name);
	virDomainFree(dom);
	return rc;
}

int vm_shutdown(struct vm_conn *c, const char *name, int timeout_s)
{
	int rc = 0, state = 0, i;
	virDomainPtr dom;

	reap_soon(c);
	dom = lookup(c, name, &rc);

	if (!dom)
		return rc;
	if (virDomainShutdown(dom) < 0) {
		rc = fail("stop", name);
		virDomainFree(dom);
		return rc;
	}
	for (i = 0; i < timeout_s * 10; i++) {
		if (virDomainGetState(dom, &state, NULL, 0) == 0 &&
		    state == VIR_DOMAIN_SHUTOFF)
			break;
		g_usleep(100000);
	}
	if (state != VIR_DOMAIN_SHUTOFF) {
		snap_log(LOG_WARNING, "vm: '%s' did not stop within %d s", name,
			 timeout_s);
		rc = -ETIMEDOUT;
	}
	virDomainFree(dom);
	return rc;
}

int vm_suspend(struct vm_conn *c, const char *name)
{
	WITH_DOMAIN(c, name, "pause", virDomainSuspend(dom));
}

int vm_resume(struct vm_conn *c, const char *name)
{
	WITH_DOMAIN(c, name, "resume", virDomainResume(dom));
}

int vm_qmp(struct vm_conn *c, const char *name, const char *cmd,
	   char **reply_out)
{
	int rc = 0;
	char *reply = NULL;
	virDomainPtr dom = lookup(c, name, &rc);

	if (!dom)
		return rc;
	if (virDomainQemuMonitorCommand(dom, cmd, &reply, 0) < 0) {
		rc = fail("monitor command", name);
	} else if (reply && strstr(reply, "\"error\"")) {
		snap_log(LOG_ERR, "vm: monitor command on '%s' failed: %s", name,
			 reply);
		rc = -EIO;
	}
	if (rc == 0 && reply_out)
		*reply_out = g_strdup(reply);
	free(reply);
	virDomainFree(dom);
	return rc;
}

int vm_save(struct vm_conn *c, const char *name, const char *path)
{
	reap_soon(c);	/* the QEMU ends once saved */
	WITH_DOMAIN(c, name, "save", virDomainSaveFlags(dom, path, NULL,
						       VIR_DOMAIN_SAVE_RUNNING));
}

/*
 * Drop every <@name ...>...</@name> (and <@name/>) element of @xml, nested
 * ones included.  Return: a new string (g_free).
 */
/* Whether @c may follow an element's name in a tag (XML's S, '/', '>'). */
static bool name_ends(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '/' ||
	       c == '>';
}

/*
 * The next start tag (`<name`) or end tag (`</name`) of element @name at
 * or after @p, the name ending where XML says it does (so `<nameX` is
 * another element); *@closing says which.  NULL: none.
 */
static const char *next_tag(const char *p, const char *name, bool *closing)
{
	size_t len = strlen(name);

	for (p = strchr(p, '<'); p; p = strchr(p + 1, '<')) {
		const char *n = p + 1 + (p[1] == '/');

		if (!strncmp(n, name, len) && name_ends(n[len]) &&
		    (p[1] != '/' || n[len] != '/')) {
			*closing = p[1] == '/';
			return p;
		}
	}
	return NULL;
}

/* The '>' that ends the tag starting at @p, quoted values skipped. */
static const char *tag_end(const char *p)
{
	char quote = 0;

	for (; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == '>') {
			return p;
		}
	}
	return NULL;
}

char *vm_xml_strip(const char *xml, const char *name)
{
	GString *out = g_string_new(NULL);
	const char *p = xml, *start;
	bool closing;

	/* each outermost <name> with what it holds, up to its end tag */
	while ((start = next_tag(p, name, &closing))) {
		const char *q = start;
		int depth = 0;

		if (closing) { /* a stray end tag: not ours to cut */
			const char *gt = tag_end(start);

			g_string_append_len(out, p, (gt ? gt + 1 : start + 1) - p);
			p = gt ? gt + 1 : start + 1;
			continue;
		}
		g_string_append_len(out, p, start - p);
		for (;;) {
			const char *gt = tag_end(q);

			if (!gt) { /* cut off: nothing more to keep */
				q += strlen(q);
				break;
			}
			if (closing)
				depth--;
			else if (gt[-1] != '/')
				depth++;
			q = gt + 1;
			if (depth <= 0)
				break;
			q = next_tag(q, name, &closing);
			if (!q) { /* never closed: the rest is inside it */
				q = gt + 1 + strlen(gt + 1);
				break;
			}
		}
		p = q;
	}
	g_string_append(out, p);
	return g_string_free(out, FALSE);
}

int vm_restore(struct vm_conn *c, const char *path)
{
	g_autofree char *dxml = NULL;
	virConnectPtr conn;
	char *xml;
	int rc = 0;

	reap_soon(c);	/* a restore that fails ends its QEMU */
	if (fault("libvirt.restore", EIO)) {
		snap_log(LOG_ERR, "vm: restore '%s' failed: injected", path);
		return -EIO;
	}
	conn = conn_get(c, &rc);
	if (!conn)
		return rc;
	/*
	 * The save image records the disks' backing chains as they were when
	 * it was written; snapfs has re-layered the disks since (that is the
	 * snapshot).  Without <backingStore> libvirt reads the chains from
	 * the images again.
	 */
	xml = virDomainSaveImageGetXMLDesc(conn, path,
					   VIR_DOMAIN_SAVE_IMAGE_XML_SECURE);
	if (!xml) {
		rc = fail("read save image", path);
		goto out;
	}
	dxml = vm_xml_strip(xml, "backingStore");
	free(xml);
	if (virDomainRestoreFlags(conn, path, dxml, VIR_DOMAIN_SAVE_RUNNING) < 0)
		rc = fail("restore", path);
out:
	conn_put(conn);
	return rc;
}

int vm_save_info(struct vm_conn *c, const char *path, struct vm_info *out)
{
	virConnectPtr conn;
	char *xml;
	int rc = 0;

	conn = conn_get(c, &rc);
	if (!conn)
		return rc;
	xml = virDomainSaveImageGetXMLDesc(conn, path, 0);
	if (!xml) {
		rc = fail("read save image", path);
	} else {
		rc = vm_parse_domain_xml(xml, out);
		free(xml);
	}
	conn_put(conn);
	return rc;
}

int vm_fs_freeze(struct vm_conn *c, const char *name, int timeout_s)
{
	int rc = 0;
	virDomainPtr dom = lookup(c, name, &rc);

	if (!dom)
		return rc;
	virDomainAgentSetResponseTimeout(dom, timeout_s, 0);
	if (virDomainFSFreeze(dom, NULL, 0, 0) < 0) {
		virErrorPtr e = virGetLastError();

		rc = vm_errno();
		if (rc == -EIO && e && e->message &&
		    strstr(e->message, "not configured"))
			rc = -EOPNOTSUPP;
		snap_log(LOG_WARNING, "vm: cannot quiesce '%s': %s", name,
			 e && e->message ? e->message : "");
	}
	virDomainFree(dom);
	return rc;
}

int vm_fs_thaw(struct vm_conn *c, const char *name)
{
	WITH_DOMAIN(c, name, "thaw", virDomainFSThaw(dom, NULL, 0, 0));
}
