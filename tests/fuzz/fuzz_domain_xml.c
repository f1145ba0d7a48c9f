/*
 * fuzz_domain_xml.c - engine/vm.c, its pure parts: vm_parse_domain_xml()
 * (what snapfs reads of a libvirt domain: name, uuid, type, memory, vcpus,
 * file disks) and vm_xml_strip() (the <backingStore> elements dropped from
 * a save image's XML before a restore).  Domain XML comes from libvirt,
 * but also from the XML files in SOURCE/domains/ and save images on disk.
 *
 * Invariants (engine/vm.h):
 *  - parse: 0 or -EINVAL; a failure leaves no disk array; on success the
 *    name is non-empty, every string is NUL-terminated within its array,
 *    every disk has a path, and with no entity, CDATA or '\r' (XML
 *    makes line ends "\n") in the text the name is text of the input;
 *    parsing twice gives the same result;
 *  - strip: the output is the input with whole ranges cut out (a
 *    subsequence, never longer); for XML of libvirt's shape (well formed,
 *    no comments, CDATA or processing instructions, no raw '>' in an
 *    attribute value) the output is well formed too, holds no
 *    <backingStore> element, keeps every other element outside them in
 *    order, and parses to the same disks.
 */
#include <errno.h>

#include "fuzz.h"
#include "vm.h"

#define STRIP "backingStore"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

/* ---- element sequences with GMarkup ---- */

struct elements {
	GString *seq;  /* names of the elements outside STRIP, "<a><b>" */
	int inside;    /* depth inside STRIP elements */
	bool stripped; /* met a STRIP element */
};

static void el_start(GMarkupParseContext *ctx, const char *el,
		     const char **names, const char **values, gpointer data,
		     GError **err)
{
	struct elements *e = data;

	if (e->inside || !strcmp(el, STRIP)) {
		e->inside++;
		e->stripped = true;
		return;
	}
	g_string_append_printf(e->seq, "<%s>", el);
}

static void el_end(GMarkupParseContext *ctx, const char *el, gpointer data,
		   GError **err)
{
	struct elements *e = data;

	if (e->inside)
		e->inside--;
}

/* Whether @xml is well formed; its element sequence into @e. */
static bool elements_of(const char *xml, struct elements *e)
{
	static const GMarkupParser parser = {
		.start_element = el_start,
		.end_element = el_end,
	};
	GMarkupParseContext *ctx =
		g_markup_parse_context_new(&parser, 0, e, NULL);
	bool ok = g_markup_parse_context_parse(ctx, xml, -1, NULL) &&
		  g_markup_parse_context_end_parse(ctx, NULL);

	g_markup_parse_context_free(ctx);
	return ok;
}

/* libvirt's shape: no <! or <?, no raw '>' inside an attribute value. */
static bool libvirt_shape(const char *xml)
{
	char quote = 0;
	bool in_tag = false;

	if (strstr(xml, "<!") || strstr(xml, "<?"))
		return false;
	for (const char *p = xml; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
			else if (*p == '>' || *p == '<')
				return false;
		} else if (in_tag) {
			if (*p == '\'' || *p == '"')
				quote = *p;
			else if (*p == '>')
				in_tag = false;
		} else if (*p == '<') {
			in_tag = true;
		}
	}
	return true;
}

static bool subsequence(const char *sub, const char *s)
{
	for (; *sub; sub++) {
		s = strchr(s, *sub);
		if (!s)
			return false;
		s++;
	}
	return true;
}

static bool terminated(const struct vm_info *i)
{
	if (!fuzz_terminated(i->name, sizeof(i->name)) ||
	    !fuzz_terminated(i->uuid, sizeof(i->uuid)) ||
	    !fuzz_terminated(i->type, sizeof(i->type)) ||
	    !fuzz_terminated(i->state_word, sizeof(i->state_word)))
		return false;
	for (guint k = 0; i->disks && k < i->disks->len; k++) {
		const struct vm_disk *d =
			&g_array_index(i->disks, struct vm_disk, k);

		if (!fuzz_terminated(d->target, sizeof(d->target)) ||
		    !fuzz_terminated(d->path, sizeof(d->path)) ||
		    !fuzz_terminated(d->format, sizeof(d->format)) ||
		    !fuzz_terminated(d->alias, sizeof(d->alias)))
			return false;
	}
	return true;
}

static bool same_disks(const struct vm_info *a, const struct vm_info *b)
{
	if (a->disks->len != b->disks->len)
		return false;
	for (guint k = 0; k < a->disks->len; k++) {
		const struct vm_disk *x = &g_array_index(a->disks, struct vm_disk, k);
		const struct vm_disk *y = &g_array_index(b->disks, struct vm_disk, k);

		if (strcmp(x->target, y->target) || strcmp(x->path, y->path) ||
		    strcmp(x->format, y->format) || strcmp(x->alias, y->alias))
			return false;
	}
	return true;
}

static bool same_info(const struct vm_info *a, const struct vm_info *b)
{
	return !strcmp(a->name, b->name) && !strcmp(a->uuid, b->uuid) &&
	       !strcmp(a->type, b->type) && a->memory_kib == b->memory_kib &&
	       a->vcpus == b->vcpus && same_disks(a, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autofree char *xml = fuzz_cstr(data, size);
	g_autofree char *out = NULL;
	struct vm_info info, again, after;
	struct elements in = { g_string_new(NULL), 0, false };
	struct elements res = { g_string_new(NULL), 0, false };
	int rc, rc2;

	rc = vm_parse_domain_xml(xml, &info);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "rc %d", rc);
	FUZZ_CHECK(terminated(&info), "a string is not terminated");
	rc2 = vm_parse_domain_xml(xml, &again);
	FUZZ_CHECK(rc2 == rc, "rc %d then %d", rc, rc2);
	if (rc < 0) {
		FUZZ_CHECK(info.disks == NULL && again.disks == NULL,
			   "disks left after a failure");
	} else {
		FUZZ_CHECK(info.name[0], "empty name");
		FUZZ_CHECK(same_info(&info, &again), "two parses differ");
		for (guint k = 0; k < info.disks->len; k++)
			FUZZ_CHECK(g_array_index(info.disks, struct vm_disk, k).path[0],
				   "disk %u without a path", k);
		/* (XML reads "\r\n" and "\r" as "\n") */
		if (!strchr(xml, '&') && !strstr(xml, "<!") && !strchr(xml, '\r'))
			FUZZ_CHECK(strstr(xml, info.name), "name '%s' not in the text",
				   info.name);
	}

	out = vm_xml_strip(xml, STRIP);
	FUZZ_CHECK(out && strlen(out) <= strlen(xml), "longer output");
	FUZZ_CHECK(subsequence(out, xml), "not cut from the input");
	/* (a document that is one <backingStore> has nothing left) */
	if (libvirt_shape(xml) && elements_of(xml, &in) && in.seq->len) {
		FUZZ_CHECK(elements_of(out, &res), "'%s' is no longer well formed",
			   out);
		FUZZ_CHECK(!res.stripped, "a <" STRIP "> is left in '%s'", out);
		FUZZ_CHECK(!strcmp(in.seq->str, res.seq->str),
			   "elements '%s' became '%s'", in.seq->str, res.seq->str);
		rc2 = vm_parse_domain_xml(out, &after);
		if (rc == 0 && rc2 == 0)
			FUZZ_CHECK(same_disks(&info, &after),
				   "stripping changed the disks");
		vm_info_clear(&after);
	}
	g_string_free(in.seq, TRUE);
	g_string_free(res.seq, TRUE);
	vm_info_clear(&info);
	vm_info_clear(&again);
	return 0;
}
