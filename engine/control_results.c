/*
 * control_results.c - the last result of each control file (see
 * control_results.h).
 */
#include "control_results.h"
#include "errname.h"

struct control_results {
	GMutex lock;	    /* a leaf */
	GHashTable *last;   /* control file path -> "<cmd>: <result>\n" */
};

struct control_results *control_results_new(void)
{
	struct control_results *r = g_new0(struct control_results, 1);

	g_mutex_init(&r->lock);
	r->last = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	return r;
}

void control_results_free(struct control_results *r)
{
	if (!r)
		return;
	g_hash_table_destroy(r->last);
	g_mutex_clear(&r->lock);
	g_free(r);
}

void control_result_record(struct snap_engine *eng, const char *control,
			   const char *shown, int rc, const char *why)
{
	struct control_results *r = eng->control_results;
	char *text = rc == 0 ? g_strdup_printf("%s: ok\n", shown) :
		g_strdup_printf("%s: %s: %s\n", shown, errno_name(rc),
				why ? why : g_strerror(-rc));

	g_mutex_lock(&r->lock);
	g_hash_table_replace(r->last, g_strdup(control), text);
	g_mutex_unlock(&r->lock);
}

char *control_result_text(struct snap_engine *eng, const char *control,
			  const char *help)
{
	struct control_results *r = eng->control_results;
	const char *last;
	char *text;

	g_mutex_lock(&r->lock);
	last = g_hash_table_lookup(r->last, control);
	text = g_strdup_printf("%slast: %s", help, last ? last : "none\n");
	g_mutex_unlock(&r->lock);
	return text;
}
