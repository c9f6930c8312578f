/*
 * lcefr's instruction counter for qemu user-mode emulation (a TCG plugin).
 *
 * Every translated block gets an inline add of its instruction count, so the total is the
 * number of guest instructions executed by the whole process (all threads; the adds are not
 * atomic, which is why lcefr counts single-threaded runs). At exit the total is written as one
 * decimal line to the file named by the plugin argument `out=PATH` (stderr without one).
 *
 * Built by `lcefr bench --emulate` against qemu-plugin.h from Debian's qemu source package of
 * the installed qemu-user, so the plugin API always matches the emulator that loads it.
 */
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;
static char out_path[4096];

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void write_total(qemu_plugin_id_t id, void *data)
{
    (void)id;
    (void)data;
    FILE *f = out_path[0] ? fopen(out_path, "w") : NULL;
    fprintf(f ? f : stderr, "%llu\n", (unsigned long long)executed);
    if (f) {
        fclose(f);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            snprintf(out_path, sizeof(out_path), "%s", argv[i] + 4);
        } else {
            fprintf(stderr, "insn_count: unknown argument %s (expected out=PATH)\n", argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, write_total, NULL);
    return 0;
}
