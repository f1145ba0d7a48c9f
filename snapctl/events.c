/*
 * events.c - `snapctl events [-f]`: MOUNT/events, one line per event,
 * and with -f the events appended after, as they come.
 *
 * MOUNT/events is JSON Lines, oldest first, and only grows.  Following
 * reads it again once a second from the byte where the last complete line
 * ended (tail -f does the same on file systems without inotify, which
 * FUSE is).  With --json each event is printed as the JSON object it is
 * (JSON Lines); without, as "time type subject result message".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "snapctl.h"

#define FOLLOW_TICK_US G_TIME_SPAN_SECOND

/* What an event is about: vol/snap, vm:<vm>/snap, a path, or "-". */
static char *subject(struct json_object *ev)
{
	const char *vol = json_get_str(ev, "volume");
	const char *vm = json_get_str(ev, "vm");
	const char *snap = json_get_str(ev, "snapshot");
	const char *path = json_get_str(ev, "path");
	const char *policy = json_get_str(ev, "policy");

	if (vol)
		return g_strdup_printf("%s%s%s", vol, snap ? "/" : "", snap ?: "");
	if (vm)
		return g_strdup_printf("vm:%s%s%s", vm, snap ? "/" : "", snap ?: "");
	if (path)
		return g_strdup(path);
	if (policy)
		return g_strdup_printf("policy:%s", policy);
	return g_strdup("-");
}

static void print_event(const struct snapctl *ctl, const char *line)
{
	struct json_object *ev = json_tokener_parse(line);
	g_autofree char *what = NULL;
	const char *err;

	if (!ev || !json_object_is_type(ev, json_type_object)) {
		/* not ours to judge: pass it on, marked */
		fprintf(stderr, "snapctl: events: a line is not a JSON object: %s\n",
			line);
		json_object_put(ev);
		return;
	}
	if (ctl->json) {
		print_json_line(ev);
		json_object_put(ev);
		return;
	}
	what = subject(ev);
	err = json_get_str(ev, "errno");
	printf("%s  %-16s %-32s %s%s%s\n", json_get_str(ev, "time") ?: "-",
	       json_get_str(ev, "type") ?: "-", what, err ?: "", err ? ": " : "",
	       json_get_str(ev, "message") ?: "");
	json_object_put(ev);
}

/*
 * Print the complete lines of MOUNT/events from byte *@offset on, and move
 * *@offset past them (a line still being written waits for the next call).
 */
static int print_from(const struct snapctl *ctl, off_t *offset)
{
	g_autofree char *path = mount_path(ctl, "events");
	g_autoptr(GString) text = g_string_new(NULL);
	char buf[65536];
	size_t start = 0;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((n = pread(fd, buf, sizeof(buf), *offset + (off_t)text->len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		g_string_append_len(text, buf, n);
	}
	close(fd);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < text->len; i++) {
		if (text->str[i] != '\n')
			continue;
		text->str[i] = '\0';
		if (i > start)
			print_event(ctl, text->str + start);
		start = i + 1;
	}
	*offset += (off_t)start;
	fflush(stdout);
	return 0;
}

int cmd_events(struct snapctl *ctl, int argc, char **argv)
{
	static const struct option options[] = {
		{ "follow", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	bool follow = false;
	off_t offset = 0;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "fj", options, NULL)) != -1) {
		switch (opt) {
		case 'f':
			follow = true;
			break;
		case 'j':
			ctl->json = true;
			break;
		default:
			fprintf(stderr, "usage: snapctl events [-f] [--json]\n");
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: snapctl events [-f] [--json]\n");
		return -EINVAL;
	}
	do {
		rc = print_from(ctl, &offset);
		if (rc < 0) {
			fprintf(stderr, "snapctl: events: %s/events: %s\n",
				ctl->mount, g_strerror(-rc));
			return rc;
		}
		if (follow)
			g_usleep(FOLLOW_TICK_US);
	} while (follow);
	return 0;
}
