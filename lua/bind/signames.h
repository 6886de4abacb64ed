/* signames.h — signal names <-> numbers ("TERM", "SIGTERM" and "15" all work). */
#ifndef HUM_SIGNAMES_H
#define HUM_SIGNAMES_H
int hum_signum(const char *name);    /* -1 if unknown */
const char *hum_signame(int signum); /* "TERM"; "?" if unknown */
#endif
