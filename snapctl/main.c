/*
 * main.c - snapctl's command line: global options, the mount, the command,
 * the exit status.
 *
 *   snapctl [-m MOUNT] [--json] status | wait SNAPSHOT | events [-f] | tree VM
 *
 * Every command prints its own error message (once, where it knows the
 * subject) and returns -errno; this file only turns that into the exit
 * status of snapctl(1).
 */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "snapctl.h"

struct command {
	const char *name;
	int (*run)(struct snapctl *ctl, int argc, char **argv);
	bool needs_mount; /* wait finds it from its argument when it can */
};

static const struct command commands[] = {
	{ "status", cmd_status, true },
	{ "wait", cmd_wait, false },
	{ "events", cmd_events, true },
	{ "tree", cmd_tree, true },
};

static void usage(FILE *to)
{
	fprintf(to,
		"usage: snapctl [-m MOUNT] [--json] COMMAND [ARGS]\n"
		"\n"
		"commands:\n"
		"  status                    volumes, VMs, snapshots by state, jobs, alerts\n"
		"  wait [-t SECS] [-q] SNAP  block until the backup of SNAP ends; SNAP is a\n"
		"                            snapshot's directory, volumes/VOL/snapshots/NAME\n"
		"                            or VOL/NAME\n"
		"  events [-f]               the events, oldest first; -f follows new ones\n"
		"  tree VM                   the VM's snapshot tree, the current one marked\n"
		"\n"
		"options:\n"
		"  -m, --mount MOUNT   the snapfs mount (default: $SNAPFS_MOUNT, else the\n"
		"                      only snapfs mount)\n"
		"  -j, --json          print one JSON document (events: JSON Lines)\n"
		"  -h, --help          this help\n"
		"  -V, --version       snapctl's version\n"
		"\n"
		"exit status: 0 done (wait: BackedUp), 1 wait: BackupFailed, 2 usage,\n"
		"3 wait: timed out, 4 no such mount, snapshot or VM, 5 other errors.\n"
		"See snapctl(1).\n");
}

static int exit_status(const struct snapctl *ctl, int rc)
{
	if (rc == 0)
		return ctl->outcome;
	switch (rc) {
	case -EINVAL:
		return SNAPCTL_EXIT_USAGE;
	case -ETIMEDOUT:
		return SNAPCTL_EXIT_TIMEOUT;
	case -ENOENT:
		return SNAPCTL_EXIT_NOT_FOUND;
	default:
		return SNAPCTL_EXIT_ERROR;
	}
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "mount", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct snapctl ctl = { 0 };
	const struct command *cmd = NULL;
	const char *mount = NULL;
	int opt, rc;

	setlocale(LC_ALL, "");
	/* '+': options after the command are the command's */
	while ((opt = getopt_long(argc, argv, "+m:jhV", options, NULL)) != -1) {
		switch (opt) {
		case 'm':
			mount = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'h':
			usage(stdout);
			return SNAPCTL_EXIT_OK;
		case 'V':
			printf("snapctl %s\n", SNAPFS_VERSION);
			return SNAPCTL_EXIT_OK;
		default:
			usage(stderr);
			return SNAPCTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return SNAPCTL_EXIT_USAGE;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		if (!strcmp(argv[optind], commands[i].name))
			cmd = &commands[i];
	if (!cmd) {
		fprintf(stderr, "snapctl: unknown command '%s' (see snapctl -h)\n",
			argv[optind]);
		return SNAPCTL_EXIT_USAGE;
	}
	rc = 0;
	if (mount || cmd->needs_mount)
		rc = mount_find(&ctl, mount);
	if (rc == 0) {
		argc -= optind;
		argv += optind;
		optind = 0; /* glibc: start the command's parsing afresh */
		rc = cmd->run(&ctl, argc, argv);
	}
	g_free(ctl.mount);
	return exit_status(&ctl, rc);
}
