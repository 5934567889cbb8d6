// Linux's epoll and eventfd, which Swift's Glibc module does not export; part of libc, so
// nothing to link.
#include <sys/epoll.h>
#include <sys/eventfd.h>
