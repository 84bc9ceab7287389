/* Preloaded into drsch by test_cli (LD_PRELOAD): its destructor runs after drsch's main has
 * returned, as the exit handlers of libraries do (libstdc++'s std::cout, HDF5's), and writes and
 * flushes stdout. drsch must leave stdout a live stream for them. */
#include <stdio.h>

__attribute__((destructor)) static void write_stdout_at_exit(void)
{
    fputs("written at exit\n", stdout);
    fflush(stdout);
}
