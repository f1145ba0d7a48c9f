/*
 * volume_control.c - a volume's control file: revert, clone, retry and verify
 * written to it, and the result of the last command read back.
 */
#include <errno.h>
#include <string.h>

#include "clone.h"
#include "control.h"
#include "control_results.h"
#include "events.h"
#include "revert.h"
#include "snapshot.h"
#include "verify.h"
#include "volume.h"

int snap_volume_control(struct snap_engine *eng, const char *vol,
			const char *cmd, size_t len)
{
	g_autofree char *target = g_strdup_printf("volumes/%s/control", vol);
	g_autofree char *shown = g_strndup(cmd, MIN(len, 200));
	struct catalog_volume v;
	struct control_cmd c;
	const char *why = NULL;
	int rc;

	g_strchomp(shown);
	g_strcanon(shown, G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS "._- <>", '?');
	rc = volume_resolve(eng, vol, &v, NULL);
	if (rc < 0) {
		event_reject(eng, "write", target, -rc, "no such volume");
		return rc;
	}
	rc = control_parse(cmd, len, &c, &why);
	if (rc < 0) {
		event_reject(eng, "write", target, -rc, "%s", why);
		control_result_record(eng, target, shown, rc, why);
		return rc;
	}
	switch (c.verb) {
	case CONTROL_VERB_RETRY:
		rc = snapshot_retry(eng, vol, c.snap);
		break;
	case CONTROL_VERB_CLONE:
		rc = snapshot_clone(eng, vol, c.snap, c.newvol);
		break;
	case CONTROL_VERB_VERIFY:
		rc = snapshot_verify(eng, vol, c.snap);
		break;
	case CONTROL_VERB_REVERT:
	default:
		rc = snapshot_revert(eng, vol, c.snap);
		break;
	}
	control_result_record(eng, target, shown, rc, NULL);
	return rc;
}

int snap_volume_control_text(struct snap_engine *eng, const char *vol,
			     char **text_out)
{
	g_autofree char *target = g_strdup_printf("volumes/%s/control", vol);
	struct catalog_volume v;
	int rc = volume_resolve(eng, vol, &v, NULL);

	if (rc < 0)
		return rc;
	*text_out = control_result_text(eng, target,
		"# write one command per write(2), e.g. echo 'retry s1' > control\n"
		"#   retry <snap>           back a failed snapshot up again\n"
		"#   revert <snap>          volume back to that snapshot (waits; EBUSY while\n"
		"#                          its VM runs); later snapshots stay usable\n"
		"#   clone <snap> <newvol>  new volume, a full copy of that snapshot (queued:\n"
		"#                          see jobs/; volumes/<newvol> appears when complete)\n"
		"#   verify <snap>          re-read and check every chunk of its backup (waits;\n"
		"#                          EIO: the backup is Damaged, see alerts/)\n");
	return 0;
}

int snap_control(struct snap_engine *eng, const char *cmd, size_t len)
{
	static const char target[] = "control";
	g_autofree char *shown = g_strndup(cmd, MIN(len, 400));
	struct restore_cmd c;
	const char *why = NULL;
	int rc;

	g_strchomp(shown);
	g_strcanon(shown, G_CSET_a_2_z G_CSET_A_2_Z G_CSET_DIGITS "._- <>/", '?');
	rc = restore_parse(cmd, len, &c, &why);
	if (rc < 0) {
		event_reject(eng, "write", target, -rc, "%s", why);
		control_result_record(eng, target, shown, rc, why);
		return rc;
	}
	rc = backup_restore(eng, c.host, c.vol, c.snap, c.newvol);
	control_result_record(eng, target, shown, rc, NULL);
	return rc;
}

int snap_control_text(struct snap_engine *eng, char **text_out)
{
	*text_out = control_result_text(eng, "control",
		"# write one command per write(2), e.g.\n"
		"#   echo 'restore kvm-a/web/daily new-web' > control\n"
		"#   restore <host>/<vol>/<snap> <newvol>  new volume, a full copy of a\n"
		"#        backup: another host's (backed-up/hosts/<host>/volumes/) or this\n"
		"#        host's (queued: see jobs/; volumes/<newvol> appears when complete)\n");
	return *text_out ? 0 : -ENOMEM;
}
