/*
 * mount.c - finding the snapfs mount and reading its files.
 *
 * The mount's dynamic files report size 0 (their content is made at
 * open), so every read goes to EOF.  Nothing here stats a mount point it
 * is not sure of before reading /proc/self/mountinfo: a dead FUSE mount
 * answers ENOTCONN, which is reported as it is.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapctl.h"

/* mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo */
static char *unescape(const char *field)
{
	GString *s = g_string_new(NULL);

	for (const char *p = field; *p; p++) {
		if (p[0] == '\\' && g_ascii_isdigit(p[1]) &&
		    g_ascii_isdigit(p[2]) && g_ascii_isdigit(p[3])) {
			g_string_append_c(s, (char)((p[1] - '0') * 64 +
						    (p[2] - '0') * 8 + (p[3] - '0')));
			p += 3;
		} else {
			g_string_append_c(s, *p);
		}
	}
	return g_string_free(s, FALSE);
}

/* The mount points of fstype fuse.snapfs, in mount order. */
static int snapfs_mounts(GPtrArray *out)
{
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GError) err = NULL;

	if (!g_file_get_contents("/proc/self/mountinfo", &text, NULL, &err))
		return -ENOENT;
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l; l++) {
		g_auto(GStrv) halves = g_strsplit(*l, " - ", 2);
		g_auto(GStrv) left = NULL;

		if (!halves[0] || !halves[1] ||
		    !g_str_has_prefix(halves[1], "fuse.snapfs "))
			continue;
		left = g_strsplit(halves[0], " ", -1);
		if (g_strv_length(left) >= 5)
			g_ptr_array_add(out, unescape(left[4]));
	}
	return 0;
}

int mount_find(struct snapctl *ctl, const char *given)
{
	g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
	const char *env = g_getenv("SNAPFS_MOUNT");
	char *real;
	int rc;

	if (!given && env && *env)
		given = env;
	if (given) {
		real = realpath(given, NULL);
		if (!real) {
			rc = -errno;
			fprintf(stderr, "snapctl: mount '%s': %s\n", given,
				g_strerror(-rc));
			return rc;
		}
		g_free(ctl->mount);
		ctl->mount = g_strdup(real);
		free(real);
		return 0;
	}
	rc = snapfs_mounts(found);
	if (rc < 0 || found->len == 0) {
		fprintf(stderr, "snapctl: no snapfs mount found; name one with -m MOUNT\n");
		return -ENOENT;
	}
	if (found->len > 1) {
		fprintf(stderr, "snapctl: %u snapfs mounts (%s, %s%s); name one with -m MOUNT\n",
			found->len, (char *)found->pdata[0],
			(char *)found->pdata[1], found->len > 2 ? ", ..." : "");
		return -EINVAL;
	}
	g_free(ctl->mount);
	ctl->mount = g_strdup(found->pdata[0]);
	return 0;
}

bool mount_is_snapfs(const char *path)
{
	g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);

	if (snapfs_mounts(found) < 0)
		return false;
	for (guint i = 0; i < found->len; i++)
		if (!strcmp(found->pdata[i], path))
			return true;
	return false;
}

char *mount_path(const struct snapctl *ctl, const char *rel)
{
	return g_build_filename(ctl->mount, rel, NULL);
}

int mount_read(const struct snapctl *ctl, const char *path, char **text_out)
{
	g_autofree char *full = path[0] == '/' ? g_strdup(path) :
						 mount_path(ctl, path);
	GString *s = g_string_new(NULL);
	char buf[65536];
	ssize_t n;
	int fd, rc = 0;

	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		g_string_free(s, TRUE);
		return -errno;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		g_string_append_len(s, buf, n);
	}
	close(fd);
	if (rc < 0) {
		g_string_free(s, TRUE);
		return rc;
	}
	*text_out = g_string_free(s, FALSE);
	return 0;
}

int mount_read_json(const struct snapctl *ctl, const char *path,
		    struct json_object **out)
{
	g_autofree char *text = NULL;
	struct json_object *obj;
	int rc = mount_read(ctl, path, &text);

	if (rc < 0)
		return rc;
	obj = json_tokener_parse(text);
	if (!obj || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return -EBADMSG;
	}
	*out = obj;
	return 0;
}

int mount_read_word(const struct snapctl *ctl, const char *path, char **out)
{
	char *text = NULL;
	int rc = mount_read(ctl, path, &text);

	if (rc < 0)
		return rc;
	text[strcspn(text, "\n")] = '\0';
	*out = text;
	return 0;
}

static bool is_id(const char *name)
{
	if (!*name || *name == '0' || strlen(name) > 19)
		return false;
	for (const char *p = name; *p; p++)
		if (!g_ascii_isdigit(*p))
			return false;
	return true;
}

static gint by_number(gconstpointer a, gconstpointer b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;

	/* same-length decimal strings compare like their numbers */
	if (strlen(x) != strlen(y))
		return strlen(x) < strlen(y) ? -1 : 1;
	return strcmp(x, y);
}

static gint by_name(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mount_list(const struct snapctl *ctl, const char *path,
	       enum mount_list_kind kind, char ***names_out)
{
	g_autofree char *full = mount_path(ctl, path);
	GPtrArray *names;
	struct dirent *de;
	DIR *dir;
	int n;

	dir = opendir(full);
	if (!dir)
		return -errno;
	names = g_ptr_array_new();
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (kind == MOUNT_LIST_IDS && !is_id(de->d_name))
			continue;
		/* snapfs lists directories as DT_DIR; ask when unsure */
		if (kind == MOUNT_LIST_DIRS && de->d_type != DT_DIR) {
			struct stat st;

			if (de->d_type != DT_UNKNOWN ||
			    fstatat(dirfd(dir), de->d_name, &st,
				    AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISDIR(st.st_mode))
				continue;
		}
		g_ptr_array_add(names, g_strdup(de->d_name));
	}
	closedir(dir);
	g_ptr_array_sort(names, kind == MOUNT_LIST_IDS ? by_number : by_name);
	n = (int)names->len;
	g_ptr_array_add(names, NULL);
	*names_out = (char **)g_ptr_array_free(names, FALSE);
	return n;
}
