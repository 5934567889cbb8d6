// Linux calls that Swift's Glibc module does not export; all part of libc, so nothing to link.
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

// glibc 2.34+ declares this only under _GNU_SOURCE, which Swift's Glibc module is built without:
// a spawned child closes every descriptor from `from` up, whether or not it is O_CLOEXEC.
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
