/*
 * batchd-rank-launch: puts one rank of untrusted code in its cage, then becomes it (docs/security.md).
 *
 *   batchd-rank-launch UID GID OP... -- FILE ARG...
 *
 * Run as root by the rank spawner, with the rank's working directory and environment. In order:
 *   1. a mount namespace of its own (unshare(CLONE_NEWNS)), every mount in it made private, so
 *      nothing mounted here is seen outside and nothing mounted outside later propagates in;
 *   2. the OPs, in the order given:
 *        cg FILE        write this process's pid into FILE (a cgroup's procs file): the rank and all
 *                       it forks are in that cgroup before any code of the rank runs;
 *        ro DIR         bind DIR onto itself read-only;
 *        bind SRC DST   bind SRC over DST (not recursive);
 *        rw DIR         bind DIR onto itself read-write (a folder under a read-only one);
 *      a remount keeps the nosuid, nodev, noexec and atime flags of the mount it binds;
 *   3. privileges dropped for good: every capability out of the bounding and ambient sets, the
 *      inheritable set emptied, no supplementary groups, real/effective/saved gid then uid set to
 *      GID and UID (neither may be 0), which empties the permitted and effective sets; then
 *      no_new_privs; each checked after the fact;
 *   4. execvp(FILE, [FILE, ARG...]) in the rank's environment (FILE found on its PATH, as the rank
 *      would find it): the rank keeps this process's pid.
 *
 * The rank's environment is exactly the variables this process gets as BATCHD_RANK_ENV_<NAME>, under
 * their own names; every other variable of its own (a fixed PATH) is left behind. They come in the
 * environment, which only root may read of a root process, and not as arguments, which every user of
 * the host may read (/proc/<pid>/cmdline): a job's variables hold its secrets. Under that prefix no
 * variable of the job means anything to this process, which is linked statically besides, so no
 * dynamic loader reads LD_PRELOAD or the like while it is root.
 * It does what the shell launcher in src/agent/isolation.ts does with unshare, sh, one mount(8) per
 * folder and setpriv, in one exec instead of eight (each a fork and exec of a few milliseconds).
 * Nothing of the rank runs if any step fails: it prints one line on stderr and exits 126, or 127 when
 * FILE is not found, as setpriv and shells do. `--version` prints its name and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_IS_SET 1
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

static const char *NAME = "batchd-rank-launch";
static const char RANK_ENV_PREFIX[] = "BATCHD_RANK_ENV_";

static void fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", NAME);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}

/* A uid or gid: a whole decimal number above 0 that fits, nothing else. */
static unsigned id_arg(const char *s, const char *what) {
  char *end = NULL;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || s[0] == '+' || v == 0 || v >= 4294967295UL)
    fail(126, "%s must be a whole number above 0, not '%s'", what, s);
  return (unsigned)v;
}

static void join_cgroup(const char *file) {
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail(126, "cannot open %s: %s", file, strerror(errno));
  if (write(fd, pid, (size_t)n) != n) fail(126, "cannot join the cgroup of %s: %s", file, strerror(errno));
  if (close(fd) != 0) fail(126, "cannot join the cgroup of %s: %s", file, strerror(errno));
}

/* The per-mount flags a bind remount must keep (a remount replaces them all). */
static unsigned long kept_flags(const char *dir) {
  struct statvfs st;
  if (statvfs(dir, &st) != 0) fail(126, "cannot read the mount flags of %s: %s", dir, strerror(errno));
  unsigned long f = 0;
  if (st.f_flag & ST_NOSUID) f |= MS_NOSUID;
  if (st.f_flag & ST_NODEV) f |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) f |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) f |= MS_RELATIME;
  return f;
}

static void bind(const char *src, const char *dst) {
  if (mount(src, dst, NULL, MS_BIND, NULL) != 0) fail(126, "cannot bind %s over %s: %s", src, dst, strerror(errno));
}

static void bind_self(const char *dir, int read_only) {
  bind(dir, dir);
  unsigned long flags = MS_REMOUNT | MS_BIND | kept_flags(dir);
  if (read_only) flags |= MS_RDONLY;
  if (mount(NULL, dir, NULL, flags, NULL) != 0)
    fail(126, "cannot make %s %s: %s", dir, read_only ? "read-only" : "writable", strerror(errno));
}

static void drop_privileges(unsigned uid, unsigned gid) {
  /* Bounding set: every capability this kernel knows (PR_CAPBSET_DROP answers EINVAL past the last). */
  for (int cap = 0; cap < 64; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0) continue;
    if (errno == EINVAL) break;
    fail(126, "cannot drop capability %d from the bounding set: %s", cap, strerror(errno));
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    fail(126, "cannot clear the ambient capabilities: %s", strerror(errno));
  struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &head, data) != 0) fail(126, "cannot read the capabilities: %s", strerror(errno));
  data[0].inheritable = data[1].inheritable = 0;
  if (syscall(SYS_capset, &head, data) != 0) fail(126, "cannot empty the inheritable capabilities: %s", strerror(errno));
  if (setgroups(0, NULL) != 0) fail(126, "cannot drop the supplementary groups: %s", strerror(errno));
  if (setresgid(gid, gid, gid) != 0) fail(126, "cannot set gid %u: %s", gid, strerror(errno));
  if (setresuid(uid, uid, uid) != 0) fail(126, "cannot set uid %u: %s", uid, strerror(errno));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(126, "cannot set no_new_privs: %s", strerror(errno));

  /* Trust nothing above: check what the rank will run with. */
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid || su != uid) fail(126, "uid is not %u after setresuid", uid);
  if (getresgid(&rg, &eg, &sg) != 0 || rg != gid || eg != gid || sg != gid) fail(126, "gid is not %u after setresgid", gid);
  if (getgroups(0, NULL) != 0) fail(126, "supplementary groups left after setgroups");
  if (syscall(SYS_capget, &head, data) != 0) fail(126, "cannot read the capabilities: %s", strerror(errno));
  for (int i = 0; i < 2; i++) {
    if (data[i].effective || data[i].permitted || data[i].inheritable) fail(126, "capabilities left after dropping privileges");
  }
  for (int cap = 0; cap < 64; cap++) {
    int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (in < 0) break;
    if (in != 0) fail(126, "capability %d left in the bounding set", cap);
  }
  for (int cap = 0; cap < 64; cap++) {
    int in = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);
    if (in < 0) break;
    if (in != 0) fail(126, "capability %d left in the ambient set", cap);
  }
  if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) fail(126, "no_new_privs is not set");
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--version") == 0) {
    puts(NAME);
    return 0;
  }
  if (argc < 5) fail(126, "usage: %s UID GID OP... -- FILE ARG...", NAME);
  unsigned uid = id_arg(argv[1], "UID");
  unsigned gid = id_arg(argv[2], "GID");

  /* Every argument is checked before anything is done. */
  int i = 3;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *op = argv[i];
    int operands = strcmp(op, "bind") == 0 ? 2 : (strcmp(op, "cg") == 0 || strcmp(op, "ro") == 0 || strcmp(op, "rw") == 0) ? 1 : -1;
    if (operands < 0) fail(126, "bad launcher argument %s", op);
    for (int k = 1; k <= operands; k++) {
      if (i + k >= argc || strcmp(argv[i + k], "--") == 0 || argv[i + k][0] != '/')
        fail(126, "%s needs %d absolute path%s", op, operands, operands == 1 ? "" : "s");
    }
    i += operands;
  }
  if (i + 1 >= argc) fail(126, "no command after --");
  char **command = &argv[i + 1];
  /* The rank's environment: what comes under the prefix, without it (pointers into this process's). */
  size_t own = 0;
  while (environ[own] != NULL) own++;
  char **rank_env = calloc(own + 1, sizeof *rank_env);
  if (rank_env == NULL) fail(126, "out of memory");
  size_t vars = 0;
  const size_t prefix = sizeof RANK_ENV_PREFIX - 1;
  for (size_t k = 0; k < own; k++) {
    const char *v = environ[k];
    if (strncmp(v, RANK_ENV_PREFIX, prefix) == 0 && v[prefix] != '=' && strchr(v + prefix, '=') != NULL) rank_env[vars++] = environ[k] + prefix;
  }

  if (unshare(CLONE_NEWNS) != 0) fail(126, "cannot make a mount namespace: %s", strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail(126, "cannot make the mounts private: %s", strerror(errno));
  for (int j = 3; j < i; j++) {
    if (strcmp(argv[j], "cg") == 0) join_cgroup(argv[++j]);
    else if (strcmp(argv[j], "ro") == 0) bind_self(argv[++j], 1);
    else if (strcmp(argv[j], "rw") == 0) bind_self(argv[++j], 0);
    else {
      bind(argv[j + 1], argv[j + 2]);
      j += 2;
    }
  }
  drop_privileges(uid, gid);
  environ = rank_env;
  execvp(command[0], command);
  fail(errno == ENOENT ? 127 : 126, "failed to execute %s: %s", command[0], strerror(errno));
  return 126;
}
