/*
 * test_vm_xml.c - engine/vm.c: what snapfs reads from libvirt domain XML
 * (vm_parse_domain_xml, the pure part of vm_get).
 */
#include "unit.h"
#include "vm.h"

static const char running_xml[] =
	"<domain type='kvm' id='1'>\n"
	"  <name>web-1</name>\n"
	"  <uuid>efb6206b-2099-41b5-a543-09e036b26a48</uuid>\n"
	"  <memory unit='KiB'>262144</memory>\n"
	"  <currentMemory unit='KiB'>131072</currentMemory>\n"
	"  <vcpu placement='static'>2</vcpu>\n"
	"  <devices>\n"
	"    <disk type='file' device='disk'>\n"
	"      <driver name='qemu' type='qcow2'/>\n"
	"      <source file='/srv/primary/d1.qcow2' index='2'/>\n"
	"      <backingStore type='file' index='3'><format type='qcow2'/>\n"
	"        <source file='/srv/primary/.snapfs/d1/x.qcow2'/></backingStore>\n"
	"      <target dev='vda' bus='virtio'/>\n"
	"      <alias name='virtio-disk0'/>\n"
	"    </disk>\n"
	"    <disk type='file' device='cdrom'>\n"
	"      <source file='/iso/install.iso'/><target dev='hdc' bus='ide'/>\n"
	"    </disk>\n"
	"    <disk type='network' device='disk'>\n"
	"      <source protocol='nbd' name='x'/><target dev='vdc' bus='virtio'/>\n"
	"    </disk>\n"
	"    <disk type='file' device='disk'>\n"
	"      <driver name='qemu' type='raw'/>\n"
	"      <source file='/srv/primary/d2.qcow2'/>\n"
	"      <target dev='vdb' bus='virtio'/>\n"
	"    </disk>\n"
	"  </devices>\n"
	"</domain>\n";

static void test_running_domain(void **state)
{
	struct vm_info info;
	struct vm_disk *d;

	assert_int_equal(vm_parse_domain_xml(running_xml, &info), 0);
	assert_string_equal(info.name, "web-1");
	assert_string_equal(info.uuid, "efb6206b-2099-41b5-a543-09e036b26a48");
	assert_string_equal(info.type, "kvm");
	assert_int_equal(info.memory_kib, 262144);
	assert_int_equal(info.vcpus, 2);
	/* file disks only: not the cdrom, not the network disk */
	assert_int_equal(info.disks->len, 2);
	d = &g_array_index(info.disks, struct vm_disk, 0);
	assert_string_equal(d->path, "/srv/primary/d1.qcow2");
	assert_string_equal(d->target, "vda");
	assert_string_equal(d->format, "qcow2");
	assert_string_equal(d->alias, "virtio-disk0");
	d = &g_array_index(info.disks, struct vm_disk, 1);
	assert_string_equal(d->path, "/srv/primary/d2.qcow2");
	assert_string_equal(d->format, "raw");
	assert_string_equal(d->alias, "");
	vm_info_clear(&info);
}

static void test_memory_units(void **state)
{
	static const struct {
		const char *unit;
		const char *value;
		uint64_t kib;
	} cases[] = {
		{ "MiB", "256", 262144 },
		{ "GiB", "2", 2097152 },
		{ "b", "1048576", 1024 },
		{ "KiB", "4096", 4096 },
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *xml = g_strdup_printf(
			"<domain type='qemu'><name>v</name><memory unit='%s'>%s</memory>"
			"<vcpu>1</vcpu></domain>", cases[i].unit, cases[i].value);
		struct vm_info info;

		assert_int_equal(vm_parse_domain_xml(xml, &info), 0);
		assert_int_equal(info.memory_kib, cases[i].kib);
		assert_string_equal(info.type, "qemu");
		assert_int_equal(info.disks->len, 0);
		vm_info_clear(&info);
	}
}

static void test_bad_xml(void **state)
{
	static const char *const bad[] = {
		"",
		"not xml",
		"<domain type='kvm'><memory>1</memory></domain>", /* no name */
		"<domain type='kvm'><name>x</name>",		 /* unclosed */
		"<domain><name>a</name></domain><domain>",
	};
	struct vm_info info;

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		assert_int_equal(vm_parse_domain_xml(bad[i], &info), -EINVAL);
		assert_null(info.disks);
	}
}

/* A nested <name> (e.g. in metadata) is not the domain's name. */
static void test_nested_name(void **state)
{
	struct vm_info info;

	assert_int_equal(vm_parse_domain_xml(
		"<domain type='kvm'><metadata><x><name>evil</name></x></metadata>"
		"<name>good</name></domain>", &info), 0);
	assert_string_equal(info.name, "good");
	vm_info_clear(&info);
}

static void test_strip_backing_store(void **state)
{
	g_autofree char *a = vm_xml_strip(running_xml, "backingStore");
	g_autofree char *b = vm_xml_strip(
		"<disk><source file='a'/><backingStore type='file'><format type='qcow2'/>"
		"<source file='b'/><backingStore type='file'><source file='c'/>"
		"<backingStore/></backingStore></backingStore><target dev='vda'/></disk>"
		"<backingStoreX/><backingStore/>", "backingStore");
	struct vm_info info;

	assert_null(strstr(a, "backingStore"));
	assert_non_null(strstr(a, "<alias name='virtio-disk0'/>"));
	assert_int_equal(vm_parse_domain_xml(a, &info), 0);
	assert_int_equal(info.disks->len, 2);
	vm_info_clear(&info);
	assert_string_equal(b, "<disk><source file='a'/><target dev='vda'/></disk><backingStoreX/>");
}

/* Fuzz findings (tests/fuzz/corpus/domain_xml/strip-*.xml): an element
 * whose name only starts with the stripped one, nested in it, and a '\r'
 * after the name. */
static void test_strip_name_boundaries(void **state)
{
	g_autofree char *nested = vm_xml_strip(
		"<domain><name>a</name><devices><backingStore><backingStoreX>"
		"</backingStoreX></backingStore><disk device='disk'>"
		"<source file='/p'/></disk></devices></domain>", "backingStore");
	g_autofree char *cr = vm_xml_strip(
		"<disk><source file='/p'/><backingStore\rtype='file'>"
		"<source file='/q'/></backingStore></disk>", "backingStore");
	g_autofree char *spaced = vm_xml_strip(
		"<a><backingStore\n><backingStore/></backingStore\t></a>"
		"</backingStore>", "backingStore");
	g_autofree char *quoted = vm_xml_strip(
		"<a><backingStore x='>'><b/></backingStore><c/></a>", "backingStore");

	assert_string_equal(nested, "<domain><name>a</name><devices><disk device='disk'>"
				    "<source file='/p'/></disk></devices></domain>");
	assert_string_equal(cr, "<disk><source file='/p'/></disk>");
	/* a stray end tag is left alone */
	assert_string_equal(spaced, "<a></a></backingStore>");
	assert_string_equal(quoted, "<a><c/></a>");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_running_domain),
		cmocka_unit_test(test_memory_units),
		cmocka_unit_test(test_bad_xml),
		cmocka_unit_test(test_nested_name),
		cmocka_unit_test(test_strip_backing_store),
		cmocka_unit_test(test_strip_name_boundaries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
